"""The MNIST tables of reports 000, 001 and 004, filled from runs/mnist/ for `make report`."""
from common.metrics import most_confused_pair
from common.report import Elsewhere, accuracy_table, markdown_table, per_class_table
from common.runs import classification_figures, find_run
from mnist.ablations import ablation_table
from mnist.data import CLASSES, FULL_SIZES

SOURCES = ("Report figures: 000, table 'MNIST Performance'; 001, Table 1; 004, Problem 1 (its "
           "test set line). Paper: LeNet-5, LeCun et al. (1998), 0.95% test error, with the "
           "paper's own training (20 passes, stochastic diagonal Levenberg-Marquardt): it "
           "stands in parentheses beside report 000's LeNet, another recipe.")
FIGURES = classification_figures(len(CLASSES))

# Report 000: (label, run under runs/mnist = make target without "mnist-", report %, paper %)
REPORT_000 = [
    ("LeNet", "lenet", 98.92, Elsewhere(99.05)),
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
    text, comparisons = per_class_table(runs, "mnist", CLASSES, REPORT_000, FULL_SIZES, FIGURES,
                                        "report 000")
    parts.append(text)

    parts.append("### Report 001, Table 1 (test accuracy)")
    rows = [(cells, name, reported, None, label_001(cells))
            for cells, name, reported in REPORT_001]
    text, rows = accuracy_table(runs, "mnist", rows, FULL_SIZES,
                                ["run", "model", "epochs (row)", "optimizer", "lr", "momentum"],
                                FIGURES)
    parts.append(text)
    comparisons += rows

    parts.append("### Report 004, Problem 1: MNIST_Net with Adam (test accuracy)")
    text, rows = accuracy_table(runs, "mnist", [(("MNIST_Net (44,470 parameters)",), "bn-net",
                                                 98.94, None, "MNIST_Net, Adam · report 004")],
                                FULL_SIZES, ["model"], FIGURES)
    parts.append(text)
    comparisons += rows
    run = find_run(runs, "mnist", "bn-net", figures=FIGURES)
    if run.finished:
        true, predicted, count = most_confused_pair(run.metrics["confusion"])
        parts.append(f"Most confused: digit {true} taken for {predicted} ({count} test images); "
                     "the report names 9 (taken for 0 or 8).")

    parts.append("### Report 004, Problem 2: ablations (`make mnist-ablations`)")
    header, rows, ablations = ablation_table(runs / "mnist" / "ablations")
    parts.append(markdown_table(header, rows))
    return "\n\n".join(parts), comparisons + ablations


def label_001(cells):
    """'Model-1, SGD lr 0.01, momentum 0.9, 10 epochs · report 001 run 3'"""
    number, model, epochs, optimizer, lr, momentum = cells
    return (f"{model}, {optimizer} lr {lr}" + ("" if momentum == "-" else f", momentum {momentum}")
            + f", {epochs} epochs · report 001 run {number}")
