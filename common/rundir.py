"""A run folder (--out) as every reader and writer of it sees it: a training run's
metrics.json (finished), diverged.json (stopped), checkpoint.pt and model.pt, and the eval/
folder a test.py writes beside them. The training loop and `make report` both build on it."""
from pathlib import Path

from common.errors import UserError
from common.files import read_json


def read_run_metrics(folder):
    """The metrics.json of the run directory `folder`, as a train script wrote it."""
    path = Path(folder) / "metrics.json"
    metrics = read_json(path, "run metrics")
    missing = [key for key in ("args", "history", "final") if key not in metrics]
    if missing:
        raise UserError(f"{path} is not the metrics.json of a training run (it has no "
                        f"{', '.join(missing)}): point to the run directory that train.py "
                        "wrote.")
    return metrics


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


def run_outcome(folder):
    """(divergence record, None) when the run of `folder` diverged, (None, metrics) when it
    finished, (None, None) when neither. A diverged.json is the last attempt's (a new attempt
    deletes it): it wins over a metrics.json that an earlier, shorter run of the folder left."""
    folder = Path(folder)
    if (folder / "diverged.json").exists():
        return read_json(folder / "diverged.json", "divergence record"), None
    if (folder / "metrics.json").exists():
        return None, read_run_metrics(folder)
    return None, None
