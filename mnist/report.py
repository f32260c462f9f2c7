"""The MNIST tables of reports 000, 001 and 004, filled from runs/mnist/ for `make report`."""
from common.metrics import most_confused_pair
from common.report import accuracy_table, markdown_table, per_class_table
from common.runs import find_run
from mnist.ablations import ablation_table
from mnist.data import CLASSES, FULL_SIZES

SOURCES = ("Report figures: 000, table 'MNIST Performance'; 001, Table 1; 004, Problem 1 (its "
           "test set line). Paper: LeNet-5, LeCun et al. (1998), 0.95% test error.")

# Report 000: (label, run under runs/mnist = make target without "mnist-", report %, paper %)
REPORT_000 = [
    ("LeNet", "lenet", 98.92, 99.05),
    ("AlexNet", "alexnet", 99.32, None),
    ("ResNet-18 (pretrained)", "resnet18-pretrained", 99.32, None),
]

# Report 001, Table 1: (run, model, epochs, optimizer, lr, momentum), run name, report %
REPORT_001 = [
    ((1, "Model-1", 10, "SGD", 0.01, "-"), "model1-sgd", 97.96),
    ((2, "Model-1", 10, "ASGD", 0.001, "-"), "model1-asgd", 11.35),
    ((3, "Model-1", 10, "SGD", 0.01, 0.9), "model1-momentum", 99.12),
    ((4, "Model-2", 10, "SGD", 0.01, 0.9), "model2-10ep", 99.09),
    ((5, "Model-2", 20, "SGD", 0.01, 0.9), "model2-20ep", 99.12),
]


def section(runs):
    """Markdown of the MNIST tables, and the rows of the report's overview figure."""
    parts = ["## MNIST", SOURCES]

    parts.append("### Report 000, table 'MNIST Performance' (per-class accuracy)")
    text, comparisons = per_class_table(runs, "mnist", CLASSES, REPORT_000, FULL_SIZES)
    parts.append(text)

    parts.append("### Report 001, Table 1 (test accuracy)")
    rows = [(cells, name, reported, None) for cells, name, reported in REPORT_001]
    text, rows = accuracy_table(runs, "mnist", rows, FULL_SIZES,
                                ["run", "model", "epochs (row)", "optimizer", "lr", "momentum"])
    parts.append(text)
    comparisons += rows

    parts.append("### Report 004, Problem 1: MNIST_Net with Adam (test accuracy)")
    text, rows = accuracy_table(runs, "mnist", [(("MNIST_Net (44,470 parameters)",), "bn-net",
                                                 98.94, None)], FULL_SIZES, ["model"])
    parts.append(text)
    comparisons += rows
    run = find_run(runs, "mnist", "bn-net")
    if run.finished:
        true, predicted, count = most_confused_pair(run.metrics["confusion"])
        parts.append(f"Most confused: digit {true} taken for {predicted} ({count} test images); "
                     "the report names 9 (taken for 0 or 8).")

    parts.append("### Report 004, Problem 2: ablations (`make mnist-ablations`)")
    parts.append(markdown_table(*ablation_table(runs / "mnist" / "ablations")))
    return "\n\n".join(parts), comparisons
