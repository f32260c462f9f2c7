"""The training core every dataset shares: the --resume rule, refused and honoured flags, the
batch of one, exploding losses, precision and what metrics.json records."""
import json
import math
import shutil

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cifar10 import train as cifar_train
from common import cli, runtime
from common.errors import Diverged, UserError
from common.training import check_weights_finite, load_optimizer_state
from mnist import train
from mnist.train import RECIPES as MNIST_RECIPES
from mnist.models import MODELS as MNIST_MODELS

CPU = ["--device", "cpu"]


def train_run(*argv):
    return cli.run(train.main, [str(arg) for arg in argv])


def metrics(out):
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture
def lenet_epoch(mnist_dir, tmp_path):
    """One epoch of LeNet's recipe (600 warm-up iterations at lr 0.05, then 0.005) on 300
    images of batch 64 (5 steps): a checkpoint in the middle of the warm-up."""
    out = tmp_path / "lenet"
    common = ["--model", "lenet", "--data-dir", mnist_dir, "--limit-train", 300, *CPU]
    assert train_run(*common, "--epochs", 1, "--out", out) == 0
    return out, common


@pytest.mark.parametrize("changed, shown", [
    (["--lr", "0.0001"], "--lr 0.0001 (the run's: 0.005)"),          # during warm-up
    (["--warmup-lr", "0.5"], "--warmup-lr 0.5 (the run's: 0.05)"),
    (["--optimizer", "adam"], "--optimizer adam (the run's: sgd)"),
    (["--batch-size", "32"], "--batch-size 32 (the run's: 64)"),
    (["--momentum", "0.9"], "--momentum 0.9 (the run's: 0.8)"),
])
def test_resume_refuses_a_changed_recipe_and_says_how_to_start_anew(lenet_epoch, capsys, changed,
                                                                    shown):
    out, common = lenet_epoch
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert train_run(*common, "--epochs", 2, "--out", out, "--resume", *changed) == 2
    error = capsys.readouterr().err
    assert shown in error
    assert f"--weights {out / 'checkpoint.pt'} --out NEW_FOLDER" in error
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_takes_the_checkpoints_recipe_for_flags_left_out(mnist_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--model", "model2", "--data-dir", mnist_dir, "--limit-train", 200, *CPU]
    assert train_run(*common, "--epochs", 1, "--lr", 0.02, "--momentum", 0.5, "--out", out) == 0
    # the recipe says lr 0.01, momentum 0.9: the resumed run keeps the checkpoint's 0.02, 0.5
    assert train_run(*common, "--epochs", 2, "--out", out, "--resume") == 0
    recorded = metrics(out)
    assert recorded["args"]["lr"] == 0.02 and recorded["args"]["momentum"] == 0.5
    assert [record["lr_first"] for record in recorded["history"]] == [0.02, 0.02]


def test_a_new_run_starts_from_a_checkpoints_weights(lenet_epoch, tmp_path, capsys):
    out, common = lenet_epoch
    assert train_run(*common, "--epochs", 1, "--lr", 0.001, "--warmup-iters", 0,
                     "--weights", out / "checkpoint.pt", "--out", tmp_path / "new") == 0
    assert "initialised 10 of 10 tensors" in capsys.readouterr().out
    assert metrics(tmp_path / "new")["args"]["warmup_lr"] is None


def test_history_records_the_rates_an_epoch_used_and_tensorboard_every_step(lenet_epoch):
    out, _ = lenet_epoch
    record = metrics(out)["history"][0]
    assert record["lr_first"] == 0.05 and record["lr_last"] == 0.05   # 5 steps of warm-up
    events = EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0}).Reload()
    assert [event.value for event in events.Scalars("lr")] == pytest.approx([0.05] * 5)
    assert metrics(out)["precision"] == "fp32"


