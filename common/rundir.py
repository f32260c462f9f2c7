"""A run folder (--out) as every reader and writer of it sees it: a training run's
metrics.json (finished), diverged.json (stopped), checkpoint.pt and model.pt, and the eval/
folder a test.py writes beside them. The training loop and `make report` both build on it.

A folder belongs to one run at a time: lock_run_folder holds an OS lock on its .lock file for
the run's life. The readers check that a metrics.json or diverged.json has the shape a training
run writes, so that a damaged or foreign file is one clear UserError naming it, never a
traceback deep in a report.
"""
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from numbers import Real
from pathlib import Path

from common.errors import UserError
from common.files import missing_folders, read_json, remove_if_empty, write_failure

LOCK_NAME = ".lock"
NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


@contextmanager
def lock_run_folder(folder):
    """Hold the run folder `folder` for this process, creating it if need be: an exclusive
    flock on <folder>/.lock, taken before anything in the folder is read or written and held
    until the block ends. The OS releases it when the process dies: a run killed with kill -9
    leaves its .lock file, but no lock, and the next run takes it over. (Under torchrun only
    the main rank takes it: common.training.run_folder.) A folder another run holds is a
    UserError naming that run (pid, host, command, since when). Writing the holder's details
    into the lock file also proves the folder writable before the first epoch. Temporary files
    that a killed run left (.*.partial*, common.files.atomic_path) are removed: no other
    process writes there. A folder it created and nothing was written in is removed again."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file, not a directory.")
    created = missing_folders(folder)
    try:
        descriptor = _take_lock(folder)
    except BaseException:
        remove_if_empty(created)
        raise
    try:
        _write_holder(descriptor, folder)
        for leftover in folder.glob(".*.partial*"):
            leftover.unlink(missing_ok=True)
        yield
    finally:
        # Unlink before unlocking: a run that opened the old file meanwhile finds it gone
        # (_take_lock checks) and takes a new one.
        try:
            (folder / LOCK_NAME).unlink(missing_ok=True)
        except OSError:
            pass
        os.close(descriptor)
        remove_if_empty(created)


def _take_lock(folder):
    """An open descriptor of <folder>/.lock that this process holds the flock of."""
    path = folder / LOCK_NAME
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:   # a finishing run removed the folder meanwhile
            continue
        except OSError as error:
            raise UserError(f"--out {folder} cannot be written: "
                            f"{write_failure(error, path).reason}.") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise UserError(f"--out {folder} is in use by another run ({holder}). A folder "
                            "holds one run at a time: wait for that run to end or stop it, or "
                            "pass another --out.") from None
        except OSError as error:   # a file system without locks (some network mounts)
            if error.errno not in NO_LOCKS:
                raise
            print(f"warning: the file system of {folder} has no file locks ({error.strerror}): "
                  "nothing keeps a second run out of this folder", file=sys.stderr)
            return descriptor
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current and os.path.samestat(current, os.fstat(descriptor)):
            return descriptor
        os.close(descriptor)   # the holder before us removed this file on its way out


def _write_holder(descriptor, folder):
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "command": shlex.join(sys.argv),
              "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + "\n").encode(), 0)
        os.fsync(descriptor)
    except OSError as error:
        raise UserError(f"--out {folder} cannot be written: "
                        f"{write_failure(error, folder / LOCK_NAME).reason}.") from None


def _read_holder(descriptor):
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0))
        return (f"pid {holder['pid']} on {holder['host']}, since {holder['since']}: "
                f"{holder['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "it is starting and has not said who it is yet"


class DamagedRunFile(UserError):
    """A metrics.json or diverged.json of the wrong shape: `path` and `problem` (what is wrong);
    the message says what the file should be (`what`) and what to do."""

    def __init__(self, path, what, problem, advice=""):
        super().__init__(f"{path} is not {what}: {problem}. {advice}".rstrip())
        self.path, self.problem = path, problem


def read_run_metrics(folder, dataset=None):
    """The metrics.json of the run directory `folder`, as a train script wrote it, checked
    (check_run_metrics); `dataset` (mnist, cifar10, scenes, voc2007), when given, is the
    dataset the run must be of. A missing or unreadable file is a UserError, a malformed one a
    DamagedRunFile."""
    path = Path(folder) / "metrics.json"
    metrics = read_json(path, "run metrics")
    problem = check_run_metrics(metrics, dataset)
    if problem:
        raise DamagedRunFile(path, "the metrics.json of a training run as train.py writes it",
                             problem, "Point to the run directory that train.py wrote, or run "
                                      "it again into a new --out.")
    return metrics


def run_outcome(folder, dataset=None):
    """(divergence record, None) when the run of `folder` diverged, (None, metrics) when it
    finished, (None, None) when neither. A diverged.json is the last attempt's (a new attempt
    deletes it): it wins over a metrics.json that an earlier, shorter run of the folder left.
    Both are checked (read_run_metrics, check_divergence_record): a malformed one is a
    DamagedRunFile naming the file and what is wrong."""
    folder = Path(folder)
    if (folder / "diverged.json").exists():
        path = folder / "diverged.json"
        record = read_json(path, "divergence record")
        problem = check_divergence_record(record)
        if problem:
            raise DamagedRunFile(path, "the divergence record a training run writes", problem,
                                 "Delete it (the run's folder then counts as not run).")
        return record, None
    if (folder / "metrics.json").exists():
        return None, read_run_metrics(folder, dataset)
    return None, None


# What the readers of a metrics.json use (make report, test.py, --continue), per kind of run:
# the final figures every table reads, and those only some read (checked when present).
CLASSIFIER_FINAL = ("train_accuracy", "test_accuracy")
DETECTOR_FINAL = ("test_map", "trainval_map")   # null: no object of a class to find
OTHER_FINAL = ("epochs", "train_loss", "test_loss")
IMAGE_COUNTS = ("train_images", "val_images", "trainval_images", "test_images")
CLASSIFIER_PER_CLASS = ("train_accuracy", "test_accuracy")
DETECTOR_PER_CLASS = ("trainval_ap", "test_ap")
DETECTION = "voc2007"


def check_run_metrics(metrics, dataset=None):
    """What is wrong with `metrics`, the content of a metrics.json, as text ("" if nothing):
    the fields make report, test.py and --continue read, with their types."""
    if not isinstance(metrics, dict):
        return f"it holds {kind(metrics)}, not an object"
    for key, wanted in (("dataset", str), ("model", str), ("args", dict), ("history", list),
                        ("final", dict), ("per_class", dict), ("parameters", int),
                        ("device", str)):
        problem = check_type(metrics, key, wanted)
        if problem:
            return problem
    if dataset and metrics["dataset"] != dataset:
        return f"it is the metrics of a {metrics['dataset']} run, not of a {dataset} one"
    problem = given_flags_problem(metrics)
    if problem:
        return problem
    if not metrics["history"]:
        return "'history' holds no epoch"
    for index, record in enumerate(metrics["history"]):
        if not isinstance(record, dict):
            return f"'history[{index}]' is {kind(record)}, not an object"
        for key in ("epoch", "seconds"):
            problem = check_number(record, key, f"history[{index}]")
            if problem:
                return problem
    final, per_class = metrics["final"], metrics["per_class"]
    problem = ""
    for key in OTHER_FINAL + IMAGE_COUNTS:
        if key in final:
            problem = problem or check_number(final, key, "final")
    if metrics["dataset"] == DETECTION:
        problem = problem or check_type(metrics, "detector", str)
        for key in DETECTOR_FINAL:
            problem = problem or check_number(final, key, "final", nullable=True)
        for key in DETECTOR_PER_CLASS:
            problem = problem or check_numbers(per_class, key, "per_class", nullable=True)
        return problem
    for key in CLASSIFIER_FINAL:
        problem = problem or check_number(final, key, "final")
    for key in CLASSIFIER_PER_CLASS:
        problem = problem or check_numbers(per_class, key, "per_class")
    confusion = metrics.get("confusion")
    if not problem and not (isinstance(confusion, list) and all(
            isinstance(row, list) and len(row) == len(confusion)
            and all(is_number(count) for count in row) for row in confusion)):
        problem = f"'confusion' is {kind(confusion)}, not a square table of counts"
    return problem


def check_divergence_record(record):
    """What is wrong with the content of a diverged.json, as text ("" if nothing)."""
    if not isinstance(record, dict):
        return f"it holds {kind(record)}, not an object"
    problem = check_number(record, "epoch", "") or check_number(record, "step", "")
    if not problem and record.get("loss") is not None:
        problem = check_number(record, "loss", "")
    if not problem and "args" in record:
        problem = check_type(record, "args", dict)
    return problem or given_flags_problem(record)


def given_flags_problem(record):
    """What is wrong with the "given_flags" of a metrics.json or diverged.json, if it has one."""
    given = record.get("given_flags", [])
    if isinstance(given, list) and all(isinstance(name, str) for name in given):
        return ""
    return f"'given_flags' is {kind(given)}, not a list of flag names"


def kind(value):
    """A JSON value's type as a reader names it: 'null', 'a string ("0.9")', 'a list'."""
    if value is None:
        return "null"
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number",
             list: "a list", dict: "an object"}
    name = names.get(type(value), type(value).__name__)
    return f"{name} ({json.dumps(value)[:40]})" if isinstance(value, (str, bool)) else name


