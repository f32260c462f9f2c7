"""Re-evaluate a trained CIFAR-10 run on the test set.

Prints the per-class table and the pair of classes confused most (report 004 asks for that
analysis); writes per_class.csv, confusion.png (row-normalised), worst.png (the most
confidently wrong images), pr_curves.png and metrics.json into <run>/eval.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from cifar10.data import MEAN, STD, load_cifar10  # noqa: E402
from cifar10.models import MODELS  # noqa: E402
from common import cli  # noqa: E402
from common.classify import parse_test_args, test_classifier  # noqa: E402


def main(argv=None):
    args = parse_test_args(argv, __doc__, MODELS)
    _, test_set = load_cifar10(args.data_dir)
    test_classifier(args, dataset="cifar10", build_model=MODELS[args.model], test_set=test_set,
                    mean=MEAN, std=STD, resize=args.saved["args"].get("resize"))


if __name__ == "__main__":
    sys.exit(cli.run(main))