@pytest.mark.parametrize("flags, message", [
    (["--model", "bn_net", "--momentum", "0.9"], "--momentum applies with --optimizer sgd only"),
    (["--model", "model1", "--optimizer", "asgd", "--momentum", "0.5"],
     "--momentum applies with --optimizer sgd only"),
    (["--model", "model1", "--gamma", "0.5"], "--gamma applies with --scheduler step or"),
    (["--model", "model1", "--scheduler", "cosine", "--milestones", "3"],
     "--milestones applies with --scheduler multistep only"),
    (["--model", "model1", "--step-size", "3"], "--step-size applies with --scheduler step"),
    (["--model", "model1", "--warmup-lr", "0.1"], "--warmup-lr applies with --warmup-iters"),
    (["--model", "resnet18", "--pretrained", "--weights", "w.pt"], "give one"),
    (["--model", "lenet", "--resume", "--weights", "w.pt"], "--weights starts a new run"),
    (["--model", "model1", "--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
    (["--model", "bn_net", "--sync-bn"], "this run has one process"),
])
def test_flags_that_would_do_nothing_are_refused(mnist_dir, tmp_path, capsys, flags, message):
    assert train_run(*flags, "--data-dir", mnist_dir, "--out", tmp_path / "run", "--epochs", 1,
                     *CPU) == 2
    assert message in capsys.readouterr().err


def test_a_recipe_value_the_optimizer_does_not_use_is_dropped_not_recorded(cifar_dir, tmp_path):
    out = tmp_path / "vgg16"
    assert cli.run(cifar_train.main, ["--model", "vgg16", "--data-dir", str(cifar_dir),
                                      "--out", str(out), "--limit-train", "16", "--limit-test",
                                      "8", "--epochs", "1", *CPU]) == 0
    recorded = metrics(out)["args"]
    assert recorded["optimizer"] == "adam" and recorded["momentum"] is None
    assert recorded["gamma"] is None and recorded["milestones"] is None


@pytest.mark.parametrize("dataset, recipes, models", [
    ("mnist", MNIST_RECIPES, MNIST_MODELS),
    ("cifar10", cifar_train.RECIPES, cifar_train.MODELS),
])
def test_recipes_hold_no_value_they_do_not_use(dataset, recipes, models):
    for name, recipe in recipes.items():
        args = cli.parse_training_args(["--model", name], description="", dataset=dataset,
                                       models=models, recipes=recipes)
        assert {key: getattr(args, key) for key in recipe} == recipe, name


def test_a_last_batch_of_one_never_reaches_batch_norm(mnist_dir, tmp_path):
    # 65 images, batch 64: the second batch would hold one image (BatchNorm1d fails on it)
    out = tmp_path / "mlp"
    assert train_run("--model", "mlp", "--data-dir", mnist_dir, "--limit-train", 65,
                     "--epochs", 1, "--out", out, *CPU) == 0
    assert sum(map(sum, metrics(out)["train_confusion"])) == 64


def test_a_batch_of_one_for_a_batch_norm_model_is_refused(mnist_dir, tmp_path, capsys):
    assert train_run("--model", "mlp", "--data-dir", mnist_dir, "--batch-size", 1,
                     "--epochs", 1, "--out", tmp_path / "run", *CPU) == 2
    assert "cannot train batch norm; raise --batch-size" in capsys.readouterr().err


def test_an_exploding_loss_stops_the_run_with_exit_3(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_run("--model", "lenet", "--data-dir", mnist_dir, "--lr", 50, "--warmup-iters",
                     0, "--epochs", 2, "--out", out, *CPU) == 3
    error = capsys.readouterr().err
    assert "epoch 1, step" in error and "(learning rate 50)" in error
    assert "Start again with a lower --lr" in error
    assert not (out / "metrics.json").exists()
    recorded = json.loads((out / "diverged.json").read_text())
    assert recorded["epoch"] == 1 and recorded["lr"] == 50 and recorded["loss"] > 230
    assert f"step {recorded['step']} of" in error


def test_precision_follows_the_device():
    cpu = torch.device("cpu")
    assert runtime.resolve_precision("auto", cpu) == "fp32"
    assert runtime.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        runtime.resolve_precision("fp16", cpu)


def test_precision_on_gpus_with_and_without_bf16(monkeypatch):
    """auto is each network's choice: fp32 for the small ones, bf16 (fp16 without it) for
    those that say so (cuda_precision)."""
    cuda = torch.device("cuda", 0)
    small, wide = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    wide.cuda_precision = "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert runtime.resolve_precision("auto", cuda, wide) == "fp16"
    assert runtime.resolve_precision("auto", cuda, small) == "fp32"
    with pytest.raises(UserError, match=r"Tesla T4 \(compute capability 7.5\) has no native"):
        runtime.resolve_precision("bf16", cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert runtime.resolve_precision("auto", cuda, wide) == "bf16"
    assert runtime.resolve_precision("auto", cuda, small) == "fp32"
    assert runtime.resolve_precision("auto", cuda) == "fp32"
    assert runtime.resolve_precision("fp16", cuda) == "fp16"
    from cifar10.models import MODELS
    from voc2007.yolo import build_yolo
    assert runtime.resolve_precision("auto", cuda, MODELS["resnet50"]()) == "bf16"
    assert runtime.resolve_precision("auto", cuda, MODELS["resnet20"]()) == "fp32"
    assert runtime.resolve_precision("auto", cuda, build_yolo("tiny")) == "bf16"


def test_continue_starts_skips_and_extends_a_run(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--model", "model2", "--data-dir", mnist_dir, "--limit-train", 128, "--out", out,
              "--continue", *CPU]
    assert train_run(*common, "--epochs", 1) == 0            # nothing there: starts
    written = (out / "metrics.json").read_bytes()
    assert train_run(*common, "--epochs", 1) == 0            # finished: left as it is
    assert "already holds a finished run of 1 epochs" in capsys.readouterr().out
    assert (out / "metrics.json").read_bytes() == written
    # nor is its data read: a --data-dir without MNIST does not matter
    assert train_run(*common, "--epochs", 1, "--data-dir", tmp_path / "no-mnist") == 0
    assert not (tmp_path / "no-mnist").exists()
    assert train_run(*common, "--epochs", 2) == 0            # more epochs: resumed
    assert len(metrics(out)["history"]) == 2


def test_continue_leaves_a_diverged_run_alone(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--model", "lenet", "--data-dir", mnist_dir, "--lr", 50, "--warmup-iters", 0,
              "--epochs", 1, "--out", out, *CPU]
    assert train_run(*common) == 3
    assert train_run(*common, "--continue") == 0
    assert "diverged earlier" in capsys.readouterr().out


def test_continue_refuses_a_run_of_another_recipe(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--model", "model2", "--data-dir", mnist_dir, "--out", out, *CPU]
    assert train_run(*common, "--epochs", 1, "--limit-train", 128) == 0
    # the quick run is not this target's: --continue says so instead of extending it
    assert train_run(*common, "--epochs", 2, "--continue") == 2
    assert "--limit-train None (the run's: 128)" in capsys.readouterr().err


def test_a_resumed_optimizer_takes_this_devices_settings_and_layout():
    """A CUDA checkpoint holds fused=True and channels_last momentum; resumed on the CPU the
    optimizer must stay unfused and its buffers contiguous like the model."""
    torch.manual_seed(0)
    saved_model = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    saved = torch.optim.SGD(saved_model.parameters(), lr=0.1, momentum=0.9, fused=True)
    images = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    saved_model(images).sum().backward()
    saved.step()
    model = torch.nn.Conv2d(3, 4, 3)
    model.load_state_dict(saved_model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    load_optimizer_state(optimizer, saved.state_dict())
    assert optimizer.param_groups[0]["fused"] is None
    buffer = optimizer.state[model.weight]["momentum_buffer"]
    assert buffer.is_contiguous()
    assert torch.equal(buffer, saved.state[saved_model.weight]["momentum_buffer"])


def test_flags_left_out_of_a_resume_take_the_runs_values(mnist_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--model", "model2", "--data-dir", mnist_dir, "--limit-train", 128, "--out", out]
    assert train_run(*common, "--epochs", 1, "--precision", "bf16", *CPU) == 0
    assert train_run(*common, "--epochs", 2, "--resume") == 0   # no --device, no --precision
    recorded = metrics(out)
    assert recorded["precision"] == "bf16" and recorded["args"]["device"] == "cpu"
    assert train_run(*common, "--epochs", 3, "--resume", "--precision", "fp32") == 0
    # each epoch records the precision it ran in
    assert [record["precision"] for record in metrics(out)["history"]] == ["bf16", "bf16", "fp32"]


def test_a_refused_rerun_keeps_the_record_of_a_divergence(mnist_dir, tmp_path):
    out = tmp_path / "run"
    # lr 0.01 in epoch 1, then multiplied by 1e20: the loss blows up in epoch 2
    common = ["--model", "model1", "--data-dir", mnist_dir, "--out", out, "--epochs", 3,
              "--scheduler", "step", "--step-size", 1, "--gamma", 1e20, *CPU]
    assert train_run(*common) == 3
    assert train_run(*common) == 2   # the folder holds a run: refused
    assert json.loads((out / "diverged.json").read_text())["epoch"] == 2


def test_a_resume_builds_the_runs_model_and_reads_its_data(mnist_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert train_run("--model", "mlp", "--fc-layers", 2, "--data-dir", mnist_dir,
                     "--limit-train", 128, "--epochs", 1, "--out", out, *CPU) == 0
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "no-data-here"))   # the default data dir
    # no --fc-layers (default 3) and no --data-dir: both are the run's
    assert train_run("--model", "mlp", "--epochs", 2, "--out", out, "--resume") == 0
    recorded = metrics(out)
    assert recorded["args"]["fc_layers"] == 2 and recorded["args"]["data_dir"] == str(mnist_dir)
    assert len(recorded["history"]) == 2


def test_resume_never_replaces_another_run_in_out(lenet_epoch, tmp_path, capsys):
    out, common = lenet_epoch
    other = tmp_path / "other"
    shutil.copytree(out, other)
    before = {path.name: path.read_bytes() for path in other.iterdir() if path.is_file()}
    capsys.readouterr()
    assert train_run(*common, "--epochs", 2, "--resume", out / "checkpoint.pt",
                     "--out", other) == 2
    assert f"--out {other} holds another run" in capsys.readouterr().err
    assert before == {path.name: path.read_bytes() for path in other.iterdir() if path.is_file()}
    # without --out, a checkpoint's run goes on in its own folder
    assert train_run(*common, "--epochs", 2, "--resume", other / "checkpoint.pt") == 0
    assert len(metrics(other)["history"]) == 2 and len(metrics(out)["history"]) == 1


def test_resume_refuses_fewer_epochs_than_the_run_has(lenet_epoch, capsys):
    out, common = lenet_epoch
    assert train_run(*common, "--epochs", 2, "--out", out, "--resume") == 0
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert train_run(*common, "--epochs", 1, "--out", out, "--resume") == 2
    assert "has already trained 2 epochs" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before


def test_weights_that_are_not_finite_are_a_divergence():
    model = torch.nn.Linear(2, 2)
    single = runtime.Distributed()
    check_weights_finite(model, epoch=3, steps=7, lr=0.1, dist=single)   # finite: nothing
    with torch.no_grad():
        model.bias[1] = math.inf
    with pytest.raises(Diverged, match="weights became NaN or infinite") as raised:
        check_weights_finite(model, epoch=3, steps=7, lr=0.1, dist=single)
    assert (raised.value.where["epoch"], raised.value.where["step"]) == (3, 7)
