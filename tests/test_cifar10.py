"""CIFAR-10: batch files, every model through train.py, the paper recipe's split, test.py,
the report section and the Makefile targets behind it."""
import json
import pickle
import subprocess

import numpy as np
import pytest
import torch
import torchvision

from cifar10 import report as cifar_report
from cifar10 import test as cifar_test
from cifar10 import train
from cifar10.data import load_cifar10, read_batch
from cifar10.models import MODELS
from common import cli
from common.errors import UserError
from common.report import Comparison
from conftest import REPO, learnable_cifar, run_script, write_cifar_batch

CPU = ["--device", "cpu"]
TINY = ["--limit-train", "16", "--limit-test", "8", "--epochs", "1", "--batch-size", "8", *CPU]
RUN_FILES = ["metrics.json", "per_class.csv", "curves.png", "confusion.png", "worst.png",
             "pr_curves.png", "model.pt", "checkpoint.pt", "tb"]


def train_run(*argv):
    return cli.run(train.main, [str(arg) for arg in argv])


def test_batches_load_in_both_pickle_styles(cifar_dir):
    train_set, test_set = load_cifar10(cifar_dir)
    assert train_set.images.shape == (200, 3, 32, 32) and len(test_set) == 100
    images, labels = learnable_cifar(40, 1)   # data_batch_1: protocol 2 with byte keys
    assert torch.equal(train_set.images[:40], torch.from_numpy(images))
    assert train_set.labels[:40].tolist() == labels.tolist()


def test_a_batch_cannot_run_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(tmp_path / "pwned")],))
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({"data": Exploit()}))
    with pytest.raises(UserError, match="not allowed in a CIFAR batch"):
        read_batch(tmp_path / "data_batch_1")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((4, 3, 16, 16), np.uint8), [0, 1, 2, 3], "uint8 N x 3072"),
    (np.zeros((4, 3, 32, 32), np.float32), [0, 1, 2, 3], "uint8 N x 3072"),
    (np.zeros((4, 3, 32, 32), np.uint8), [0, 1, 2], "expected 4 labels"),
    (np.zeros((4, 3, 32, 32), np.uint8), [0, 1, 2, 10], "labels in 0-9"),
])
def test_misshaped_batches_are_clear_errors(tmp_path, images, labels, message):
    write_cifar_batch(tmp_path / "data_batch_1", images, np.array(labels))
    with pytest.raises(UserError, match=message):
        read_batch(tmp_path / "data_batch_1")


def test_truncated_batch_is_a_clear_error(tmp_path):
    write_cifar_batch(tmp_path / "test_batch", *learnable_cifar(10, 0))
    (tmp_path / "test_batch").write_bytes((tmp_path / "test_batch").read_bytes()[:5000])
    with pytest.raises(UserError, match="cannot read"):
        read_batch(tmp_path / "test_batch")


