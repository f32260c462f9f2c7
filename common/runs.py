"""The runs `make report` reads: a run directory's metrics.json or diverged.json, checked for the
figures the report takes from it, and how the run departs from the row it fills, so that a
quick, partial or other run is never passed off as the row.

A row's run is in one of these states:
  finished      the row: its target's recipe, full length, all the data
  partial       the recipe, but shorter (--epochs below the target's) or on part of the data
                (--limit-*, a subset of the dataset)
  other recipe  some other flag differs (or the schedule changed during the run)
  diverged      it stopped on a NaN or exploding loss (diverged.json)
  interrupted   it stopped before its end (a checkpoint.pt, no metrics.json): --resume goes on
  unreadable    its metrics.json or diverged.json is damaged or of the wrong shape
  not run       nothing in its folder
What a run departs in is what the user changed: the flags written on its command line
(metrics.json's "given_flags") that differ from the target's, not the values the recipe derived
from them (`--epochs 3` shortens a schedule's milestones too: those are not listed).
"""
import contextlib
import functools
import importlib
import io
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from common.cli import EXECUTION_FLAGS, flag, recorded
from common.errors import UserError
from common.rundir import DamagedRunFile, is_number, kind, run_outcome

REPO = Path(__file__).resolve().parents[1]

FINISHED, PARTIAL, OTHER = "finished", "partial", "other recipe"
DIVERGED, INTERRUPTED, UNREADABLE, NOT_RUN = "diverged", "interrupted", "unreadable", "not run"
SUBSET_FLAGS = ("limit_train", "limit_test")   # a run on part of the data


class Departure(NamedTuple):
    """One way a run differs from its row: `partial` (shorter, or on part of the data) or not
    (another recipe), and the words that say it."""
    partial: bool
    text: str


@dataclass
class Run:
    """The run of a report row. `metrics` when it finished, `diverged` (its diverged.json) when
    it stopped, `problem` when its file cannot be used; `departures` say how it differs from
    the row's target."""
    name: str
    target: str
    folder: Path
    metrics: dict = None
    diverged: dict = None
    problem: str = None
    departures: list = field(default_factory=list)

    @property
    def finished(self):
        """Whether the run finished and has figures (whatever its recipe)."""
        return self.metrics is not None

    @property
    def state(self):
        if self.problem:
            return UNREADABLE
        if self.diverged:
            return DIVERGED
        if self.metrics is None:
            return INTERRUPTED if (self.folder / "checkpoint.pt").exists() else NOT_RUN
        return self.state_of_recipe() if self.departures else FINISHED

    @property
    def is_row(self):
        """A finished run of the row's own recipe, full length, on all the data."""
        return self.state == FINISHED

    @property
    def notes(self):
        return [departure.text for departure in self.departures]

    def note_text(self):
        return "; ".join(self.notes)

    def status(self):
        """The text of a row without figures: not run, interrupted, diverged or unreadable."""
        state = self.state
        if state == UNREADABLE:
            return f"unreadable: {self.problem}"
        if state == DIVERGED:
            return (f"diverged at epoch {self.diverged['epoch']}, step "
                    f"{self.diverged['step']} (`make {self.target}`"
                    + (f"; {self.state_of_recipe()}: {self.note_text()}" if self.notes else "")
                    + ")")
        if state == INTERRUPTED:   # a target of several runs (--continue) resumes by itself
            again = "" if target_recipe(self.target) is None else " ARGS=--resume"
            return f"interrupted: `make {self.target}{again}` goes on"
        return f"not run: `make {self.target}`"

    def state_of_recipe(self):
        """'partial' or 'other recipe': what the departures make of the run."""
        return OTHER if any(not departure.partial for departure in self.departures) else PARTIAL

    def mark(self, figure):
        """A figure of this run as a table shows it: bare for the row, else with the state."""
        return figure if self.is_row else f"{figure} ({self.state})"


