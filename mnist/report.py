"""The MNIST tables of reports 000, 001 and 004, filled from runs/mnist/ for `make report`."""
from common.metrics import most_confused_pair
from common.report import final_accuracy, load_run, markdown_table, per_class_table
from mnist.ablations import ablation_table
from mnist.data import CLASSES

# (label, run under runs/mnist, make target, the report's test accuracy)
REPORT_000 = [
    ("LeNet", "lenet", "mnist-lenet", "98.92"),
    ("AlexNet", "alexnet", "mnist-alexnet", "99.32"),
    ("ResNet-18 (pretrained)", "resnet18-pretrained", "mnist-resnet18-pretrained", "99.32"),
]

# Report 001, Table 1: (run, model, epochs, optimizer, lr, momentum, report's accuracy)
REPORT_001 = [
    ("model1-sgd", "Model-1", 10, "SGD", 0.01, "-", "97.96"),
    ("model1-asgd", "Model-1", 10, "ASGD", 0.001, "-", "11.35"),
    ("model1-momentum", "Model-1", 10, "SGD", 0.01, 0.9, "99.12"),
    ("model2-10ep", "Model-2", 10, "SGD", 0.01, 0.9, "99.09"),
    ("model2-20ep", "Model-2", 20, "SGD", 0.01, 0.9, "99.12"),
]


def section(runs):
    parts = ["## MNIST"]

    parts.append("### Report 000, table 'MNIST Performance' (per-class accuracy)\n"
                 "LeNet-5's paper (LeCun et al., 1998) reports 0.95% test error, i.e. 99.05%.")
    entries = [(label, load_run(runs, "mnist", name), target, reported)
               for label, name, target, reported in REPORT_000]
    parts.append(per_class_table(CLASSES, entries))

    rows = []
    for number, (name, *settings, reported) in enumerate(REPORT_001, 1):
        metrics = load_run(runs, "mnist", name)
        rows.append([number, *settings, reported, final_accuracy(metrics, f"mnist-{name}")])
    parts.append("### Report 001, Table 1 (test accuracy)")
    parts.append(markdown_table(["run", "model", "epochs", "optimizer", "lr", "momentum",
                                 "report", "ours"], rows))

    metrics = load_run(runs, "mnist", "bn-net")
    parts.append("### Report 004, Problem 1: MNIST_Net with Adam (test accuracy)")
    line = [["MNIST_Net (44,470 parameters)", "98.94", final_accuracy(metrics, "mnist-bn-net")]]
    parts.append(markdown_table(["model", "report", "ours"], line))
    if metrics:
        true, predicted, count = most_confused_pair(metrics["confusion"])
        parts.append(f"Most confused: digit {true} taken for {predicted} ({count} test images); "
                     "the report names 9 (taken for 0 or 8).")

    parts.append("### Report 004, Problem 2: ablations (`make mnist-ablations`)")
    parts.append(markdown_table(*ablation_table(runs / "mnist" / "ablations")))
    return "\n\n".join(parts)