def is_number(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def check_type(container, key, wanted):
    if key not in container:
        return f"it has no '{key}'"
    if wanted is int and not (isinstance(container[key], int)
                              and not isinstance(container[key], bool)):
        return f"'{key}' is {kind(container[key])}, not an integer"
    if wanted is not int and not isinstance(container[key], wanted):
        expected = {str: "a string", dict: "an object", list: "a list"}[wanted]
        return f"'{key}' is {kind(container[key])}, not {expected}"
    return ""


def check_number(container, key, where, nullable=False):
    name = f"{where}.{key}" if where else key
    if key not in container:
        return f"'{where}' has no '{key}'" if where else f"it has no '{key}'"
    value = container[key]
    if value is None and nullable:
        return ""
    if not is_number(value):
        return f"'{name}' is {kind(value)}, not a number"
    return ""


def check_numbers(container, key, where, nullable=False):
    if key not in container:
        return f"'{where}' has no '{key}'"
    values = container[key]
    if not isinstance(values, list) or not all(is_number(value) or (nullable and value is None)
                                               for value in values):
        return f"'{where}.{key}' is {kind(values)}, not a list of numbers"
    return ""


def evaluation_folder(run, out=None):
    """Where a test.py writes its evaluation of the run directory `run`: `out`, by default
    <run>/eval. A file, or a folder holding a training run (whose metrics.json and pictures the
    evaluation would replace), is refused."""
    out = Path(out) if out else Path(run) / "eval"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory.")
    for name in ("checkpoint.pt", "model.pt"):
        if (out / name).exists():
            raise UserError(f"--out {out} holds a training run ({name}): its metrics.json and "
                            f"pictures would be replaced. Pick another --out (the default is "
                            f"{Path(run) / 'eval'}).")
    return out
