"""Report 002's learning-rate finding as one table: LeNet (its scenes/train.py recipe) at lr
0.001, 0.002, ..., 0.010, each run's final validation accuracy or where its loss diverged. The
report found a NaN loss for every lr from 0.007 up.

Runs go to <out>/lr-<lr>, the table to <out>/table.md and table.csv. Flags this script does not
know (e.g. --epochs, --limit-train, --device, --data-dir) are passed on to every run of
scenes/train.py. A diverged run is a row of the table, not the end of the sweep.

Each run goes with --continue: a rerun of the sweep reuses a finished or diverged run and
resumes an interrupted one, if it is the run these flags make; otherwise it stops and names the
folder to delete. A run is never overwritten.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.errors import Diverged, UserError  # noqa: E402
from common.files import write_csv, write_text  # noqa: E402
from common.report import compare, markdown_table, notes  # noqa: E402
from common.rundir import is_number  # noqa: E402
from common.runs import Recipe, classification_figures, read_run  # noqa: E402
from scenes import train  # noqa: E402
from scenes.data import CLASSES, FULL_SIZES  # noqa: E402

LRS = [round(0.001 * k, 3) for k in range(1, 11)]   # the report's 0.001, 0.002, ..., 0.010
FIGURES = classification_figures(len(CLASSES))
HEADER = ["lr", "accuracy on val (%)", "epochs", "final train loss", "notes"]


def run_dir(out, lr):
    return Path(out) / f"lr-{lr:g}"


def run_flags(lr, passed_on):
    return ["--model", "lenet", "--lr", f"{lr:g}", *passed_on]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,   # --lr is not --lrs
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/scenes/lenet-lr-sweep", help="(%(default)s)")
    parser.add_argument("--lrs", type=cli.positive_float, nargs="+", default=LRS,
                        help="learning rates to train LeNet at (the report's: 0.001 to 0.010 "
                             "in steps of 0.001)")
    args, passed_on = parser.parse_known_args(argv)
    own = [flag for flag in ("--model", "--lr", "--resume", "--weights")
           if any(arg == flag or arg.startswith(flag + "=") for arg in passed_on)]
    if own:
        raise UserError(f"{', '.join(own)}: the sweep sets these for each run itself (LeNet, "
                        "each of --lrs, --continue); leave them out.")
    out = Path(args.out)
    for lr in args.lrs:
        print(f"== lr {lr:g}")
        try:
            train.main([*run_flags(lr, passed_on), "--continue", "--out", str(run_dir(out, lr))])
        except Diverged as error:
            print(f"diverged: {error}")
    header, rows, _ = sweep_table(out, args.lrs)
    write_csv(header, rows, out / "table.csv")
    table = markdown_table(header, rows)
    write_text(table + "\n", out / "table.md")
    print(table)


def runs_found(out):
    """The learning rates of the lr-<lr> folders in `out`."""
    for path in Path(out).glob("lr-*"):
        try:
            yield float(path.name[len("lr-"):])
        except ValueError:   # not a folder of this sweep
            continue


def sweep_table(out, lrs=None):
    """(header, rows, comparisons) of the sweep under `out`, one row per learning rate: the
    final accuracy, where the run diverged, or "not run"; the notes name what sets a run apart
    from those of `make scenes-lenet-lr-sweep` (--epochs 1, a subset). Without `lrs`: the
    report's and any other run there. The comparisons are its rows in make report's overview
    figure."""
    if lrs is None:
        lrs = sorted(set(LRS) | set(runs_found(out)))
    rows, comparisons = [], []
    for lr in lrs:
        folder = run_dir(out, lr)
        run = read_run(folder, "scenes", "scenes-lenet-lr-sweep", full_sizes=FULL_SIZES,
                       figures=FIGURES, recipe=Recipe(train.parse_args, (
                           *run_flags(lr, []), "--out", str(folder))))
        ours = 100 * run.metrics["final"]["test_accuracy"] if run.finished else None
        comparisons.append(compare("scenes", f"LeNet, lr {lr:g} · report 002 sweep", run, ours,
                                   None, None))
        if run.diverged:
            loss = run.diverged.get("loss")
            rows.append([f"{lr:g}", f"diverged at epoch {run.diverged['epoch']}, step "
                                    f"{run.diverged['step']}", "",
                         f"{loss:.3g}" if isinstance(loss, (int, float)) else "", notes(run)])
        elif run.finished:
            final = run.metrics["final"]
            rows.append([f"{lr:g}", run.mark(f"{ours:.2f}"), len(run.metrics["history"]),
                         f"{final['train_loss']:.4f}" if is_number(final.get("train_loss"))
                         else "", notes(run)])
        else:
            rows.append([f"{lr:g}", run.status(), "", "", ""])
    return HEADER, rows, comparisons


if __name__ == "__main__":
    sys.exit(cli.run(main))
