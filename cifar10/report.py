"""The CIFAR-10 tables of reports 000, 001, 003 and 004 and of He et al. (2016), filled from
runs/cifar10/ for `make report`."""
from cifar10.data import CLASSES, FULL_SIZES
from common.metrics import most_confused_pair
from common.report import (accuracy_table, compare, markdown_table, notes, per_class_table,
                           percent)
from common.runs import find_run

SOURCES = ("Report figures: 000, table 'CIFAR-10 Performance'; 001, Table 2 and Exercises "
           "3-4; 003, Figures 2 and 9; 004, Problems 3-4. Paper: He et al. (2016), Table 6 (test "
           "error; ResNet-110 the best of 5 runs, mean 6.61%), whose figures also stand beside "
           "report 000's ResNets of the same depth.")

# He et al. (2016), Table 6: test accuracy (%) = 100 - error
PAPER = {"resnet20": 91.25, "resnet32": 92.49, "resnet44": 92.83, "resnet56": 93.03,
         "resnet110": 93.57}

# Report 000: (label, run under runs/cifar10 = make target without "cifar10-", report %, paper %)
REPORT_000 = [
    ("AlexNet", "alexnet", 79.83, None),
    ("ResNet-20", "resnet20", 75.02, PAPER["resnet20"]),
    ("ResNet-32", "resnet32", 78.24, PAPER["resnet32"]),
    ("ResNet-44", "resnet44", 79.49, PAPER["resnet44"]),
    ("ResNet-56", "resnet56", 81.54, PAPER["resnet56"]),
    ("ResNet-110", "resnet110", 78.39, PAPER["resnet110"]),
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

# Report 003, Figures 2 and 9: per-class test accuracy (%); no total printed
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
    text, comparisons = per_class_table(runs, "cifar10", CLASSES, REPORT_000, FULL_SIZES)
    parts.append(text)

    parts.append("### He et al. (2016), Table 6: the paper's recipe (`cifar10-resnet*-paper`)")
    rows = [((name.replace("resnet", "ResNet-"),), f"{name}-paper", None, paper)
            for name, paper in PAPER.items()]
    text, rows = accuracy_table(runs, "cifar10", rows, FULL_SIZES, ["model"])
    parts.append(text)
    comparisons += rows

    parts.append("### Report 001, Table 2 and Exercises 3-4 (test accuracy)")
    rows = [(cells, name, reported, None) for cells, name, reported in REPORT_001]
    text, rows = accuracy_table(runs, "cifar10", rows, FULL_SIZES,
                                ["row", "model", "epochs (row)", "augmentation"])
    parts.append(text)
    comparisons += rows

    parts.append("### Report 003: LeNet vs VGG-16 (per-class test accuracy, speed)")
    rows, speed = [], []
    for name, (label, reported) in REPORT_003.items():
        run = find_run(runs, "cifar10", name, full_sizes=FULL_SIZES)
        rows.append([label, "report", *reported, "", ""])
        if not run.finished:
            rows.append([label, run.status(), *[""] * 12])
            continue
        metrics = run.metrics
        rows.append([label, "ours", *map(percent, metrics["per_class"]["test_accuracy"]),
                     percent(metrics["final"]["test_accuracy"]), notes(run)])
        history = metrics["history"]
        speed.append([label, f"{metrics['parameters']:,}", len(history),
                      f"{sum(r['seconds'] for r in history) / len(history):.1f}",
                      percent(metrics["final"]["test_accuracy"]), metrics["device"]])
        comparisons.append(compare(f"cifar10 {label} (report 003)", run,
                                   100 * metrics["final"]["test_accuracy"], None, None))
    parts.append(markdown_table(["model", "", *CLASSES, "total", "notes"], rows))
    if speed:
        parts.append(markdown_table(["model", "parameters", "epochs", "s/epoch", "test acc",
                                     "device"], speed))

    parts.append("### Report 004, Problems 3-4: VGG-19 from scratch vs pretrained "
                 "(test accuracy; the report calls the pretrained one's 'really high')")
    rows = [(cells, name, reported, None) for cells, name, reported in REPORT_004]
    text, rows = accuracy_table(runs, "cifar10", rows, FULL_SIZES, ["model"])
    parts.append(text)
    comparisons += rows
    for (label,), name, _ in REPORT_004:
        run = find_run(runs, "cifar10", name)
        if run.finished:
            true, predicted, count = most_confused_pair(run.metrics["confusion"])
            parts.append(f"{label}: most confused {CLASSES[true]} taken for "
                         f"{CLASSES[predicted]} ({count} test images).")
    return "\n\n".join(parts), comparisons
