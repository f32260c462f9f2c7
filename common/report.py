"""`make report` (python -m common.report): regenerate the result tables of the five course
reports from the runs under runs/, beside the figures the reports printed and, where a paper
exists, the paper's. It reads metrics.json files only: it takes seconds and trains nothing.

Each dataset's report.py gives section(runs) -> (markdown, comparisons), the comparisons being
Comparison rows (ours, the report's and the paper's figure in %) for the overview figure that
opens the report. A row whose run is missing names its make target, a diverged run says where
it diverged, and a run that is not the row's recipe (a subset of the data, --limit-*, other
flags) is marked as such and shows its real epochs. The result goes to <runs>/REPORT.md and
<runs>/report.png.
"""
import argparse
import importlib
import sys
from pathlib import Path
from typing import NamedTuple

from common import cli, plots
from common.files import write_text
from common.runs import find_run

DATASETS = ("mnist", "cifar10", "scenes", "voc2007")   # each has a report.py with section(runs)


class Comparison(NamedTuple):
    """A row of the overview figure: figures in % (None: missing); `partial` when our run is
    not the row's recipe (a quick run, a subset)."""
    label: str
    ours: float
    report: float
    paper: float
    partial: bool = False


def compare(label, run, ours, reported, paper):
    return Comparison(label, ours, reported, paper, bool(run.notes))


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percent(fraction):
    return f"{100 * fraction:.2f}"


def difference(ours, reference):
    """ours - reference, both in %, as '+1.23' ('' when either is missing)."""
    if ours is None or reference is None:
        return ""
    return f"{float(ours) - float(reference):+.2f}"


def figure_links(dataset, name, figures=("curves", "confusion")):
    """Links from REPORT.md to the run's pictures."""
    return " ".join(f"[{figure}]({dataset}/{name}/{figure}.png)" for figure in figures)


def notes(run):
    """The notes cell of a finished run: what sets it apart from its row's recipe."""
    return f"not the row's recipe: {run.note_text()}" if run.notes else ""


def accuracy(run):
    """A run's test accuracy in % (None when it did not finish)."""
    return 100 * run.metrics["final"]["test_accuracy"] if run.finished else None


def accuracy_table(runs, dataset, rows, full_sizes, header):
    """One line per row: its fixed cells, then ours, the report's, ours - report, the paper's,
    ours - paper, epochs, notes and figures. `rows`: (cells, run name, report %, paper % or
    None). Returns (markdown, comparisons)."""
    lines, comparisons = [], []
    for cells, name, reported, paper in rows:
        run = find_run(runs, dataset, name, full_sizes=full_sizes)
        ours = accuracy(run)
        lines.append([*cells, f"{ours:.2f}" if run.finished else run.status(),
                      "" if reported is None else reported, difference(ours, reported),
                      "" if paper is None else paper,
                      difference(ours, paper),
                      len(run.metrics["history"]) if run.finished else "",
                      notes(run), figure_links(dataset, name) if run.finished else ""])
        comparisons.append(compare(f"{dataset} {name}", run, ours, reported, paper))
    return markdown_table([*header, "ours", "report", "ours - report", "paper", "ours - paper",
                           "epochs", "notes", "figures"], lines), comparisons


def per_class_table(runs, dataset, classes, entries, full_sizes):
    """Report 000's layout: per model a train and a test row of per-class accuracy (%) and the
    total, then the report's test total, the paper's, the differences, epochs, notes and
    figures. `entries`: (label, run name, report %, paper % or None). Returns (markdown,
    comparisons)."""
    header = ["model", "split", *classes, "total", "report", "ours - report", "paper",
              "ours - paper", "epochs", "notes", "figures"]
    rows, comparisons = [], []
    blank = [""] * (len(classes) + 1)
    for label, name, reported, paper in entries:
        run = find_run(runs, dataset, name, full_sizes=full_sizes)
        ours = accuracy(run)
        comparisons.append(compare(f"{dataset} {label}", run, ours, reported, paper))
        if not run.finished:
            rows.append([label, run.status(), *blank, reported, "", paper or "", "", "", "", ""])
            continue
        per_class, final = run.metrics["per_class"], run.metrics["final"]
        rows.append([label, "train", *map(percent, per_class["train_accuracy"]),
                     percent(final["train_accuracy"]), "", "", "", "",
                     len(run.metrics["history"]), notes(run), figure_links(dataset, name)])
        rows.append(["", "test", *map(percent, per_class["test_accuracy"]), f"{ours:.2f}",
                     reported, difference(ours, reported), paper or "", difference(ours, paper),
                     "", "", ""])
    return markdown_table(header, rows), comparisons


def build(runs):
    """The sections of the report (markdown) and every row's comparison for the figure."""
    sections, comparisons = [], []
    for dataset in DATASETS:
        text, rows = importlib.import_module(f"{dataset}.report").section(runs)
        sections.append(text)
        comparisons += rows
    return sections, comparisons


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs", help="folder of the run directories")
    parser.add_argument("--out", help="markdown file to write (default: <runs>/REPORT.md; the "
                                      "figure goes beside it as report.png)")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    out = Path(args.out) if args.out else runs / "REPORT.md"
    sections, comparisons = build(runs)
    plots.plot_comparison(comparisons, out.with_name("report.png"),
                          "Ours, the reports' and the papers' figures, row by row")
    finished = sum(row.ours is not None for row in comparisons)
    header = ["# Results of the CNN reference suite",
              "Every table is regenerated from the runs' metrics.json by `make report`. "
              "Accuracies and APs in %; 'report' is the figure the course report printed, "
              "'paper' the original paper's. A row run on a subset of the data, with --limit-* "
              "or with other flags than its make target says so in its notes.",
              f"{finished} of {len(comparisons)} rows have a finished run.",
              f"![ours against the reports and the papers]({out.with_name('report.png').name})"]
    write_text("\n\n".join(header + sections) + "\n", out)
    print(f"wrote {out} and {out.with_name('report.png')}: {finished} of {len(comparisons)} "
          "rows have a finished run")


if __name__ == "__main__":
    sys.exit(cli.run(main))
