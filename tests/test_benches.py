"""The benches run (`make bench`, `make bench-gpu`): each prints its rows on the CPU, tiny, so
that a GPU machine's few minutes are not spent finding a bench broken. No time is asserted."""
import re

import pytest

from common.errors import UserError

NUMBER = r"[\d,]+\.?\d*"


def test_compiled_is_refused_without_cuda():
    from cifar10 import bench
    with pytest.raises(UserError, match="--compiled .* needs a CUDA device"):
        bench.main(["--device", "cpu", "--compiled", "--data-dir", "/nonexistent"])


def test_cifar10_bench_prints_every_loop(cifar_dir, capsys):
    from cifar10 import bench
    bench.main(["--models", "resnet20", "--device", "cpu", "--data-dir", str(cifar_dir),
                "--limit-train", "128", "--workers", "0"])
    output = capsys.readouterr().out
    for loop in ("plain DataLoader loop, fp32", "our loop, fp32, eager",
                 "limit: our step alone, eager"):
        assert re.search(rf"{loop}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x", output), output
        assert re.search(rf"{loop}: {NUMBER} s per 50,000 images", output), output


def test_random_cifar_loads_as_cifar10(tmp_path, monkeypatch):
    from cifar10.data import load_cifar10
    from common import gpu_bench
    monkeypatch.setattr(gpu_bench, "CIFAR_IMAGES", {"train": 50, "test": 20})
    train_set, test_set = load_cifar10(gpu_bench.write_random_cifar(tmp_path))
    assert (len(train_set), len(test_set)) == (50, 20)
    assert tuple(train_set.images.shape[1:]) == (3, 32, 32)
    assert 0 <= int(train_set.labels.min()) and int(train_set.labels.max()) <= 9


def test_gpu_bench_runs_the_parts_asked_for(monkeypatch, capsys):
    from cifar10 import bench as cifar_bench
    from common import gpu_bench, precision_bench
    from voc2007 import bench_train
    calls = []
    for module in (cifar_bench, precision_bench, bench_train):
        monkeypatch.setattr(module, "main", lambda argv, name=module.__name__:
                            calls.append((name, argv)))
    monkeypatch.setattr(gpu_bench, "CIFAR_IMAGES", {"train": 50, "test": 20})
    gpu_bench.main(["--only", "cifar10", "voc2007"])
    assert [name for name, _ in calls] == ["cifar10.bench", "cifar10.bench",
                                           "voc2007.bench_train"]
    assert all(argv[argv.index("--device") + 1] == "cuda" for _, argv in calls)
    assert "--compiled" in calls[0][1] and "--compiled" not in calls[1][1]
    assert "== precision per network" not in capsys.readouterr().out


def test_precision_bench_times_every_precision(monkeypatch, capsys):
    from cifar10.models import MODELS
    from common import precision_bench
    from voc2007.ssd import build_ssd
    from voc2007.yolo import build_yolo
    monkeypatch.setattr(precision_bench, "WARMUP_STEPS", 1)
    monkeypatch.setattr(precision_bench, "TIMED_STEPS", 1)
    monkeypatch.setattr(precision_bench, "networks", lambda: [
        ("CIFAR ResNet-20", MODELS["resnet20"], 4, 32, False),
        ("YOLOv1 tiny", lambda: build_yolo("tiny"), 2, 112, True),
        ("SSD tiny", lambda: build_ssd("tiny"), 2, 64, True)])
    precision_bench.main(["--device", "cpu"])
    output = capsys.readouterr().out
    fastest = "|".join(precision_bench.PRECISIONS)
    for name, batch in (("CIFAR ResNet-20", 4), ("YOLOv1 tiny", 2), ("SSD tiny", 2)):
        assert re.search(rf"{name}\s+{batch}(\s+{NUMBER}){{3}}\s+({fastest})\s+fp32\s+{NUMBER}",
                         output), output


def test_detector_bench_prints_both_ways(capsys):
    from voc2007 import bench_train
    bench_train.main(["--device", "cpu", "--workers", "0",
                      "--detectors", "YOLOv1 ResNet-50 448x448"])
    output = capsys.readouterr().out
    assert re.search(rf"YOLOv1 tiny\s+2\s+fp32, eager(\s+{NUMBER}){{5}}", output), output
