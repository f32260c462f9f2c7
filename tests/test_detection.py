"""train_yolo.py, train_ssd.py and test.py of voc2007/ on a generated VOC-layout set: the run
directory, overfitting, exact resume, torchrun, divergence and the messages of an offline
machine."""
import json
import os
import subprocess
import sys

import pytest
import torch

from common import cli
from conftest import REPO, run_script
from voc2007 import test as voc_test
from voc2007 import train_ssd, train_yolo
from voc2007.synthetic import write_synthetic_voc

CPU = ["--device", "cpu", "--workers", "0"]
RUN_FILES = ["metrics.json", "per_class.csv", "curves.png", "pr_curves.png", "detections.png",
             "model.pt", "checkpoint.pt", "tb"]
# A handful of images learnt by heart: no augmentation, Adam, no schedule, no dropout.
MEMORISE = ["--augment", "none", "--optimizer", "adam", "--lr", "1e-3", "--scheduler", "none",
            "--warmup-iters", "0", "--limit-train", "8", "--limit-test", "8", "--batch-size",
            "8", "--eval-every", "1000"]


@pytest.fixture(scope="module")
def voc_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    write_synthetic_voc(root, trainval=24, test=12, seed=3)
    return root


def yolo(*argv):
    return cli.run(train_yolo.main, [str(arg) for arg in argv])


def ssd(*argv):
    return cli.run(train_ssd.main, [str(arg) for arg in argv])


def metrics(out):
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("train, extra", [(yolo, ["--dropout", "0"]), (ssd, [])])
def test_a_tiny_detector_memorises_a_handful_of_images(voc_dir, tmp_path, train, extra):
    out = tmp_path / "run"
    assert train("--model", "tiny", "--data-dir", voc_dir, "--out", out, "--epochs", 150,
                 *MEMORISE, *extra, *CPU) == 0
    for name in RUN_FILES:
        assert (out / name).exists(), name
    recorded = metrics(out)
    assert recorded["final"]["trainval_map"] >= 0.9
    assert recorded["final"]["trainval_images"] == 8 and recorded["final"]["test_images"] == 8
    assert len(recorded["per_class"]["test_ap"]) == 20 and recorded["world_size"] == 1
    assert recorded["history"][-1]["eval_images"] == 8   # the last epoch is evaluated
    assert "test_map" not in recorded["history"][0]      # --eval-every 1000: not the first
    assert len((out / "per_class.csv").read_text().splitlines()) == 22   # header, 20, mAP


def test_yolo_records_its_loss_terms_and_the_paper_schedule(voc_dir, tmp_path):
    out = tmp_path / "run"
    assert yolo("--model", "tiny", "--data-dir", voc_dir, "--out", out, "--epochs", 27,
                "--batch-size", 8, "--limit-train", 8, "--limit-test", 4, "--eval-every", 100,
                *CPU) == 0
    recorded = metrics(out)
    assert recorded["args"]["milestones"] == [15, 21]   # 75/135 and 105/135 of 27 epochs
    assert recorded["args"]["recipe"] == "paper" and recorded["detector"] == "yolo"
    first = recorded["history"][0]
    assert {"train_coord", "train_object", "train_no_object", "train_class"} <= first.keys()
    assert first["lr_first"] == pytest.approx(1e-3)   # the linear warm-up starts at 1e-3
    total = sum(first[f"train_{term}"] for term in ("coord", "object", "no_object", "class"))
    assert first["train_loss"] == pytest.approx(total, rel=1e-5)


def history_without_times(out):
    return [{key: value for key, value in record.items()
             if key not in ("seconds", "planned_epochs")}
            for record in metrics(out)["history"]]


@pytest.mark.parametrize("pipeline", ["workers", "device"])
def test_resume_continues_exactly(voc_dir, tmp_path, pipeline):
    common = ["--model", "tiny", "--data-dir", voc_dir, "--batch-size", 4, "--limit-train", 12,
              "--limit-test", 4, "--eval-every", 1, "--input", pipeline, *CPU]
    assert ssd(*common, "--epochs", 2, "--out", tmp_path / "straight") == 0
    assert ssd(*common, "--epochs", 1, "--out", tmp_path / "resumed") == 0
    assert ssd(*common, "--epochs", 2, "--out", tmp_path / "resumed", "--resume") == 0
    assert history_without_times(tmp_path / "straight") \
        == history_without_times(tmp_path / "resumed")
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


