"""mnist/train.py, test.py, ablations.py and `make report` on a tiny synthetic MNIST."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import cli, report
from common.nets import load_initial_weights
from conftest import REPO, run_script
from mnist import ablations, train
from mnist import test as mnist_test
from mnist.models import MODELS

CPU = ["--device", "cpu"]
RUN_FILES = ["metrics.json", "per_class.csv", "curves.png", "confusion.png", "worst.png",
             "pr_curves.png", "model.pt", "checkpoint.pt", "tb"]


def train_run(*argv):
    return cli.run(train.main, [str(arg) for arg in argv])


def history_without_times(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # the run's planned --epochs differs between a resumed run and a straight one
    return [{k: v for k, v in record.items() if k not in ("seconds", "planned_epochs")}
            for record in metrics["history"]]


def test_training_writes_a_complete_run_directory(mnist_dir, tmp_path):
    out = tmp_path / "bn-net"
    assert train_run("--model", "bn_net", "--data-dir", mnist_dir, "--out", out, "--epochs", 3,
                     *CPU) == 0
    for name in RUN_FILES:
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target"] == "mnist-bn-net" and metrics["parameters"] == 44_470
    assert metrics["args"]["optimizer"] == "adam" and metrics["args"]["lr"] == 0.001
    assert [record["epoch"] for record in metrics["history"]] == [1, 2, 3]
    assert metrics["final"]["test_accuracy"] > 0.9   # the synthetic digits are easy
    assert sum(map(sum, metrics["confusion"])) == 200
    assert len(metrics["per_class"]["train_accuracy"]) == 10
    assert len((out / "per_class.csv").read_text().splitlines()) == 11

    events = EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0}).Reload()
    tags = events.Tags()
    scalars = {"loss/train", "loss/test", "accuracy/test", "lr", "loss/train_step"}
    assert scalars <= set(tags["scalars"])
    assert len(events.Scalars("loss/train_step")) == 3 * 10   # 600 images / batch 64
    assert tags["graph"]
    assert (out / "tb" / "projector_config.pbtxt").exists()
    tensors = EventAccumulator(str(out / "tb"), size_guidance={"tensors": 0}).Reload()
    pr_tags = tensors.Tags()["tensors"]
    assert any(tag.startswith("pr/") for tag in pr_tags)


def test_resume_continues_exactly(mnist_dir, tmp_path):
    common = ["--model", "lenet", "--data-dir", mnist_dir, *CPU]
    assert train_run(*common, "--epochs", 2, "--out", tmp_path / "straight") == 0
    assert train_run(*common, "--epochs", 1, "--out", tmp_path / "resumed") == 0
    assert train_run(*common, "--epochs", 2, "--out", tmp_path / "resumed", "--resume") == 0
    straight_history = history_without_times(tmp_path / "straight")
    assert straight_history == history_without_times(tmp_path / "resumed")
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


def test_a_finished_run_is_never_overwritten(mnist_dir, tmp_path, capsys):
    args = ["--model", "conv_pool", "--data-dir", mnist_dir, "--out", tmp_path / "run",
            "--epochs", 1, *CPU]
    assert train_run(*args) == 0
    before = (tmp_path / "run" / "metrics.json").read_bytes()
    assert train_run(*args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.json").read_bytes() == before


def test_divergence_stops_with_exit_3_and_keeps_the_last_good_checkpoint(mnist_dir, tmp_path,
                                                                          capsys):
    out = tmp_path / "run"
    # lr 0.01 in epoch 1, then multiplied by 1e20: the loss must blow up in epoch 2
    code = train_run("--model", "model1", "--data-dir", mnist_dir, "--out", out, "--epochs", 3,
                     "--scheduler", "step", "--step-size", 1, "--gamma", 1e20, *CPU)
    assert code == 3
    error = capsys.readouterr().err
    assert "epoch 2, step" in error and "learning rate 1e+18" in error
    assert "checkpoint of epoch 1 stays" in error
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in checkpoint["model"].values())
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--model", "lenet", "--data-dir", "{empty}"], "MNIST is not in"),
    (["--model", "lenet5"], "invalid choice: 'lenet5'"),
    (["--model", "lenet", "--lr", "-0.1"], "argument --lr: must be > 0, got -0.1"),
    (["--model", "lenet", "--lr", "inf"], "argument --lr: must be a finite number, got inf"),
    (["--model", "lenet", "--resume", "{damaged}"], "cannot be read"),
    (["--model", "alexnet", "--activation", "sigmoid"], "--model mlp only"),
])
def test_bad_input_is_one_message_and_exit_code_2(mnist_dir, tmp_path, arguments, message):
    damaged = tmp_path / "checkpoint.pt"
    damaged.write_bytes(b"\x80\x02 truncated")
    arguments = [a.format(empty=tmp_path / "empty", damaged=damaged) for a in arguments]
    result = run_script("mnist/train.py", *arguments, "--out", tmp_path / "run", *CPU,
                        env={"DATA_DIR": str(mnist_dir), "HTTPS_PROXY": "http://127.0.0.1:9",
                             "HTTP_PROXY": "http://127.0.0.1:9"})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2   # argparse adds its usage line
    assert not (tmp_path / "empty" / "MNIST").exists()    # a failed download leaves nothing


def test_test_script_reevaluates_a_run(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_run("--model", "mlp", "--fc-layers", 2, "--activation", "sigmoid",
                     "--no-batch-norm", "--data-dir", mnist_dir, "--out", out, "--epochs", 2,
                     *CPU) == 0
    trained = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert cli.run(mnist_test.main, ["--run", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "most confused:" in printed
    evaluated = json.loads((out / "eval" / "metrics.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(trained["final"]["test_accuracy"])
    for name in ("per_class.csv", "confusion.png", "worst.png", "pr_curves.png"):
        assert (out / "eval" / name).exists()
    before = (out / "metrics.json").read_bytes()
    assert cli.run(mnist_test.main, ["--run", str(out), "--out", str(out)]) == 2
    assert f"--out {out} holds a training run" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before


def test_torchrun_two_cpu_processes_write_one_run(mnist_dir, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(REPO / "mnist" / "train.py"), "--model", "lenet", "--data-dir", str(mnist_dir),
         "--out", str(out), "--epochs", "2", "--device", "cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and len(metrics["history"]) == 2
    assert result.stdout.count("epoch   2/2") == 1   # only rank 0 reports
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]


def test_pretrained_offline_explains_and_weights_file_works(mnist_dir, tmp_path, capsys):
    common = ["--model", "resnet18", "--data-dir", mnist_dir, "--epochs", 1, "--limit-train", 64,
              "--limit-test", 32, *CPU]
    assert train_run(*common, "--pretrained", "--out", tmp_path / "a") == 2
    error = capsys.readouterr().err
    assert "resnet18-f37072fd.pth" in error and "--weights" in error

    imagenet = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(imagenet, tmp_path / "resnet18-f37072fd.pth")
    assert train_run(*common, "--weights", tmp_path / "resnet18-f37072fd.pth",
                     "--out", tmp_path / "b") == 0
    assert "initialised 120 of 122 tensors" in capsys.readouterr().out


def test_imagenet_rgb_filters_are_summed_into_one_channel(tmp_path):
    imagenet = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(imagenet, tmp_path / "imagenet.pth")
    model = MODELS["resnet18"]()
    random_head = model.fc.weight.clone()
    messages = []
    load_initial_weights(model, pretrained=False, weights_file=tmp_path / "imagenet.pth",
                         log=messages.append)
    assert torch.allclose(model.conv1.weight, imagenet["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(model.layer1[0].conv1.weight, imagenet["layer1.0.conv1.weight"])
    assert torch.equal(model.fc.weight, random_head)   # the new 10-way head stays random
    assert "random: fc.weight, fc.bias" in messages[0]


def test_ablations_table_and_report(mnist_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    passed_on = ["--data-dir", str(mnist_dir), "--epochs", "1", "--limit-train", "200", *CPU]
    assert cli.run(ablations.main, ["--out", str(runs / "mnist" / "ablations"), *passed_on]) == 0
    table = (runs / "mnist" / "ablations" / "table.md").read_text().splitlines()
    assert len(table) == 2 + 12
    assert "| 12 | j | conv_pool | 1 | relu | yes | adam | 3,202 |" in table[-1]
    assert "| 1 | c, d | mlp | 2 | sigmoid | no | sgd |" in table[2]
    capsys.readouterr()
    assert cli.run(ablations.main, ["--out", str(runs / "mnist" / "ablations"), *passed_on]) == 0
    assert capsys.readouterr().out.count("already holds a finished run") == 12

    assert train_run("--model", "lenet", "--data-dir", mnist_dir, "--epochs", 1, "--out",
                     runs / "mnist" / "lenet", *CPU) == 0
    lenet = json.loads((runs / "mnist" / "lenet" / "metrics.json").read_text())
    accuracy = lenet["final"]["test_accuracy"]
    assert cli.run(report.main, ["--runs", str(runs)]) == 0
    text = (runs / "REPORT.md").read_text()
    assert f"| {100 * accuracy:.2f} (partial) | 98.92 |" in text   # 1 epoch of 30
    assert "not run: `make mnist-alexnet`" in text
    assert "| 12 | j | conv_pool |" in text
