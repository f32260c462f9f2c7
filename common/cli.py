"""Command-line plumbing shared by every script: the common training flags, argument checks
and exit codes (0 ok, 2 bad input, 3 diverged)."""
import argparse
import os
import sys


class UserError(Exception):
    """A mistake the user can fix (missing data, bad file, bad flag): one paragraph, exit code 2."""


class Diverged(Exception):
    """The loss became NaN or infinite: exit code 3, the last good checkpoint stays."""


def describe_error(error):
    """An exception as one line, 'Type: message', for quoting inside a UserError."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run(main, argv=None):
    """Call main(argv) and turn the expected failures into a message and an exit code."""
    try:
        main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Diverged as error:
        print(f"diverged: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted: the checkpoint of the last finished epoch is kept; "
              "add --resume to continue", file=sys.stderr)
        return 130
    return 0


def _number_type(convert, minimum, strict, what):
    def check(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum or (strict and value == minimum) or value != value:   # or NaN
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    return check


positive_int = _number_type(int, 0, True, "an integer")
nonnegative_int = _number_type(int, 0, False, "an integer")
positive_float = _number_type(float, 0.0, True, "a number")
nonnegative_float = _number_type(float, 0.0, False, "a number")


def default_data_dir():
    """Where data is read when --data-dir is not given: $DATA_DIR, else ./data."""
    return os.environ.get("DATA_DIR", "./data")


# Flags every recipe sets; a dataset's train.py gives each model a value for all of them.
RECIPE_KEYS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "optimizer", "scheduler")


def add_training_arguments(parser, dataset):
    """The flags of the design's script contract; their defaults come from the model's recipe."""
    recipe = parser.add_argument_group("recipe (defaults: the recipe of --model, listed below)")
    recipe.add_argument("--epochs", type=positive_int, help="number of epochs (%(default)s)")
    recipe.add_argument("--batch-size", type=positive_int,
                        help="global batch size, split across ranks under torchrun (%(default)s)")
    recipe.add_argument("--lr", type=positive_float, help="learning rate (%(default)s)")
    recipe.add_argument("--momentum", type=nonnegative_float, help="SGD momentum (%(default)s)")
    recipe.add_argument("--weight-decay", type=nonnegative_float,
                        help="L2 weight decay (%(default)s)")
    recipe.add_argument("--optimizer", choices=("sgd", "asgd", "adam"), help="(%(default)s)")
    recipe.add_argument("--scheduler", choices=("none", "step", "multistep", "cosine"),
                        help="learning-rate schedule, applied every iteration (%(default)s)")
    recipe.add_argument("--step-size", type=positive_float, default=30,
                        help="epochs between decays for --scheduler step (%(default)s)")
    recipe.add_argument("--milestones", type=positive_float, nargs="+", default=[],
                        help="epochs at which --scheduler multistep decays (%(default)s)")
    recipe.add_argument("--gamma", type=positive_float, default=0.1,
                        help="decay factor of step and multistep (%(default)s)")
    recipe.add_argument("--warmup-iters", type=nonnegative_int, default=0,
                        help="the first N iterations run at --warmup-lr, then the schedule "
                             "starts (the ResNet paper's warm-up; LeNet's kick-start) "
                             "(%(default)s)")
    recipe.add_argument("--warmup-lr", type=positive_float, default=0.01,
                        help="learning rate during warm-up (%(default)s)")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default: 0)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="auto picks CUDA when available (default: auto)")
    run.add_argument("--data-dir", default=default_data_dir(),
                     help="folder holding the data in torchvision's layout "
                          "(default: $DATA_DIR or ./data; now %(default)s)")
    run.add_argument("--out", help=f"run directory (default: runs/{dataset}/<model>)")
    run.add_argument("--resume", nargs="?", const="", metavar="CHECKPOINT",
                     help="continue from CHECKPOINT (default: <out>/checkpoint.pt) up to --epochs")
    run.add_argument("--pretrained", action="store_true",
                     help="start from torchvision's ImageNet weights (downloaded or cached)")
    run.add_argument("--weights", metavar="FILE",
                     help="start from these weights: torchvision's ImageNet file for the "
                          "torchvision models, or a model.pt of an earlier run")
    run.add_argument("--limit-train", type=positive_int, metavar="N",
                     help="train on a fixed random N images (quick runs)")
    run.add_argument("--limit-test", type=positive_int, metavar="N",
                     help="evaluate on a fixed random N images (quick runs)")
    run.add_argument("--val-split", type=nonnegative_int, default=0, metavar="N",
                     help="hold out N training images for per-epoch evaluation; the test set "
                          "is then used once, at the end")
    run.add_argument("--compile", action="store_true", help="torch.compile the model")


def parse_training_args(argv, *, description, dataset, models, recipes, add_arguments=None):
    """Parse a dataset's train.py flags, with the chosen model's recipe as the defaults.

    `--model` is read first so that `--model X --help` shows X's recipe and every flag the user
    leaves out takes X's recipe value.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--model")
    chosen = probe.parse_known_args(argv)[0].model

    parser = argparse.ArgumentParser(
        description=description, epilog=recipe_table(recipes),
        usage="%(prog)s --model NAME [options]   (--help lists them)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(models),
                        help="network to train")
    add_training_arguments(parser, dataset)
    if add_arguments:
        add_arguments(parser)
    if chosen in recipes:
        parser.set_defaults(**recipes[chosen])
    args = parser.parse_args(argv)
    missing = [key for key in RECIPE_KEYS if getattr(args, key) is None]
    if missing:  # a recipe that forgets a key is our bug, not the user's
        raise KeyError(f"recipe of {args.model} lacks {missing}")
    if args.scheduler == "multistep" and not args.milestones:
        parser.error("--scheduler multistep needs --milestones")
    args.out = args.out or os.path.join("runs", dataset, args.model)
    return args


def recipe_table(recipes):
    lines = ["recipes (the defaults per --model):"]
    for name, recipe in recipes.items():
        shown = ", ".join(f"{key.replace('_', '-')} {value}" for key, value in recipe.items())
        lines.append(f"  {name:<14} {shown}")
    return "\n".join(lines)
