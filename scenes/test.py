"""Re-evaluate a trained scene run on the val split (report 002's evaluation set).

Prints the per-class table and the pair of classes confused most; writes per_class.csv,
confusion.png (row-normalised), worst.png (the most confidently wrong images), pr_curves.png
and metrics.json into <run>/eval.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.classify import parse_test_args, test_classifier  # noqa: E402
from scenes.data import MEAN, STD, load_scenes  # noqa: E402
from scenes.models import MODELS  # noqa: E402


def main(argv=None):
    args = parse_test_args(argv, __doc__, MODELS)
    _, val_set = load_scenes(args.data_dir)
    test_classifier(args, dataset="scenes", build_model=MODELS[args.model], test_set=val_set,
                    mean=MEAN, std=STD, resize=args.saved["args"].get("resize"), test_name="val")


if __name__ == "__main__":
    sys.exit(cli.run(main))
