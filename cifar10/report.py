"""The CIFAR-10 tables of reports 000, 001, 003 and 004 and of He et al. (2016), filled from
runs/cifar10/ for `make report`."""
from cifar10.data import CLASSES, FULL_SIZES
from common.metrics import most_confused_pair
from common.report import (Elsewhere, accuracy, accuracy_table, compare, difference,
                           markdown_table, notes, ours_cell, per_class_table, percent)
from common.runs import classification_figures, find_run

SOURCES = ("Report figures: 000, table 'CIFAR-10 Performance'; 001, Table 2 and Exercises "
           "3-4; 003, Figures 2 and 9; 004, Problems 3-4. Paper: He et al. (2016), Table 6 (test "
           "error; ResNet-110 the best of 5 runs, mean 6.61%), the figures of its own recipe "
           "(the `-paper` rows); beside report 000's ResNets of the same depth, another recipe, "
           "they stand in parentheses.")
FIGURES = classification_figures(len(CLASSES))

# He et al. (2016), Table 6: test accuracy (%) = 100 - error
PAPER = {"resnet20": 91.25, "resnet32": 92.49, "resnet44": 92.83, "resnet56": 93.03,
         "resnet110": 93.57}

# Report 000: (label, run under runs/cifar10 = make target without "cifar10-", report %, paper %)
REPORT_000 = [
    ("AlexNet", "alexnet", 79.83, None),
    ("ResNet-20", "resnet20", 75.02, Elsewhere(PAPER["resnet20"])),
    ("ResNet-32", "resnet32", 78.24, Elsewhere(PAPER["resnet32"])),
    ("ResNet-44", "resnet44", 79.49, Elsewhere(PAPER["resnet44"])),
    ("ResNet-56", "resnet56", 81.54, Elsewhere(PAPER["resnet56"])),
    ("ResNet-110", "resnet110", 78.39, Elsewhere(PAPER["resnet110"])),
    ("ResNet-18 (pretrained)", "resnet18-pretrained", 72.64, None),
    ("ResNet-50 (pretrained)", "resnet50-pretrained", 72.78, None),
    ("ResNet-101 (pretrained)", "resnet101-pretrained", 74.29, None),
]

# Report 001: (row, model, epochs, augmentation), run, report %
REPORT_001 = [
    (("Table 2, run 1", "Model-1", 20, "none"), "model1", 65.39),
    (("Table 2, run 2", "Model-2", 20, "none"), "model2-20ep", 70.51),
    (("Table 2, run 3", "Model-2", 30, "none"), "model2-30ep", 67.18),
    (("Table 2, run 4", "Model-3", 50, "none"), "model3", 63.7),
    (("Table 2, run 5", "Best Model-3.3 (MLP stand-in)", 20, "none"), "mlp", 50.8),
    (("Exercise 3", "Model-2", 20, "photometric"), "model2-augment-20ep", 72.66),
    (("Exercise 3", "Model-2", 40, "photometric"), "model2-augment-40ep", 72.78),
    (("Exercise 4", "ResNet-50 (ImageNet)", 10, "photometric"), "resnet50-finetune", 85.91),
]

# Report 003, Figures 2 and 9: per-class test accuracy (%). It prints no total: the mean of the
# per-class figures stands for it (the test set has as many images of each class).
REPORT_003 = {
    "lenet": ("LeNet", [56, 75, 48, 35, 53, 48, 66, 64, 68, 59]),
    "vgg16": ("VGG-16", [1, 4, 0, 2, 0, 67, 0, 62, 61, 48]),
}

# Report 004: (model), run, report % ("really high" for the pretrained one: no figure)
REPORT_004 = [(("VGG-19, from scratch",), "vgg19", 69),
              (("VGG-19, ImageNet-pretrained",), "vgg19-pretrained", None)]