def test_a_resume_evaluates_the_epoch_an_interrupted_evaluation_left_out(voc_dir, tmp_path):
    """The checkpoint is written before the evaluation (which reads image files) and again
    after it: killed in between, the run resumes by evaluating that epoch."""
    common = ["--model", "tiny", "--data-dir", voc_dir, "--batch-size", 4, "--limit-train", 8,
              "--limit-test", 4, "--eval-every", 1, *CPU]
    assert ssd(*common, "--epochs", 2, "--out", tmp_path / "straight") == 0
    assert ssd(*common, "--epochs", 1, "--out", tmp_path / "resumed") == 0
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    del checkpoint["history"][-1]["test_map"], checkpoint["history"][-1]["eval_images"]
    torch.save(checkpoint, tmp_path / "resumed" / "checkpoint.pt")   # as if killed there
    (tmp_path / "resumed" / "metrics.json").unlink()
    assert ssd(*common, "--epochs", 2, "--out", tmp_path / "resumed", "--resume") == 0
    assert history_without_times(tmp_path / "straight") \
        == history_without_times(tmp_path / "resumed")


def test_a_resume_takes_the_runs_augmentation_and_recipe(voc_dir, tmp_path, capsys):
    common = ["--model", "tiny", "--data-dir", voc_dir, "--batch-size", 4, "--limit-train", 8,
              "--limit-test", 4, "--eval-every", 100, *CPU]
    report = ["--recipe", "report"]   # Adam, no augmentation
    assert yolo(*common, *report, "--epochs", 2, "--out", tmp_path / "straight") == 0
    assert yolo(*common, *report, "--epochs", 1, "--out", tmp_path / "resumed") == 0
    capsys.readouterr()
    # no --recipe: the paper's recipe and its augmentation would be the defaults
    assert yolo(*common, "--epochs", 2, "--out", tmp_path / "resumed", "--resume") == 0
    assert "YOLOv1 tiny (report recipe)" in capsys.readouterr().out
    assert [record["train_loss"] for record in metrics(tmp_path / "straight")["history"]] \
        == [record["train_loss"] for record in metrics(tmp_path / "resumed")["history"]]
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


def test_the_default_out_of_the_recipes_own_backbone_is_its_make_targets():
    assert train_yolo.parse_args([]).out == "runs/voc2007/yolo"
    assert train_yolo.parse_args(["--recipe", "report"]).out == "runs/voc2007/yolo-report"
    assert train_yolo.parse_args(["--model", "vgg16"]).out == "runs/voc2007/yolo-vgg16"
    assert train_ssd.parse_args([]).out == "runs/voc2007/ssd"
    assert train_ssd.parse_args(["--model", "tiny"]).out == "runs/voc2007/ssd-tiny"


def test_resume_refuses_the_other_detectors_checkpoint(voc_dir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--model", "tiny", "--data-dir", voc_dir, "--batch-size", 4, "--limit-train", 4,
              "--limit-test", 4, "--out", out, *CPU]
    assert ssd(*common, "--epochs", 1) == 0
    assert yolo(*common, "--epochs", 2, "--resume") == 2
    assert "is of voc2007 model 'ssd-tiny', not voc2007 'yolo-tiny'" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["train_yolo.py", "train_ssd.py"])
def test_torchrun_two_cpu_processes_write_one_run(voc_dir, tmp_path, script):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(REPO / "voc2007" / script), "--model", "tiny", "--data-dir", str(voc_dir),
         "--out", str(out), "--epochs", "2", "--batch-size", "4", "--limit-train", "8",
         "--limit-test", "6", "--eval-every", "1", *CPU],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    recorded = metrics(out)
    assert recorded["world_size"] == 2 and len(recorded["history"]) == 2
    assert recorded["final"]["test_images"] == 6   # both ranks' shards gathered: 3 + 3
    assert result.stdout.count("epoch   2/2") == 1   # only rank 0 reports


