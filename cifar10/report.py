"""The CIFAR-10 tables of reports 000, 001, 003 and 004 and of He et al. (2016), filled from
runs/cifar10/ for `make report`."""
from cifar10.data import CLASSES
from common.metrics import most_confused_pair
from common.report import final_accuracy, load_run, markdown_table, percent, per_class_table

# (label, run under runs/cifar10 = make target without "cifar10-", report's test accuracy)
REPORT_000 = [
    ("AlexNet", "alexnet", "79.83"),
    ("ResNet-20", "resnet20", "75.02"),
    ("ResNet-32", "resnet32", "78.24"),
    ("ResNet-44", "resnet44", "79.49"),
    ("ResNet-56", "resnet56", "81.54"),
    ("ResNet-110", "resnet110", "78.39"),
    ("ResNet-18 (pretrained)", "resnet18-pretrained", "72.64"),
    ("ResNet-50 (pretrained)", "resnet50-pretrained", "72.78"),
    ("ResNet-101 (pretrained)", "resnet101-pretrained", "74.29"),
]

# He et al. (2016), Table 6: test error (%); ResNet-110 is the best of 5 runs (mean 6.61)
PAPER = [("ResNet-20", "resnet20-paper", 8.75), ("ResNet-32", "resnet32-paper", 7.51),
         ("ResNet-44", "resnet44-paper", 7.17), ("ResNet-56", "resnet56-paper", 6.97),
         ("ResNet-110", "resnet110-paper", 6.43)]

# Report 001: (row, run, model, epochs, augmentation, report's accuracy)
REPORT_001 = [
    ("Table 2, run 1", "model1", "Model-1", 20, "none", "65.39"),
    ("Table 2, run 2", "model2-20ep", "Model-2", 20, "none", "70.51"),
    ("Table 2, run 3", "model2-30ep", "Model-2", 30, "none", "67.18"),
    ("Table 2, run 4", "model3", "Model-3", 50, "none", "63.7"),
    ("Table 2, run 5", "mlp", "Best Model-3.3 (MLP stand-in)", 20, "none", "50.8"),
    ("Exercise 3", "model2-augment-20ep", "Model-2", 20, "photometric", "72.66"),
    ("Exercise 3", "model2-augment-40ep", "Model-2", 40, "photometric", "72.78"),
    ("Exercise 4", "resnet50-finetune", "ResNet-50 (ImageNet)", 10, "photometric", "85.91"),
]

# Report 003, Figures 2 and 9: per-class test accuracy (%)
REPORT_003 = {
    "lenet": ("LeNet", [56, 75, 48, 35, 53, 48, 66, 64, 68, 59]),
    "vgg16": ("VGG-16", [1, 4, 0, 2, 0, 67, 0, 62, 61, 48]),
}

REPORT_004 = [("VGG-19, from scratch", "vgg19", "69"),
              ("VGG-19, ImageNet-pretrained", "vgg19-pretrained", "not given ('really high')")]


def section(runs):
    parts = ["## CIFAR-10"]

    parts.append("### Report 000, table 'CIFAR-10 Performance' (per-class accuracy)")
    entries = [(label, load_run(runs, "cifar10", name), f"cifar10-{name}", reported)
               for label, name, reported in REPORT_000]
    parts.append(per_class_table(CLASSES, entries))

    rows = []
    for label, name, error in PAPER:
        metrics = load_run(runs, "cifar10", name)
        validation = percent(metrics["final"]["val_accuracy"]) if metrics else ""
        rows.append([label, f"{100 - error:.2f}", validation,
                     final_accuracy(metrics, f"cifar10-{name}")])
    parts.append("### He et al. (2016), Table 6: the paper's recipe (`cifar10-resnet*-paper`)")
    parts.append(markdown_table(["model", "paper", "ours, 5k validation", "ours, test"], rows))

    rows = [[row, model, epochs, augmentation, reported,
             final_accuracy(load_run(runs, "cifar10", name), f"cifar10-{name}")]
            for row, name, model, epochs, augmentation, reported in REPORT_001]
    parts.append("### Report 001, Table 2 and Exercises 3-4 (test accuracy)")
    parts.append(markdown_table(["row", "model", "epochs", "augmentation", "report", "ours"], rows))

    parts.append("### Report 003: LeNet vs VGG-16 (per-class test accuracy, speed)")
    rows, speed = [], []
    for name, (label, reported) in REPORT_003.items():
        metrics = load_run(runs, "cifar10", name)
        rows.append([label, "report", *reported, ""])
        if metrics is None:
            rows.append([label, f"not run: `make cifar10-{name}`", *[""] * 11])
            continue
        rows.append([label, "ours", *map(percent, metrics["per_class"]["test_accuracy"]),
                     percent(metrics["final"]["test_accuracy"])])
        history = metrics["history"]
        speed.append([label, f"{metrics['parameters']:,}", len(history),
                      f"{sum(r['seconds'] for r in history) / len(history):.1f}",
                      percent(metrics["final"]["test_accuracy"]), metrics["device"]])
    parts.append(markdown_table(["model", "", *CLASSES, "total"], rows))
    if speed:
        parts.append(markdown_table(["model", "parameters", "epochs", "s/epoch", "test acc",
                                     "device"], speed))

    rows = []
    for label, name, reported in REPORT_004:
        metrics = load_run(runs, "cifar10", name)
        confused = ""
        if metrics:
            true, predicted, count = most_confused_pair(metrics["confusion"])
            confused = f"{CLASSES[true]} as {CLASSES[predicted]} ({count})"
        rows.append([label, reported, final_accuracy(metrics, f"cifar10-{name}"), confused,
                     f"runs/cifar10/{name}/confusion.png" if metrics else ""])
    parts.append("### Report 004, Problems 3-4: VGG-19 from scratch vs pretrained (test accuracy)")
    parts.append(markdown_table(["model", "report", "ours", "most confused", "confusion matrix"],
                                rows))
    return "\n\n".join(parts)