def test_missing_cifar_offline_is_exit_2_with_a_message(tmp_path):
    result = run_script("cifar10/train.py", "--model", "resnet20", "--data-dir", tmp_path,
                        "--out", tmp_path / "run", *CPU,
                        env={"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "CIFAR-10 is not in" in result.stderr and "cifar-10-python.tar.gz" in result.stderr
    assert not (tmp_path / "cifar-10-batches-py").exists()


# vgg19_torchvision (139M parameters) writes 1.6 GB per run: covered by the head test below.
@pytest.mark.parametrize("name", sorted(set(MODELS) - {"vgg19_torchvision"}))
def test_every_model_finishes_a_limited_run(cifar_dir, tmp_path, name):
    out = tmp_path / name
    resize = ["--resize", "32"] if name.startswith("resnet1") or name == "resnet50" else []
    assert train_run("--model", name, "--data-dir", cifar_dir, "--out", out, *TINY, *resize) == 0
    for file in RUN_FILES:
        assert (out / file).exists(), file
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == name and sum(map(sum, metrics["confusion"])) == 8


def test_torchvision_vgg19_gets_a_ten_way_head():
    model = MODELS["vgg19_torchvision"]()
    assert model.classifier[-1].out_features == 10
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_the_models_learn_the_synthetic_classes(cifar_dir, tmp_path):
    out = tmp_path / "model3"
    assert train_run("--model", "model3", "--data-dir", cifar_dir, "--out", out, "--epochs", 8,
                     "--augment", "flip-crop", *CPU) == 0
    # chance is 0.1; eight epochs on 200 images give 0.41-0.80 over seeds 0-3
    assert json.loads((out / "metrics.json").read_text())["final"]["test_accuracy"] > 0.3


def test_val_split_picks_per_epoch_figures_and_tests_once(cifar_dir, tmp_path):
    out = tmp_path / "run"
    assert train_run("--model", "lenet", "--data-dir", cifar_dir, "--out", out, "--epochs", 2,
                     "--batch-size", 20, "--val-split", 50, "--augment", "photometric", *CPU) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_split"] == "val"
    assert all("val_accuracy" in r and "test_accuracy" not in r for r in metrics["history"])
    assert {"val_accuracy", "test_accuracy"} <= metrics["final"].keys()
    assert sum(map(sum, metrics["confusion"])) == 100            # the whole test set, once
    assert sum(map(sum, metrics["train_confusion"])) == 150      # 200 - 50 held out


def test_pretrained_offline_explains_and_weights_file_works(cifar_dir, tmp_path, capsys):
    common = ["--model", "resnet50", "--data-dir", cifar_dir, "--resize", "32", *TINY]
    assert train_run(*common, "--pretrained", "--out", tmp_path / "a") == 2
    error = capsys.readouterr().err
    assert "resnet50-0676ba61.pth" in error and "--weights" in error
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "imagenet.pth")
    assert train_run(*common, "--weights", tmp_path / "imagenet.pth", "--out", tmp_path / "b") == 0
    assert "random: fc.weight, fc.bias" in capsys.readouterr().out


def test_test_script_and_report_section(cifar_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    out = runs / "cifar10" / "vgg16"
    assert train_run("--model", "vgg16", "--data-dir", cifar_dir, "--out", out, *TINY) == 0
    trained = json.loads((out / "metrics.json").read_text())
    assert cli.run(cifar_test.main, ["--run", str(out), "--device", "cpu"]) == 0
    assert "most confused:" in capsys.readouterr().out
    evaluated = json.loads((out / "eval" / "metrics.json").read_text())
    assert evaluated["test_images"] == 100   # test.py evaluates the whole test set
    text, comparisons = cifar_report.section(runs)
    assert "| VGG-16 | report | 1 | 4 | 0 |" in text
    assert Comparison("CIFAR-10", "VGG-16 · report 003", 100 * trained["final"]["test_accuracy"],
                      24.5, None, "other recipe") in comparisons   # --batch-size 8, not 4
    assert f"{trained['parameters']:,}" in text and "not run: `make cifar10-lenet`" in text


def report_targets():
    names = [name for _, name, _, _ in cifar_report.REPORT_000]
    names += [f"{name}-paper" for name in cifar_report.PAPER]
    names += [row[1] for row in cifar_report.REPORT_001]
    names += list(cifar_report.REPORT_003) + [name for _, name, _ in cifar_report.REPORT_004]
    return names


def test_every_report_row_has_a_make_target_writing_its_run():
    for name in report_targets():
        result = subprocess.run(["make", "-n", f"cifar10-{name}"], cwd=REPO, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
        assert f'--out "runs/cifar10/{name}" ' in result.stdout


def test_paper_targets_follow_the_paper():
    command = subprocess.run(["make", "-n", "cifar10-resnet110-paper"], cwd=REPO,
                             capture_output=True, text=True).stdout
    for flag in ("--lr 0.1", "--momentum 0.9", "--weight-decay 1e-4", "--batch-size 128",
                 "--val-split 5000", "--milestones 91 136", "--epochs 182",
                 "--warmup-iters 400 --warmup-lr 0.01", "--augment flip-crop"):
        assert flag in command
