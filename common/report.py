"""`make report` (python -m common.report): regenerate the result tables of the course reports
from the metrics.json of every run under runs/, beside the figures the reports printed.

Each dataset's report.py contributes its section(runs_dir) -> markdown. The result goes to
runs/REPORT.md; a row whose run is missing names the make target that produces it.
"""
import argparse
import importlib
import sys
from pathlib import Path

from common import cli
from common.files import read_json, write_text

DATASETS = ("mnist", "cifar10")   # each has a report.py with section(runs_dir)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def load_run(runs, dataset, name):
    """The metrics.json of runs/<dataset>/<name>, or None if that run has not finished."""
    path = Path(runs) / dataset / name / "metrics.json"
    return read_json(path, "run metrics") if path.exists() else None


def percent(fraction):
    return f"{100 * fraction:.2f}"


def per_class_table(classes, entries):
    """Report 000's layout: per model a Train and a Test row of per-class accuracy and the
    total, then the report's total. `entries`: (label, metrics or None, target, reported)."""
    header = ["model", "split", *classes, "total", "report"]
    rows = []
    for label, metrics, target, reported in entries:
        if metrics is None:
            rows.append([label, f"not run: `make {target}`", *[""] * len(classes), "", reported])
            continue
        per_class = metrics["per_class"]
        final = metrics["final"]
        rows.append([label, "train", *map(percent, per_class["train_accuracy"]),
                     percent(final["train_accuracy"]), ""])
        rows.append(["", "test", *map(percent, per_class["test_accuracy"]),
                     percent(final["test_accuracy"]), reported])
    return markdown_table(header, rows)


def final_accuracy(metrics, target):
    return percent(metrics["final"]["test_accuracy"]) if metrics else f"not run: `make {target}`"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs", help="folder of the run directories")
    parser.add_argument("--out", help="markdown file to write (default: <runs>/REPORT.md)")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    sections = ["# Results of the CNN reference suite",
                "Every table is regenerated from the runs' metrics.json by `make report`. "
                "Accuracies in %; 'report' is the figure the course report printed."]
    for dataset in DATASETS:
        sections.append(importlib.import_module(f"{dataset}.report").section(runs))
    out = Path(args.out) if args.out else runs / "REPORT.md"
    write_text("\n\n".join(sections) + "\n", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
