"""`make report` (python -m common.report): regenerate the result tables of the five course
reports from the runs under runs/, beside the figures the reports printed and, where a paper
exists, the paper's. It reads metrics.json files only: it takes seconds and trains nothing.

Each dataset's report.py gives section(runs) -> (markdown, comparisons), the comparisons being
Comparison rows (ours, the report's and the paper's figure in %) for the overview figure that
opens the report. A row is set against the figures of its own recipe; a figure of another
recipe (a paper's network under the paper's recipe beside a report's row) stands in
parentheses, uncompared. A row whose run is missing names its make target, a diverged run says
where it diverged, and a run that is not the row (partial: shorter or on part of the data; or
another recipe) has its figure marked with its state and its differences in parentheses; the
headline counts only the runs that are their row. A run whose file is damaged or of the wrong
shape is skipped with one line naming the file. The result goes to <runs>/REPORT.md and
<runs>/report.png.
"""
import argparse
import importlib
import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from common import cli, plots
from common.errors import UserError
from common.files import write_text
from common.runs import (DIVERGED, FINISHED, INTERRUPTED, NOT_RUN, OTHER, PARTIAL, UNREADABLE,
                         find_run)

DATASETS = ("mnist", "cifar10", "scenes", "voc2007")   # each has a report.py with section(runs)
SECTIONS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "scenes": "Scenes",
            "voc2007": "PASCAL VOC 2007"}


class Elsewhere(NamedTuple):
    """A figure of another recipe than the row's (a paper's network trained by the paper's own
    recipe, beside a report's row): shown in parentheses, not compared."""
    value: float


class Comparison(NamedTuple):
    """A row of the overview figure: its section (dataset), label ("what · source"), our figure
    and the report's and the paper's of the same recipe in % (None: none), the state of our run
    (common.runs: finished, partial, ...) and, for an unreadable one, what is wrong."""
    section: str
    label: str
    ours: float
    report: float
    paper: float
    state: str
    problem: str = None


def compare(dataset, label, run, ours, reported, paper):
    return Comparison(SECTIONS[dataset], label, ours if run.finished else None,
                      comparable(reported), comparable(paper), run.state, run.problem)


def comparable(figure):
    """A figure that a row is compared with (None for a missing one or another recipe's)."""
    return None if figure is None or isinstance(figure, Elsewhere) else float(figure)


def reference(figure):
    """A reference figure's cell: '' when missing, '(93.57)' when of another recipe."""
    if figure is None:
        return ""
    return f"({figure.value})" if isinstance(figure, Elsewhere) else str(figure)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percent(fraction):
    return f"{100 * fraction:.2f}"


def difference(ours, reference_figure, run=None):
    """ours - reference, both in %, as '+1.23'; '(+1.23)' when `run` is not the row; '' when
    either is missing or the reference is another recipe's."""
    reference_figure = comparable(reference_figure)
    if ours is None or reference_figure is None:
        return ""
    text = f"{float(ours) - reference_figure:+.2f}"
    return text if run is None or run.is_row else f"({text})"


def ours_cell(run, ours):
    """Our figure, marked with the run's state when it is not the row; the status (not run,
    diverged, ...) when there is none."""
    return run.mark(f"{ours:.2f}") if run.finished and ours is not None else run.status()


def figure_links(dataset, name, figures=("curves", "confusion")):
    """Links from REPORT.md to the run's pictures."""
    return " ".join(f"[{figure}]({dataset}/{name}/{figure}.png)" for figure in figures)


def notes(run):
    """The notes cell of a run: how it departs from its row's recipe."""
    return run.note_text()


def accuracy(run):
    """A run's test accuracy in % (None when it did not finish)."""
    return 100 * run.metrics["final"]["test_accuracy"] if run.finished else None


def accuracy_table(runs, dataset, rows, full_sizes, header, figures):
    """One line per row: its fixed cells, then ours, the report's, ours - report, the paper's,
    ours - paper, epochs, notes and figures. `rows`: (cells, run name, report %, paper % (or
    Elsewhere, or None), label of the overview figure). Returns (markdown, comparisons)."""
    lines, comparisons = [], []
    for cells, name, reported, paper, label in rows:
        run = find_run(runs, dataset, name, full_sizes=full_sizes, figures=figures)
        ours = accuracy(run)
        lines.append([*cells, ours_cell(run, ours), reference(reported),
                      difference(ours, reported, run), reference(paper),
                      difference(ours, paper, run),
                      len(run.metrics["history"]) if run.finished else "",
                      notes(run), figure_links(dataset, name) if run.finished else ""])
        comparisons.append(compare(dataset, label, run, ours, reported, paper))
    return markdown_table([*header, "ours", "report", "ours - report", "paper", "ours - paper",
                           "epochs", "notes", "figures"], lines), comparisons