# What make report reads from a run's metrics.json, by kind of run: "fraction" a number in
# [0, 1], "fraction or null", ("fractions", n) a list of n of them.
def classification_figures(classes):
    return {"final.test_accuracy": "fraction", "final.train_accuracy": "fraction",
            "per_class.test_accuracy": ("fractions", classes),
            "per_class.train_accuracy": ("fractions", classes),
            "confusion": ("matrix", classes)}


def detection_figures(classes):
    return {"final.test_map": "fraction or null", "final.trainval_map": "fraction or null",
            "per_class.test_ap": ("fractions or null", classes),
            "per_class.trainval_ap": ("fractions or null", classes)}


def find_run(runs, dataset, name, target=None, full_sizes=None, figures=None, recipe=None):
    """The run of runs/<dataset>/<name>, filling the row of make target `target` (default:
    <dataset>-<name>); see read_run."""
    target = target or f"{dataset}-{name}"
    return read_run(Path(runs) / dataset / name, dataset, target, full_sizes=full_sizes,
                    figures=figures, recipe=recipe)


def read_run(folder, dataset, target, full_sizes=None, figures=None, recipe=None):
    """The run in `folder`, filling a row of make target `target`, made by `recipe` (default:
    the target's command). `full_sizes` ({"train": N, "test": M}) are the dataset's image
    counts: a run on fewer is partial. `figures` (see classification_figures) are checked to
    be there and of the right type; a file that fails makes the run unreadable."""
    folder = Path(folder)
    run = Run(folder.name, target, folder)
    try:
        run.diverged, run.metrics = run_outcome(folder, dataset)
        if run.metrics:
            check_figures(run.metrics, folder / "metrics.json", figures or {})
    except DamagedRunFile as error:
        run.metrics = run.diverged = None
        run.problem = f"{error.path}: {error.problem}."
        return run
    except UserError as error:   # a file that cannot be read at all
        run.metrics = run.diverged = None
        run.problem = str(error)
        return run
    recipe = recipe if recipe is not None else target_recipe(target)
    if run.diverged:
        run.departures = flag_departures(run.diverged.get("args", {}),
                                         run.diverged.get("given_flags"), recipe)
    elif run.metrics:
        run.departures = flag_departures(run.metrics["args"], run.metrics.get("given_flags"),
                                         recipe)
        run.departures += schedule_departures(run.metrics)
        run.departures += subset_departures(run.metrics["final"], full_sizes or {})
    return run


def check_figures(metrics, path, figures):
    """Raise a DamagedRunFile naming `path` unless the `figures` the report reads from
    `metrics` (a metrics.json that common.rundir found of the right shape) are what the tables
    need: fractions in [0, 1], one per class."""
    for key, wanted in figures.items():
        value = metrics
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        problem = figure_problem(value, wanted)
        if problem:
            raise DamagedRunFile(path, "a metrics.json with the figures the report reads",
                                 f"'{key}' is {kind(value)}, not {problem}")


def figure_problem(value, wanted):
    """What `value` fails to be of the kind `wanted` (see classification_figures), or None."""
    def fraction(item, nullable):
        return (nullable and item is None) or (is_number(item) and 0 <= item <= 1)
    if wanted in ("fraction", "fraction or null"):
        return None if fraction(value, wanted.endswith("null")) else f"a {wanted} in [0, 1]"
    name, count = wanted
    if name == "matrix":
        good = isinstance(value, list) and len(value) == count and all(
            isinstance(row, list) and len(row) == count and all(
                isinstance(item, int) and item >= 0 for item in row) for row in value)
        return None if good else f"a {count} x {count} matrix of counts"
    nullable = name.endswith("null")
    good = isinstance(value, list) and len(value) == count and all(
        fraction(item, nullable) for item in value)
    items = "fractions or nulls" if nullable else "fractions"
    return None if good else f"a list of {count} {items}"


