"""The scene tables of report 002, filled from runs/scenes/ for `make report`."""
from pathlib import Path

from common.report import (compare, difference, figure_links, markdown_table, notes, ours_cell,
                           percent)
from common.runs import classification_figures, find_run
from scenes.data import CLASSES, FULL_SIZES
from scenes.sweep import sweep_table

FIGURES = classification_figures(len(CLASSES))

SOURCES = ("Report figures: 002, the overall and per-class accuracies printed under each "
           "model's confusion matrix (val split). No paper.")

# (label, run under runs/scenes = make target without "scenes-", the report's overall accuracy
# and its per-class accuracies (%), classes 0-5 = buildings, forests, glacier, mountains, sea,
# street)
REPORT_002 = [
    ("LeNet", "lenet", 79.45, [69.79, 96.67, 79.97, 69.28, 84.11, 77.66]),
    ("CustomLeNet", "custom-lenet", 75.46, [60.23, 78.70, 76.77, 66.94, 77.50, 91.37]),
    ("AlexNet", "alexnet", 85.41, [80.50, 93.89, 82.83, 81.14, 82.50, 91.71]),
    ("ResNet18", "resnet18", 85.76, [95.98, 94.81, 87.54, 72.12, 95.18, 71.57]),
    ("ResNet18 + Mixup", "resnet18-mixup", 88.35, [86.23, 91.67, 77.61, 89.98, 92.68, 92.22]),
    ("ResNet18 + Transferred", "resnet18-transfer", 92.96,
     [93.88, 98.70, 87.88, 90.15, 96.43, 91.54]),
] + [(f"ResNet{depth} + Transferred + Mixup", f"resnet{depth}-transfer-mixup", 94.31,
      [92.73, 98.52, 87.04, 92.32, 99.11, 96.62]) for depth in (50, 101, 152)]

TRANSFER_MIXUP_NOTE = (
    "The report trains ResNet50, ResNet101 and ResNet152 transferred with mixup, plots their "
    "validation accuracy together, then prints one overall accuracy (94.31) and one set of "
    "per-class figures without naming the model they belong to (presumably the best of the "
    "three): they stand beside each of the three rows.")


def section(runs):
    """Markdown of the scene tables, and the rows of the report's overview figure."""
    parts = ["## Scenes", SOURCES, "### Report 002: accuracy per class on the val split"]
    rows, comparisons = [], []
    blank = [""] * (len(CLASSES) + 4)
    for label, name, overall, per_class in REPORT_002:
        run = find_run(runs, "scenes", name, full_sizes=FULL_SIZES, figures=FIGURES)
        rows.append([label, "report", *(f"{value:.2f}" for value in per_class), f"{overall:.2f}",
                     "", "", ""])
        total = 100 * run.metrics["final"]["test_accuracy"] if run.finished else None
        comparisons.append(compare("scenes", f"{label} · report 002", run, total, overall, None))
        if not run.finished:
            rows.append(["", run.status(), *blank[:-1], notes(run)])
            continue
        ours = [100 * value for value in run.metrics["per_class"]["test_accuracy"]]
        rows.append(["", "ours", *map(percent, run.metrics["per_class"]["test_accuracy"]),
                     ours_cell(run, total), len(run.metrics["history"]), notes(run),
                     figure_links("scenes", name)])
        rows.append(["", "ours - report",
                     *(difference(mine, theirs, run) for mine, theirs in zip(ours, per_class)),
                     difference(total, overall, run), "", "", ""])
    parts.append(markdown_table(["model", "", *CLASSES, "overall", "epochs", "notes", "figures"],
                                rows))
    parts.append(TRANSFER_MIXUP_NOTE)

    parts.append("### Report 002: LeNet's learning rate (`make scenes-lenet-lr-sweep`)\n"
                 "The report: a NaN loss for every lr from 0.007 up.")
    header, rows, sweep = sweep_table(Path(runs) / "scenes" / "lenet-lr-sweep")
    parts.append(markdown_table(header, rows))
    return "\n\n".join(parts), comparisons + sweep
