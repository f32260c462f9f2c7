"""Finished runs as `make report` reads them: a run directory's metrics.json or diverged.json,
and what sets the run apart from the make target whose row it fills (flags that differ from the
target's command, a subset of the data), so that a quick or partial run is never passed off as
the row.
"""
import functools
import importlib
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from common.cli import EXECUTION_FLAGS, flag, recorded
from common.rundir import run_outcome

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    """The run of a report row: `metrics` when it finished, `diverged` (its diverged.json)
    when it stopped, neither when it has not run; `notes` say how it departs from the row's
    target."""
    name: str
    target: str
    metrics: dict = None
    diverged: dict = None
    notes: list = field(default_factory=list)

    @property
    def finished(self):
        return self.metrics is not None

    def status(self):
        """The text of a row whose run did not finish: not run, or diverged."""
        if self.diverged:
            return (f"diverged at epoch {self.diverged['epoch']}, step "
                    f"{self.diverged['step']} (`make {self.target}`"
                    + (f"; not the row's recipe: {self.note_text()}" if self.notes else "")
                    + ")")
        return f"not run: `make {self.target}`"

    def note_text(self):
        return "; ".join(self.notes)


def find_run(runs, dataset, name, target=None, full_sizes=None):
    """The run of runs/<dataset>/<name>, filling the row of make target `target` (default:
    <dataset>-<name>). `full_sizes` ({"train": N, "test": M}) are the dataset's image counts: a
    run on fewer is marked as on a subset."""
    target = target or f"{dataset}-{name}"
    run = Run(name, target)
    run.diverged, run.metrics = run_outcome(Path(runs) / dataset / name)
    if run.diverged:
        run.notes = flag_differences(run.diverged.get("args", {}), target_args(target))
    elif run.metrics:
        run.notes = flag_differences(run.metrics["args"], target_args(target))
        run.notes += schedule_notes(run.metrics)
        run.notes += subset_notes(run.metrics["final"], full_sizes or {})
    return run


def flag_differences(used, expected):
    """'--epochs 1 (the target: 10)' for every flag whose value in `used` (a run's recorded
    args) differs from `expected` (its target's, None when unknown)."""
    if expected is None:
        return []
    notes = []
    for key, value in expected.items():
        if key in EXECUTION_FLAGS or used.get(key, value) == value:
            continue
        notes.append(f"{flag(key)} {shown(used.get(key))} (the target: {shown(value)})")
    return notes


def schedule_notes(metrics):
    """A cosine schedule follows --epochs: a run resumed with other --epochs did not follow the
    schedule of any one length."""
    planned = []
    for record in metrics["history"]:
        if record.get("planned_epochs") not in (None, *planned[-1:]):
            planned.append(record["planned_epochs"])
    if len(planned) > 1 and metrics["args"].get("scheduler") == "cosine":
        return [f"--epochs changed during the run ({', then '.join(map(str, planned))}), and "
                "its cosine schedule with it"]
    return []


def shown(value):
    if value is None:
        return "unset"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def subset_notes(final, full_sizes):
    """'on 10,000 of 50,000 train images' where a split is smaller than the full dataset's."""
    counts = {"train": final.get("train_images", 0) + final.get("val_images", 0),
              "trainval": final.get("trainval_images"), "test": final.get("test_images")}
    return [f"on {counts[split]:,} of {full:,} {split} images"
            for split, full in full_sizes.items() if counts.get(split) and counts[split] < full]


@functools.cache
def target_args(target):
    """The recorded args a make target's run would have (the parse_args of its script on the
    command `make -n` prints), or None for a target that is not one training run."""
    result = subprocess.run(["make", "-s", "-n", target, "ARGS="], cwd=REPO, capture_output=True,
                            text=True)
    text = result.stdout.replace("\\\n", " ")   # a recipe continued over several lines
    commands = [shlex.split(line) for line in text.splitlines() if line.strip()]
    if result.returncode or len(commands) != 1:
        return None
    words = commands[0]
    scripts = [index for index, word in enumerate(words) if word.endswith(".py")]
    if not scripts:
        return None
    module = importlib.import_module(words[scripts[0]][:-len(".py")].replace("/", "."))
    if not hasattr(module, "parse_args"):   # a script of several runs (a sweep, ablations)
        return None
    return recorded(module.parse_args(words[scripts[0] + 1:]))
