"""Re-evaluate a trained MNIST run on the test set.

Prints the per-class table and the pair of digits confused most (report 004, Problem 1 asks
for that analysis); writes per_class.csv, confusion.png (row-normalised), worst.png (the most
confidently wrong digits), pr_curves.png and metrics.json into <run>/eval.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.classify import parse_test_args, test_classifier  # noqa: E402
from mnist.data import MEAN, STD, load_mnist  # noqa: E402
from mnist.models import INPUT_SIZE, MODELS, model_options  # noqa: E402


def main(argv=None):
    args = parse_test_args(argv, __doc__, MODELS)
    _, test_set = load_mnist(args.data_dir, pad_to=INPUT_SIZE.get(args.model))
    options = model_options(args.saved["args"])
    test_classifier(args, dataset="mnist", build_model=lambda: MODELS[args.model](**options),
                    test_set=test_set, mean=MEAN, std=STD)


if __name__ == "__main__":
    sys.exit(cli.run(main))
