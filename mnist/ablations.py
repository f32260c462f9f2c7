"""Report 004, Problem 2: the MNIST ablations, one run each, gathered into one table.

(c) sigmoid vs ReLU, (d) 2 vs 3 fully connected layers with SGD and with Adam, (e) no
activation, (f) with and without batch norm, (i, j) MLP vs convolution vs convolution + pooling.
Runs go to <out>/<name>, each with --continue: a finished run is reused and an interrupted one
resumed, if it is the run these flags make (else the ablation stops and names the folder); a
run that diverges is a row of the table, not the end of the ablations. The table is written to
<out>/table.md and table.csv. Flags this script does not know (e.g. --epochs, --limit-train,
--device) are passed on to every run of mnist/train.py.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.errors import Diverged  # noqa: E402
from common.files import write_csv, write_text  # noqa: E402
from common.report import compare, markdown_table, notes  # noqa: E402
from common.runs import Recipe, classification_figures, read_run  # noqa: E402
from mnist import train  # noqa: E402
from mnist.data import CLASSES, FULL_SIZES  # noqa: E402

FIGURES = classification_figures(len(CLASSES))
SGD = ["--optimizer", "sgd", "--lr", "0.01", "--momentum", "0"]
ADAM = ["--optimizer", "adam", "--lr", "0.001"]


def mlp(fc_layers, activation, optimizer, batch_norm=False):
    flags = ["--model", "mlp", "--fc-layers", str(fc_layers), "--activation", activation,
             *optimizer]
    return flags if batch_norm else flags + ["--no-batch-norm"]


# (run name, the report's question, mnist/train.py flags)
ABLATIONS = [
    ("1-mlp2-sigmoid-sgd", "c, d", mlp(2, "sigmoid", SGD)),
    ("2-mlp2-relu-sgd", "c, d", mlp(2, "relu", SGD)),
    ("3-mlp3-sigmoid-sgd", "c, d", mlp(3, "sigmoid", SGD)),
    ("4-mlp3-relu-sgd", "c, d", mlp(3, "relu", SGD)),
    ("5-mlp2-sigmoid-adam", "c, d", mlp(2, "sigmoid", ADAM)),
    ("6-mlp2-relu-adam", "c, d", mlp(2, "relu", ADAM)),
    ("7-mlp3-sigmoid-adam", "c, d", mlp(3, "sigmoid", ADAM)),
    ("8-mlp3-relu-adam", "d, f", mlp(3, "relu", ADAM)),
    ("9-mlp3-linear-adam", "e", mlp(3, "none", ADAM)),
    ("10-mlp3-relu-bn-adam", "f, g, i", mlp(3, "relu", ADAM, batch_norm=True)),
    ("11-conv-adam", "i", ["--model", "conv_nopool", *ADAM]),
    ("12-conv-pool-adam", "j", ["--model", "conv_pool", *ADAM]),
]

# the overview figure's words for the parts of a run name
WORDS = {"mlp2": "MLP 2 FC", "mlp3": "MLP 3 FC", "sigmoid": "sigmoid", "relu": "ReLU",
         "linear": "no activation", "bn": "batch norm", "sgd": "SGD", "adam": "Adam",
         "conv": "conv", "pool": "pooling"}
HEADER = ["#", "question", "network", "FC layers", "activation", "batch norm", "optimizer",
          "parameters", "train acc (%)", "test acc (%)", "notes"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/mnist/ablations", help="folder of the runs")
    args, passed_on = parser.parse_known_args(argv)
    out = Path(args.out)
    for name, _, flags in ABLATIONS:
        print(f"== {name}")
        try:
            train.main([*flags, *passed_on, "--continue", "--out", str(out / name)])
        except Diverged as error:
            print(f"diverged: {error}")
    header, rows, _ = ablation_table(out)
    write_csv(header, rows, out / "table.csv")
    table = markdown_table(header, rows)
    write_text(table + "\n", out / "table.md")
    print(table)


def ablation_table(out):
    """(header, rows, comparisons) of the ablation table from the runs under `out`: missing,
    diverged and unreadable runs say so, a run on a subset or with other flags than its row's
    (--epochs 1, say) too; the comparisons are its rows in make report's overview figure."""
    rows, comparisons = [], []
    for name, question, flags in ABLATIONS:
        number = name.split("-", 1)[0]
        folder = Path(out) / name
        run = read_run(folder, "mnist", "mnist-ablations", full_sizes=FULL_SIZES,
                       figures=FIGURES,
                       recipe=Recipe(train.parse_args, (*flags, "--out", str(folder))))
        ours = 100 * run.metrics["final"]["test_accuracy"] if run.finished else None
        label = ", ".join(WORDS[word] for word in name.split("-")[1:])
        label = f"{label} · report 004 ablation {number}"
        comparisons.append(compare("mnist", label, run, ours, None, None))
        if not run.finished:
            status = run.status()
            rows.append([number, question, name, "", "", "", "", "", status, status,
                         notes(run)])
            continue
        metrics = run.metrics
        args = metrics["args"]
        mlp = args.get("model") == "mlp"
        rows.append([
            number, question, args.get("model"),
            str(args.get("fc_layers") or 3) if mlp else "1",
            (args.get("activation") or "relu"),
            "no" if mlp and args.get("batch_norm") is False else "yes",
            args.get("optimizer"), f"{metrics.get('parameters', 0):,}",
            f"{100 * metrics['final']['train_accuracy']:.2f}",
            run.mark(f"{ours:.2f}"), notes(run),
        ])
    return HEADER, rows, comparisons


if __name__ == "__main__":
    sys.exit(cli.run(main))
