"""Issue 17: one run per folder, a disk that refuses writes, files that load but are wrong,
values float32 cannot hold, SIGTERM, failed downloads.

Full disks and read-only folders are simulated (the writes are monkeypatched to raise ENOSPC
or EROFS): the tests run as root here, and root writes through chmod.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.figure
import pytest
import torch
from tensorboard.summary.writer import record_writer

from common import cli, files
from common.errors import UserError
from common.files import atomic_path, load_torch, write_json
from common.rundir import check_run_metrics, lock_run_folder, read_run_metrics, run_outcome
from common.training import load_model_state
from conftest import REPO, run_script
from mnist import test as mnist_test
from mnist import train

CPU = ["--device", "cpu"]


def train_run(*argv):
    return cli.run(train.main, [str(arg) for arg in argv])


def start_script(script, *args):
    """A project script as its own process, not waited for (its stderr kept)."""
    return subprocess.Popen([sys.executable, str(REPO / script), *map(str, args)], cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(condition, what, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def leftovers(folder):
    return [path.name for path in folder.rglob("*") if ".partial" in path.name]


@pytest.fixture(scope="module")
def lenet_run(mnist_dir, tmp_path_factory):
    """A finished one-epoch LeNet run on 128 images: its folder and the flags it ran with."""
    out = tmp_path_factory.mktemp("lenet") / "run"
    common = ["--model", "lenet", "--data-dir", mnist_dir, "--limit-train", 128, *CPU]
    assert train_run(*common, "--epochs", 1, "--out", out) == 0
    return out, common


# -- a folder belongs to one run -------------------------------------------------------------

def test_a_second_run_on_a_folder_is_refused_naming_the_first(mnist_dir, tmp_path):
    out = tmp_path / "run"
    flags = ["--model", "lenet", "--data-dir", mnist_dir, "--limit-train", 128, "--out", out,
             "--epochs", 1000, *CPU]
    # Two runs started together: whichever takes the folder first trains on, the other stops.
    runs = [start_script("mnist/train.py", *flags, "--lr", lr) for lr in (0.005, 0.01)]
    try:
        wait_for(lambda: any(run.poll() is not None for run in runs), "a run to stop")
        refused = next(run for run in runs if run.poll() is not None)
        holder = next(run for run in runs if run is not refused)
        error = refused.communicate()[1]
        assert refused.returncode == 2 and holder.poll() is None
        assert f"is in use by another run (pid {holder.pid} on " in error
        assert "--epochs 1000" in error and "Traceback" not in error
        wait_for(lambda: (out / "checkpoint.pt").exists(), "the holder's first checkpoint")
    finally:
        for run in runs:
            run.kill()   # kill -9: the OS releases the lock with the process
            run.wait()
    with lock_run_folder(out):   # nothing stale is left
        pass
    lr = 0.005 if holder is runs[0] else 0.01
    assert torch.load(out / "checkpoint.pt", weights_only=True)["args"]["lr"] == lr
    assert leftovers(out) == []


def test_a_lock_is_exclusive_even_within_one_process(tmp_path):
    folder = tmp_path / "run"
    with lock_run_folder(folder):
        with pytest.raises(UserError, match=f"in use by another run \\(pid {os.getpid()} "):
            with lock_run_folder(folder):
                pass
    with lock_run_folder(folder):   # released at the end of the block
        pass
    assert not folder.exists()   # created for a run that wrote nothing: removed again


def test_temporary_files_are_unique_fsynced_and_a_killed_runs_are_cleared(tmp_path,
                                                                          monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: synced.append(descriptor)
                        or real_fsync(descriptor))
    target = tmp_path / "metrics.json"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.suffix == second.suffix == ".json"
        first.write_text("1")
        second.write_text("2")
    assert target.read_text() == "1" and len(synced) == 4   # each file, then the folder
    stale = tmp_path / ".checkpoint.999-deadbeef.partial.pt"
    stale.write_bytes(b"half")   # what kill -9 in the middle of a write leaves
    with lock_run_folder(tmp_path):
        assert not stale.exists()


def test_an_unwritable_out_is_refused_before_anything_is_read(tmp_path, monkeypatch, capsys):
    class ReadOnly:   # the os module, except that creating the lock file fails
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def open(path, *args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
    monkeypatch.setattr("common.rundir.os", ReadOnly())
    monkeypatch.setattr(train, "load_mnist", lambda *args, **kwargs: pytest.fail("data read"))
    assert train_run("--model", "mlp", "--out", tmp_path / "run", *CPU) == 2
    assert (f"--out {tmp_path / 'run'} cannot be written: the file system is read-only"
            in capsys.readouterr().err)


# -- the disk says no -------------------------------------------------------------------------

def refuse(code):
    raise OSError(code, os.strerror(code))


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("fault, where, reason, kept", [
    ("checkpoint", "checkpoint.pt", "no space left on the device", 1),
    ("metrics", "metrics.json", "the file system is read-only", 2),
    ("picture", "curves.png", "no space left on the device", 2),
    ("tensorboard", "tb (TensorBoard's files)", "no space left on the device", 1),
])
def test_a_refused_write_says_what_and_where_and_keeps_the_checkpoint(
        mnist_dir, tmp_path, monkeypatch, capsys, fault, where, reason, kept):
    out = tmp_path / "run"
    real_save, real_write_text = torch.save, files.Path.write_text
    real_savefig, real_record = matplotlib.figure.Figure.savefig, record_writer.RecordWriter.write

    def save(obj, handle, *args, **kwargs):   # the second checkpoint meets a full disk
        if (out / "checkpoint.pt").exists():
            refuse(errno.ENOSPC)
        real_save(obj, handle, *args, **kwargs)

    def write_text(path, *args, **kwargs):
        if path.name.startswith(".metrics."):
            refuse(errno.EROFS)
        return real_write_text(path, *args, **kwargs)

    def savefig(figure, path, *args, **kwargs):
        if Path(path).name.startswith(".curves."):
            refuse(errno.ENOSPC)
        return real_savefig(figure, path, *args, **kwargs)

    def record(writer, data):   # TensorBoard's writer thread, once epoch 1 is saved
        if (out / "checkpoint.pt").exists():
            refuse(errno.ENOSPC)
        return real_record(writer, data)

    patches = {"checkpoint": (torch, "save", save),
               "metrics": (files.Path, "write_text", write_text),
               "picture": (matplotlib.figure.Figure, "savefig", savefig),
               "tensorboard": (record_writer.RecordWriter, "write", record)}
    monkeypatch.setattr(*patches[fault])
    assert train_run("--model", "mlp", "--data-dir", mnist_dir, "--limit-train", 128,
                     "--epochs", 2, "--out", out, *CPU) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot write to {out / where}: {reason}")
    assert f"The checkpoint of the last finished epoch stays in {out / 'checkpoint.pt'}" in error
    assert len(error.strip().splitlines()) == 1   # one message, no traceback
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == kept
    assert leftovers(out) == []


# -- files that load but are wrong ------------------------------------------------------------

def damage_model(state):
    del state["model"]["conv2.weight"]


def reshape_model(state):
    state["model"]["fc1.weight"] = torch.zeros(3, 4)


def reshape_momentum(state):
    buffers = state["optimizer"]["state"][0]
    buffers["momentum_buffer"] = torch.zeros(7)


def numpy_inside(state):
    import numpy as np
    state["history"][0]["note"] = np.zeros(2)


@pytest.mark.parametrize("damage, message", [
    (damage_model, "its model state does not fit lenet: it lacks conv2.weight"),
    (reshape_model, "wrong shapes: fc1.weight (3, 4) (the model's: (120, 400))"),
    (lambda state: state.update(optimizer={"state": {}, "param_groups": []}),
     "its sgd optimizer state does not fit this run"),
    (reshape_momentum, "its momentum_buffer of shape (7,) belongs to no parameter"),
    (lambda state: state.pop("scheduler"), "it has no scheduler"),
    (lambda state: state.update(scheduler={"last_epoch": "five"}),
     "its schedule state does not fit this run"),
    (lambda state: state.update(history="epoch 1"), "its history is a str, not a list"),
    (lambda state: state.update(history=[]), "not the records of epochs 1 to 1"),
    (numpy_inside, "holds Python objects other than tensors"),
])
def test_a_damaged_checkpoint_is_refused_naming_the_file_and_the_fault(lenet_run, tmp_path,
                                                                      capsys, damage, message):
    source, common = lenet_run
    out = tmp_path / "run"
    out.mkdir()
    state = torch.load(source / "checkpoint.pt", weights_only=True)
    damage(state)
    torch.save(state, out / "checkpoint.pt")
    capsys.readouterr()
    assert train_run(*common, "--epochs", 2, "--out", out, "--resume") == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: checkpoint {out / 'checkpoint.pt'} ")
    assert message in error and len(error.strip().splitlines()) == 1


def test_a_python_object_in_a_weights_file_is_refused_in_our_words(tmp_path):
    import numpy as np
    torch.save({"weight": np.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(UserError) as refused:
        load_torch(tmp_path / "model.pt", "weights file")
    text = str(refused.value)
    assert "numpy" in text and "can run code" in text and "does not load it" in text
    assert "weights_only=False" not in text   # torch's advice to load it anyway is not ours


def test_weights_that_do_not_fit_name_the_tensors(tmp_path):
    torch.save({"weight": torch.zeros(2, 3)}, tmp_path / "model.pt")
    with pytest.raises(UserError, match=r"does not fit Linear: it lacks bias; wrong shapes: "
                                        r"weight \(2, 3\) \(the model's: \(2, 2\)\)"):
        load_model_state(torch.nn.Linear(2, 2), tmp_path / "model.pt", "weights file", "Linear")


def with_fields(**fields):
    return lambda metrics: {**metrics, **fields}


def without(key, part=None):
    """The metrics without `key`, or without `key` of their `part` ("final")."""
    def change(metrics):
        if part:
            return {**metrics, part: {k: v for k, v in metrics[part].items() if k != key}}
        return {k: v for k, v in metrics.items() if k != key}
    return change


@pytest.mark.parametrize("change, problem", [
    (lambda metrics: None, "it holds null, not an object"),
    (without("test_accuracy", "final"), "'final' has no 'test_accuracy'"),
    (with_fields(dataset="voc2007"), "it is the metrics of a voc2007 run, not of a mnist one"),
    (with_fields(history="1 epoch"), "'history' is a string (\"1 epoch\"), not a list"),
    (with_fields(args=None), "'args' is null, not an object"),
    (without("per_class"), "it has no 'per_class'"),
    (lambda metrics: {**metrics, "final": {**metrics["final"], "test_accuracy": "0.9"}},
     "'final.test_accuracy' is a string (\"0.9\"), not a number"),
])
def test_a_metrics_file_of_the_wrong_shape_is_one_clear_error(lenet_run, tmp_path, change,
                                                              problem):
    source, _ = lenet_run
    metrics = json.loads((source / "metrics.json").read_text())
    assert check_run_metrics(metrics, "mnist") == ""
    folder = tmp_path / "run"
    write_json(change(metrics), folder / "metrics.json")
    with pytest.raises(UserError) as raised:
        run_outcome(folder, dataset="mnist")
    assert str(raised.value).startswith(f"{folder / 'metrics.json'} is not the metrics.json")
    assert problem in str(raised.value)


def test_a_divergence_record_without_its_epoch_is_one_clear_error(tmp_path):
    write_json({"step": 3, "message": "diverged", "args": {}}, tmp_path / "diverged.json")
    with pytest.raises(UserError, match="diverged.json is not the divergence record a training "
                                        "run writes: it has no 'epoch'"):
        run_outcome(tmp_path)


def test_test_scripts_refuse_a_malformed_run_cleanly(lenet_run, tmp_path, capsys):
    source, _ = lenet_run
    run = tmp_path / "run"
    shutil.copytree(source, run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["per_class"] = "none"
    write_json(metrics, run / "metrics.json")
    capsys.readouterr()
    assert cli.run(mnist_test.main, ["--run", str(run), *CPU]) == 2
    assert "'per_class' is a string" in capsys.readouterr().err
    from voc2007 import test as voc_test
    metrics["per_class"] = json.loads((source / "metrics.json").read_text())["per_class"]
    write_json(metrics, run / "metrics.json")
    assert read_run_metrics(run)["model"] == "lenet"
    assert cli.run(voc_test.main, ["--run", str(run), *CPU]) == 2
    assert "the metrics of a mnist run, not of a voc2007 one" in capsys.readouterr().err


# -- values at the edges ---------------------------------------------------------------------

@pytest.mark.parametrize("flags", [
    ["--lr", "1e39"], ["--weight-decay", "1e300"], ["--warmup-lr", "1e300"], ["--lr", "1e-320"],
])
def test_numbers_float32_cannot_hold_are_refused(capsys, flags):
    with pytest.raises(SystemExit) as stopped:
        train.parse_args(["--model", "lenet", *flags])
    assert stopped.value.code == 2
    assert f"must lie within float32's range, 1.18e-38 to 3.4e+38 (or be 0 where 0 is " \
           f"allowed), got {flags[1]}" in capsys.readouterr().err


def test_zero_and_ordinary_values_still_pass():
    args = train.parse_args(["--model", "lenet", "--weight-decay", "0", "--lr", "1e-30"])
    assert args.weight_decay == 0 and args.lr == 1e-30


# -- smaller ----------------------------------------------------------------------------------

def history_without_times(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return [{k: v for k, v in record.items() if k not in ("seconds", "planned_epochs")}
            for record in metrics["history"]]


def test_sigterm_keeps_the_last_epoch_and_resume_equals_a_straight_run(mnist_dir, tmp_path):
    common = ["--model", "lenet", "--data-dir", mnist_dir, "--limit-train", 128, *CPU]
    stopped = tmp_path / "stopped"
    run = start_script("mnist/train.py", *common, "--epochs", 3, "--out", stopped)
    wait_for(lambda: (stopped / "checkpoint.pt").exists() or run.poll() is not None,
             "the first checkpoint")
    run.send_signal(signal.SIGTERM)   # what a cluster scheduler sends
    _, error = run.communicate(timeout=120)
    assert run.returncode == 143
    assert "terminated (SIGTERM): the checkpoint of the last finished epoch is kept; add " \
           "--resume to continue" in error and "Traceback" not in error
    assert torch.load(stopped / "checkpoint.pt", weights_only=True)["epoch"] in (1, 2)
    assert not (stopped / "metrics.json").exists()

    # as processes of one thread, as the stopped one: the thread count changes the rounding
    for more in (["--out", stopped, "--resume"], ["--out", tmp_path / "straight"]):
        finished = run_script("mnist/train.py", *common, "--epochs", 3, *more)
        assert finished.returncode == 0, finished.stderr
    assert history_without_times(stopped) == history_without_times(tmp_path / "straight")
    resumed = torch.load(stopped / "model.pt", weights_only=True)
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    assert all(torch.equal(resumed[name], straight[name]) for name in straight)
    assert leftovers(stopped) == []


def test_metrics_record_the_flags_the_user_gave_over_the_whole_run(lenet_run, tmp_path):
    source, common = lenet_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    (out / "metrics.json").unlink()
    assert train_run(*common, "--epochs", 2, "--out", out, "--resume") == 0
    given = json.loads((out / "metrics.json").read_text())["given_flags"]
    # the first command's flags and the resume's own; not the recipe's (lr, momentum, ...)
    assert given == ["data_dir", "device", "epochs", "limit_train", "model", "out", "resume"]


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_a_failed_download_leaves_no_empty_data_folder(tmp_path, dataset):
    from cifar10.data import load_cifar10
    from mnist.data import load_mnist
    load = {"mnist": load_mnist, "cifar10": load_cifar10}[dataset]
    with pytest.raises(UserError, match="downloading it failed"):
        load(tmp_path / "new" / "data")
    assert list(tmp_path.iterdir()) == []


def test_voc_test_script_uses_the_runs_workers(tmp_path, monkeypatch):
    from common.cli import recorded
    from common.files import save_torch
    from voc2007 import test as voc_test
    from voc2007 import train_yolo
    from voc2007.synthetic import write_synthetic_voc
    write_synthetic_voc(tmp_path / "voc", trainval=2, test=2, seed=0)
    args = train_yolo.parse_args(["--model", "tiny", "--workers", "0", "--data-dir",
                                  str(tmp_path / "voc")])
    run = tmp_path / "run"
    save_torch(train_yolo.build_model(args).state_dict(), run / "model.pt")
    write_json({"dataset": "voc2007", "detector": "yolo", "model": "tiny", "args": recorded(args),
                "parameters": 1, "device": "cpu", "history": [{"epoch": 1, "seconds": 1.0}],
                "final": {"epochs": 1, "train_loss": 0.0, "test_map": None, "trainval_map": None},
                "per_class": {"trainval_ap": [], "test_ap": []}}, run / "metrics.json")
    workers = []
    make_loader = voc_test.make_loader
    monkeypatch.setattr(voc_test, "make_loader", lambda *loaded, **options: workers.append(
        options["workers"]) or make_loader(*loaded, **options))
    assert cli.run(voc_test.main, ["--run", str(run), "--split", "test", *CPU]) == 0
    assert workers == [0]   # the run's --workers, not a fixed 4