def per_class_table(runs, dataset, classes, entries, full_sizes, figures, source):
    """Report 000's layout: per model a train and a test row of per-class accuracy (%) and the
    total, then the report's test total, the paper's, the differences, epochs, notes and
    figures. `entries`: (label, run name, report %, paper % (or Elsewhere, or None)); `source`
    ends the overview figure's labels. Returns (markdown, comparisons)."""
    header = ["model", "split", *classes, "total", "report", "ours - report", "paper",
              "ours - paper", "epochs", "notes", "figures"]
    rows, comparisons = [], []
    blank = [""] * (len(classes) + 1)
    for label, name, reported, paper in entries:
        run = find_run(runs, dataset, name, full_sizes=full_sizes, figures=figures)
        ours = accuracy(run)
        comparisons.append(compare(dataset, f"{label} · {source}", run, ours, reported, paper))
        if not run.finished:
            rows.append([label, run.status(), *blank, reference(reported), "",
                         reference(paper), "", "", notes(run), ""])
            continue
        per_class, final = run.metrics["per_class"], run.metrics["final"]
        rows.append([label, "train", *map(percent, per_class["train_accuracy"]),
                     percent(final["train_accuracy"]), "", "", "", "",
                     len(run.metrics["history"]), notes(run), figure_links(dataset, name)])
        rows.append(["", "test", *map(percent, per_class["test_accuracy"]),
                     ours_cell(run, ours), reference(reported), difference(ours, reported, run),
                     reference(paper), difference(ours, paper, run), "", "", ""])
    return markdown_table(header, rows), comparisons


def build(runs):
    """The sections of the report (markdown) and every row's comparison for the figure."""
    sections, comparisons = [], []
    for dataset in DATASETS:
        text, rows = importlib.import_module(f"{dataset}.report").section(runs)
        sections.append(text)
        comparisons += rows
    return sections, comparisons


def headline(comparisons):
    """What the rows hold, the runs that are their row first."""
    counts = Counter(row.state for row in comparisons)
    others = [f"{counts[state]} {name}" for state, name in (
        (PARTIAL, "partial (shorter or on part of the data)"), (OTHER, "of another recipe"),
        (DIVERGED, "diverged"), (INTERRUPTED, "interrupted"), (UNREADABLE, "unreadable"),
        (NOT_RUN, "not run")) if counts[state]]
    return (f"{counts[FINISHED]} of {len(comparisons)} rows have a run that is the row (its "
            "target's recipe, full length, all the data)" + (": " if others else ".")
            + ", ".join(others) + ("." if others else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs", help="folder of the run directories")
    parser.add_argument("--out", help="markdown file to write (default: <runs>/REPORT.md; the "
                                      "figure goes beside it as report.png)")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    out = Path(args.out) if args.out else runs / "REPORT.md"
    if not runs.is_dir():
        raise UserError(f"no run found: there is no folder {runs}. make report reads "
                        "<RUNS>/<dataset>/<row>/metrics.json, RUNS=runs by default (e.g. "
                        "`make report RUNS=runs-quick`).")
    sections, comparisons = build(runs)
    if all(row.state == NOT_RUN for row in comparisons):
        raise UserError(f"no run found in {runs}: none of its <dataset>/<row> folders holds a "
                        "metrics.json, diverged.json or checkpoint.pt of a report row. Run a "
                        "target first (`make help` lists them) or point RUNS at your runs.")
    for problem in dict.fromkeys(row.problem for row in comparisons if row.problem):
        print(f"skipped: {problem}", file=sys.stderr)
    plots.plot_comparison(comparisons, out.with_name("report.png"),
                          "Ours, the reports' and the papers' figures, row by row")
    summary = headline(comparisons)
    header = ["# Results of the CNN reference suite",
              "Every table is regenerated from the runs' metrics.json by `make report`. "
              "Accuracies and APs in %; 'report' is the figure the course report printed, "
              "'paper' the original paper's. A row is compared with the figures of its own "
              "recipe; a figure in parentheses in the 'report' or 'paper' column is of "
              "another recipe (a paper's network under the paper's own recipe) and is not "
              "compared. A run that is not its row says so beside its figure: *partial* "
              "(fewer epochs than the target, --limit-*, or a subset of the dataset) or "
              "*other recipe* (other flags); its differences stand in parentheses and its "
              "notes say what the user changed.",
              summary,
              f"![ours against the reports and the papers]({out.with_name('report.png').name})"]
    write_text("\n\n".join(header + sections) + "\n", out)
    print(f"wrote {out} and {out.with_name('report.png')}: {summary}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