@dataclass(frozen=True)
class Recipe:
    """How a row's run is made: a train script's parse_args and the words the row gives it."""
    parse: Callable
    words: tuple

    def args(self, more=()):
        """The args a run of these words and `more` records; None where the script refuses
        them (a combination that is not a run)."""
        try:
            with contextlib.redirect_stderr(io.StringIO()):   # argparse's usage text
                return recorded(self.parse([*self.words, *more]))
        except (SystemExit, UserError):
            return None


def flag_departures(used, given, recipe):
    """How a run's recorded args `used` depart from those of `recipe`: one Departure per flag
    the user gave (`given`, the dests of the flags on its command line) with another value
    than the row's. A value that only followed from those (a schedule derived from --epochs,
    a recipe default of another --model) is not listed; one that follows from none of them
    is a recipe that changed after the run. A run from before metrics.json recorded its given
    flags is read as the fewest flags that explain its values."""
    expected = recipe.args() if recipe else None
    if expected is None:
        return []
    differing = [key for key, value in expected.items()
                 if key not in EXECUTION_FLAGS and used.get(key, value) != value]
    if not differing:
        return []
    if given is None:
        given = fewest_flags(used, differing, recipe)
    changed = [key for key in differing if key in given]
    departures = [departure(key, used.get(key), expected[key]) for key in changed]
    followed = recipe.args(as_words(used, changed))
    if followed is not None:
        departures += [Departure(False, f"{flag(key)} {shown(used.get(key))} (the recipe now: "
                                        f"{shown(value)}; it changed after the run)")
                       for key, value in followed.items()
                       if key in differing and key not in changed and used.get(key) != value]
    return departures


def fewest_flags(used, differing, recipe):
    """The flags (in the script's order) that, given with the run's values, reproduce the run's
    other values: what a user of a run without "given_flags" most likely wrote."""
    given = []
    for key in differing:
        now = recipe.args(as_words(used, given))
        if now is None or now.get(key) != used.get(key):
            given.append(key)
    return given


def as_words(used, keys):
    """Command-line words that give `keys` the values of `used`."""
    words = []
    for key in keys:
        value = used.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            words.append(flag(key) if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            words += [flag(key), *map(str, value)]
        else:
            words += [flag(key), str(value)]
    return words


def departure(key, value, expected):
    if key in SUBSET_FLAGS:
        return Departure(True, f"{flag(key)} {shown(value)}")
    shorter = key == "epochs" and isinstance(value, int) and value < expected
    return Departure(shorter, f"{flag(key)} {shown(value)} (the target: {shown(expected)})")


def schedule_departures(metrics):
    """A cosine schedule follows --epochs: a run resumed with other --epochs did not follow the
    schedule of any one length."""
    planned = []
    for record in metrics["history"]:
        if record.get("planned_epochs") not in (None, *planned[-1:]):
            planned.append(record["planned_epochs"])
    if len(planned) > 1 and metrics["args"].get("scheduler") == "cosine":
        return [Departure(False, f"--epochs changed during the run "
                                 f"({', then '.join(map(str, planned))}), and its cosine "
                                 "schedule with it")]
    return []


def shown(value):
    if value is None:
        return "unset"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def subset_departures(final, full_sizes):
    """'on 10,000 of 50,000 train images' where a split is smaller than the full dataset's."""
    counts = {"train": final.get("train_images", 0) + final.get("val_images", 0),
              "trainval": final.get("trainval_images"), "test": final.get("test_images")}
    return [Departure(True, f"on {counts[split]:,} of {full:,} {split} images")
            for split, full in full_sizes.items() if counts.get(split) and counts[split] < full]


@functools.cache
def target_recipe(target):
    """The Recipe of a make target's run (the script and words of the command `make -n`
    prints), or None for a target that is not one training run."""
    result = subprocess.run(["make", "-s", "-n", target, "ARGS=", "NPROC="], cwd=REPO,
                            capture_output=True, text=True)
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
    return Recipe(module.parse_args, tuple(words[scripts[0] + 1:]))


def target_args(target):
    """The recorded args a make target's run would have, or None (see target_recipe)."""
    recipe = target_recipe(target)
    return recipe.args() if recipe else None