def test_test_script_reevaluates_a_run(voc_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert yolo("--model", "tiny", "--data-dir", voc_dir, "--out", out, "--epochs", 40,
                *MEMORISE, "--dropout", "0", *CPU) == 0
    trained = metrics(out)["final"]
    capsys.readouterr()
    assert cli.run(voc_test.main, ["--run", str(out), "--device", "cpu", "--workers", "0",
                                   "--limit-test", "8"]) == 0
    printed = capsys.readouterr().out
    assert "AP (%)   aeroplane" in printed and "trainval" in printed
    evaluated = json.loads((out / "eval" / "metrics.json").read_text())
    assert evaluated["map"]["test"] == pytest.approx(trained["test_map"])
    assert evaluated["map"]["trainval"] == pytest.approx(trained["trainval_map"])
    for name in ("per_class.csv", "pr_curves.png", "detections.png"):
        assert (out / "eval" / name).exists()

    # the run's own folder is no place for an evaluation, nor is an evaluation a run
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert cli.run(voc_test.main, ["--run", str(out), "--out", str(out)]) == 2
    assert f"--out {out} holds a training run" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before
    assert cli.run(voc_test.main, ["--run", str(out / "eval")]) == 2
    assert "is not the metrics.json of a training run" in capsys.readouterr().err


def test_a_diverging_detector_stops_with_exit_3(voc_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert yolo("--model", "tiny", "--data-dir", voc_dir, "--out", out, "--epochs", 3,
                "--batch-size", 4, "--limit-train", 8, "--lr", 1e5, "--warmup-iters", 0,
                *CPU) == 3
    assert "the training loss" in capsys.readouterr().err
    assert json.loads((out / "diverged.json").read_text())["epoch"] == 1


@pytest.mark.parametrize("script, arguments, message", [
    ("voc2007/train_yolo.py", ["--model", "tiny"], "make data-voc2007"),
    ("voc2007/train_ssd.py", ["--model", "tiny"], "make data-voc2007"),
    ("voc2007/train_yolo.py", ["--model", "tiny", "--mixup", "0.2"],
     "unrecognized arguments: --mixup"),
    ("voc2007/train_yolo.py", ["--model", "tiny", "--dropout", "1.5"], "--dropout must lie"),
])
def test_bad_input_is_one_message_and_exit_code_2(tmp_path, script, arguments, message):
    result = run_script(script, *arguments, "--data-dir", tmp_path / "empty", "--out",
                        tmp_path / "run", *CPU, env={"HTTPS_PROXY": "http://127.0.0.1:9",
                                                     "HTTP_PROXY": "http://127.0.0.1:9"})
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_pretrained_backbone_offline_is_exit_2_naming_the_file(voc_dir, tmp_path, capsys):
    assert ssd("--model", "ssd300", "--data-dir", voc_dir, "--out", tmp_path / "run",
               "--epochs", 1, *CPU) == 2
    error = capsys.readouterr().err
    assert "vgg16_features-amdegroot-88682ab5.pth" in error and "--weights" in error


def test_a_run_starts_from_another_runs_weights(voc_dir, tmp_path, capsys):
    common = ["--model", "tiny", "--data-dir", voc_dir, "--batch-size", 4, "--limit-train", 4,
              "--limit-test", 4, "--epochs", 1, *CPU]
    assert ssd(*common, "--out", tmp_path / "first") == 0
    assert ssd(*common, "--out", tmp_path / "second", "--weights",
               tmp_path / "first" / "model.pt") == 0
    assert "initialised 22 of 22 tensors" in capsys.readouterr().out


def test_continue_refuses_to_stretch_a_run_whose_schedule_follows_its_epochs(voc_dir, tmp_path,
                                                                              capsys):
    out = tmp_path / "run"
    common = ["--model", "tiny", "--data-dir", voc_dir, "--batch-size", 4, "--limit-train", 4,
              "--limit-test", 4, "--out", out, "--continue", *CPU]
    assert yolo(*common, "--epochs", 1) == 0
    assert yolo(*common, "--epochs", 1) == 0
    assert "already holds a finished run of 1 epochs" in capsys.readouterr().out
    # the paper's milestones sit at fractions of --epochs: 3 epochs would be another schedule
    assert yolo(*common, "--epochs", 3) == 2
    assert "which its multistep schedule is stretched over" in capsys.readouterr().err