def section(runs):
    """Markdown of the CIFAR-10 tables, and the rows of the report's overview figure."""
    parts = ["## CIFAR-10", SOURCES]

    parts.append("### Report 000, table 'CIFAR-10 Performance' (per-class accuracy)")
    text, comparisons = per_class_table(runs, "cifar10", CLASSES, REPORT_000, FULL_SIZES, FIGURES,
                                        "report 000")
    parts.append(text)

    parts.append("### He et al. (2016), Table 6: the paper's recipe (`cifar10-resnet*-paper`)")
    rows = []
    for name, paper in PAPER.items():
        model = name.replace("resnet", "ResNet-")
        rows.append(((model,), f"{name}-paper", None, paper, f"{model} · He et al. recipe"))
    text, rows = accuracy_table(runs, "cifar10", rows, FULL_SIZES, ["model"], FIGURES)
    parts.append(text)
    comparisons += rows

    parts.append("### Report 001, Table 2 and Exercises 3-4 (test accuracy)")
    rows = [(cells, name, reported, None, label_001(cells))
            for cells, name, reported in REPORT_001]
    text, rows = accuracy_table(runs, "cifar10", rows, FULL_SIZES,
                                ["row", "model", "epochs (row)", "augmentation"], FIGURES)
    parts.append(text)
    comparisons += rows

    parts.append("### Report 003: LeNet vs VGG-16 (per-class test accuracy, speed)\n"
                 "The report prints no total: its mean of the per-class figures stands for it "
                 "(the test set has as many images of each class).")
    rows, speed = [], []
    for name, (label, reported) in REPORT_003.items():
        run = find_run(runs, "cifar10", name, full_sizes=FULL_SIZES, figures=FIGURES)
        reported_total = round(sum(reported) / len(reported), 2)
        ours = accuracy(run)
        comparisons.append(compare("cifar10", f"{label} · report 003", run, ours,
                                   reported_total, None))
        rows.append([label, "report", *reported, f"{reported_total:.2f}", "", ""])
        if not run.finished:
            rows.append([label, run.status(), *[""] * (len(CLASSES) + 2), notes(run)])
            continue
        metrics = run.metrics
        rows.append([label, "ours", *map(percent, metrics["per_class"]["test_accuracy"]),
                     ours_cell(run, ours), difference(ours, reported_total, run), notes(run)])
        history = metrics["history"]
        speed.append([label, f"{metrics.get('parameters', 0):,}", len(history),
                      f"{sum(r.get('seconds', 0) for r in history) / len(history):.1f}",
                      ours_cell(run, ours), metrics.get("device", "")])
    parts.append(markdown_table(["model", "", *CLASSES, "total", "ours - report", "notes"],
                                rows))
    if speed:
        parts.append(markdown_table(["model", "parameters", "epochs", "s/epoch", "test acc",
                                     "device"], speed))

    parts.append("### Report 004, Problems 3-4: VGG-19 from scratch vs pretrained "
                 "(test accuracy; the report calls the pretrained one's 'really high')")
    rows = [(cells, name, reported, None, f"{cells[0]} · report 004")
            for cells, name, reported in REPORT_004]
    text, rows = accuracy_table(runs, "cifar10", rows, FULL_SIZES, ["model"], FIGURES)
    parts.append(text)
    comparisons += rows
    for (label,), name, _ in REPORT_004:
        run = find_run(runs, "cifar10", name, figures=FIGURES)
        if run.finished:
            true, predicted, count = most_confused_pair(run.metrics["confusion"])
            parts.append(f"{label}: most confused {CLASSES[true]} taken for "
                         f"{CLASSES[predicted]} ({count} test images).")
    return "\n\n".join(parts), comparisons


def label_001(cells):
    """'Model-2, 20 epochs, photometric augmentation · report 001 Exercise 3'"""
    row, model, epochs, augmentation = cells
    augmented = "" if augmentation == "none" else f", {augmentation} augmentation"
    return f"{model}, {epochs} epochs{augmented} · report 001 {row.replace('Table 2, ', '')}"
