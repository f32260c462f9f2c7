"""Command-line plumbing shared by every script: the common training flags, argument checks
and exit codes (0 ok, 2 bad input, 3 diverged)."""
import argparse
import math
import os
import signal
import sys
import textwrap
import threading

from common.errors import Diverged, UserError, user_message


class Terminated(KeyboardInterrupt):
    """SIGTERM, what a cluster scheduler (or `kill`) sends to stop a job: handled as Ctrl-C,
    so that the checkpoint of the last finished epoch stays and --resume continues."""


def _terminate(signum, frame):
    # A scheduler signals the whole job: DataLoader workers die of the same SIGTERM, and
    # torch's SIGCHLD handler would report that as an error in the middle of this orderly stop.
    # A Python handler that does nothing, not SIG_DFL: a SIGCHLD already on its way would be
    # reported as "ignored due to race condition", with a traceback.
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    raise Terminated()


INTERRUPTED = ("the checkpoint of the last finished epoch is kept; add --resume to continue")


def run(main, argv=None):
    """Call main(argv) and turn the expected failures into a message and an exit code: 2 bad
    input (or a disk that refuses a write), 3 diverged, 130 Ctrl-C, 143 SIGTERM."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        main(argv)
    except UserError as error:
        print(f"error: {user_message(error)}", file=sys.stderr)
        return 2
    except Diverged as error:
        print(f"diverged: {error}", file=sys.stderr)
        return 3
    except Terminated:
        print(f"terminated (SIGTERM): {INTERRUPTED}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"interrupted: {INTERRUPTED}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


# The range of float32, the type of the weights and of the learning rate inside the fused
# optimizers: a value outside it overflows to inf or underflows to 0 there.
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_SMALLEST_NORMAL = 1.1754943508222875e-38


def _number_type(convert, minimum, strict, what):
    def check(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if convert is float and value and not FLOAT32_SMALLEST_NORMAL <= abs(value) <= FLOAT32_MAX:
            raise argparse.ArgumentTypeError(
                f"must lie within float32's range, {FLOAT32_SMALLEST_NORMAL:.3g} to "
                f"{FLOAT32_MAX:.3g} (or be 0 where 0 is allowed), got {text}")
        if value < minimum or (strict and value == minimum):
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
RECIPE_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler")
# Flags that say where and how a run is carried out, not what it computes: a resume may change
# them, and make report does not hold them against a run.
EXECUTION_FLAGS = {"device", "precision", "compile", "cuda_graphs", "data_dir", "out", "resume",
                   "continue_run", "input", "workers", "eval_every", "eval_images"}
UNSET = object()   # marks a flag left to its default


def add_training_arguments(parser, dataset, classification=True):
    """The flags of the design's script contract; their defaults come from the model's recipe.
    `classification` adds the flags that only classifiers have (--mixup, --val-split)."""
    recipe = parser.add_argument_group("recipe (defaults: the recipe of --model, listed below)")
    recipe.add_argument("--epochs", type=positive_int, help="number of epochs (%(default)s)")
    recipe.add_argument("--batch-size", type=positive_int,
                        help="global batch size, split across ranks under torchrun (%(default)s)")
    recipe.add_argument("--lr", type=positive_float, help="learning rate (%(default)s)")
    recipe.add_argument("--optimizer", choices=("sgd", "asgd", "adam"), help="(%(default)s)")
    recipe.add_argument("--momentum", type=nonnegative_float,
                        help="momentum of --optimizer sgd; refused with the others (%(default)s)")
    recipe.add_argument("--weight-decay", type=nonnegative_float,
                        help="L2 weight decay (%(default)s)")
    recipe.add_argument("--scheduler", choices=("none", "step", "multistep", "cosine"),
                        help="learning-rate schedule, applied every iteration (%(default)s)")
    recipe.add_argument("--step-size", type=positive_float,
                        help="epochs between decays, --scheduler step only (%(default)s)")
    recipe.add_argument("--milestones", type=positive_float, nargs="+",
                        help="epochs at which the rate decays, --scheduler multistep only "
                             "(%(default)s)")
    recipe.add_argument("--gamma", type=positive_float,
                        help="decay factor of --scheduler step and multistep (%(default)s)")
    recipe.add_argument("--warmup-iters", type=nonnegative_int, default=0,
                        help="the first N iterations run at the warm-up rate, then the schedule "
                             "starts (the ResNet paper's warm-up; LeNet's kick-start) "
                             "(%(default)s)")
    recipe.add_argument("--warmup-lr", type=positive_float,
                        help="learning rate of the warm-up, an absolute rate; with "
                             "--warmup-iters only (%(default)s)")
    recipe.add_argument("--warmup-shape", choices=("constant", "linear"),
                        help="constant: every warm-up iteration at --warmup-lr; linear: from "
                             "--warmup-lr up to --lr; with --warmup-iters only "
                             "(%(default)s)")
    if classification:
        recipe.add_argument("--mixup", type=nonnegative_float, default=0.0, metavar="ALPHA",
                            help="mixup (Zhang et al., 2018): each batch is blended with a "
                                 "shuffled copy of itself, weight lambda ~ Beta(ALPHA, ALPHA), "
                                 "loss lambda CE(y_a) + (1 - lambda) CE(y_b); train accuracy "
                                 "then counts the label of the larger weight; 0 turns it off "
                                 "(%(default)s)")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default: 0)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="auto picks CUDA when available (default: auto)")
    run.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                     help="arithmetic of the forward pass: auto is the network's own choice on "
                          "a GPU: fp32 (TF32) for the small ones, where bf16 autocast measured "
                          "slower, bf16 for torchvision's ImageNet networks and the detectors "
                          "(fp16 with loss scaling on GPUs without bf16: T4, V100); `make "
                          "bench-gpu` measures each; fp32 on the CPU (default: auto)")
    run.add_argument("--data-dir", default=default_data_dir(),
                     help="folder holding the data in torchvision's layout "
                          "(default: $DATA_DIR or ./data; now %(default)s)")
    run.add_argument("--out", help=f"run directory (default: runs/{dataset}/<model>; with "
                                   "--resume, the checkpoint's folder)")
    run.add_argument("--resume", nargs="?", const="", metavar="CHECKPOINT",
                     help="continue from CHECKPOINT (default: <out>/checkpoint.pt) up to "
                          "--epochs, with the checkpoint's recipe: a recipe flag that differs "
                          "from it is refused; --epochs (to more) and the flags of how and "
                          "where it runs (--device, --precision, --compile, --cuda-graphs, "
                          "--data-dir; a detector's --input, --workers, --eval-every, "
                          "--eval-images) may change. The run goes on in CHECKPOINT's folder, "
                          "or in an --out that holds no other run")
    run.add_argument("--continue", dest="continue_run", action="store_true",
                     help="resume the run in --out if it has a checkpoint, leave it as it is if "
                          "it already finished its --epochs (or diverged), else start it: what "
                          "make's *-all and reproduce targets use, so that they can be stopped "
                          "and started again")
    run.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=False,
                     help="start from torchvision's ImageNet weights (downloaded or cached) "
                          "(%(default)s)")
    run.add_argument("--weights", metavar="FILE",
                     help="start a new run from these weights: torchvision's ImageNet file "
                          "of the model, or a model.pt or checkpoint.pt of an earlier run")
    run.add_argument("--limit-train", type=positive_int, metavar="N",
                     help="train on a fixed random N images (quick runs)")
    run.add_argument("--limit-test", type=positive_int, metavar="N",
                     help="evaluate on a fixed random N images (quick runs)")
    if classification:
        run.add_argument("--val-split", type=nonnegative_int, default=0, metavar="N",
                         help="hold out N training images for per-epoch evaluation; the test "
                              "set is then used once, at the end")
    run.add_argument("--sync-bn", action="store_true",
                     help="under torchrun, batch norm computes its statistics over the whole "
                          "batch instead of each process' share (batch / processes); worth it "
                          "when that share is small (below about 32 images)")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the model (its steps then run without our CUDA graphs)")
    run.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction,
                     help="replay every training step (and a classifier's evaluation steps) "
                          "as a CUDA graph: one launch per step instead of hundreds, the limit "
                          "of small networks on a GPU. Default: on CUDA in one process with SGD "
                          "or Adam in bf16 or fp32; --no-cuda-graphs runs the steps eagerly")


def parse_training_args(argv, *, description, dataset, models, recipes, add_arguments=None,
                        classification=True, default_model=None, derive=None, out_name=None,
                        exit_help=""):
    """Parse a dataset's train.py flags, with the chosen model's recipe as the defaults.

    `--model` is read first so that `--model X --help` shows X's recipe and every flag the user
    leaves out takes X's recipe value. `args.given` holds the flags written on the command line
    (a resume compares them with the checkpoint's), `args.derived` those `derive` filled in;
    `recorded(args)` leaves both out.
    `derive(args)` fills in what a recipe computes from other flags (a schedule stretched over
    --epochs) before the recipe is checked; the default --out is runs/<dataset>/<out_name(args)>,
    by default runs/<dataset>/<model>; `exit_help` ends --help. With --resume, the flags left
    out are still the recipe's: common.training.parse_run_args applies the checkpoint's.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--model", default=default_model)
    chosen = probe.parse_known_args(argv)[0].model

    parser = argparse.ArgumentParser(
        description=description, epilog=recipe_table(recipes) + "\n\n" + textwrap.fill(exit_help),
        usage="%(prog)s " + ("[--model NAME]" if default_model else "--model NAME")
              + " [options]   (--help lists them)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=default_model is None, default=default_model,
                        choices=sorted(models),
                        help="network to train" + (" (%(default)s)" if default_model else ""))
    add_training_arguments(parser, dataset, classification)
    if add_arguments:
        add_arguments(parser)
    if chosen in recipes:
        parser.set_defaults(**recipes[chosen])
    if "-h" in argv or "--help" in argv:
        show_defaults(parser, argv, recipes=recipes, derive=derive, out_name=out_name,
                      dataset=dataset)
    args = parser.parse_args(argv)
    args.given = given_flags(parser, argv)
    missing = [key for key in RECIPE_KEYS if getattr(args, key) is None]
    if missing:  # a recipe that forgets a key is our bug, not the user's
        raise KeyError(f"recipe of {args.model} lacks {missing}")
    apply_recipe(args, derive)
    if not args.out:   # a resumed checkpoint's run goes on in its folder
        args.out = (os.path.dirname(args.resume) or ".") if args.resume else \
            default_out(args, dataset, out_name)
    return args


def apply_recipe(args, derive):
    """Fill in what the recipe derives from other flags (`derive`, noted in args.derived) and
    what its optimizer, schedule and warm-up use (resolve_recipe)."""
    args.derived = set()
    if derive:
        before = dict(vars(args))
        derive(args)
        args.derived = {key for key, value in vars(args).items() if before.get(key) != value}
    resolve_recipe(args)


def default_out(args, dataset, out_name=None):
    return os.path.join("runs", dataset, out_name(args) if out_name else args.model)


class _Unparsable(Exception):
    pass


def show_defaults(parser, argv, *, recipes, derive, out_name, dataset):
    """For --help: write into the help of each flag a recipe sets the value this command runs
    with when the flag is left out (the recipe's, with what it derives from other flags, such
    as milestones from --epochs, and the fallbacks of resolve_recipe), or "from the recipe of
    --model" when no model is chosen; and into --out's the folder it would write."""
    words = [word for word in argv if word not in ("-h", "--help")]

    def refuse(message):
        raise _Unparsable(message)
    parser.error = refuse   # parse quietly: a command that does not parse shows the recipes
    try:
        applied = parser.parse_args(words)
        applied.given = given_flags(parser, words)
        apply_recipe(applied, derive)
    except (_Unparsable, UserError):
        applied = None
    finally:
        del parser.error
    recipe_group = next(group for group in parser._action_groups
                        if group.title.startswith("recipe"))
    recipe_keys = {key for recipe in recipes.values() for key in recipe} \
        | {action.dest for action in recipe_group._group_actions}
    for action in parser._actions:
        if action.dest == "out":
            out = default_out(applied, dataset, out_name) if applied else \
                f"runs/{dataset}/<model>"
            action.help = escape(f"run directory (default: {out}; with --resume, the "
                                 "checkpoint's folder)")
        elif action.dest in recipe_keys and "%(default)s" in (action.help or ""):
            action.help = action.help.replace("%(default)s",
                                              escape(default_text(action, applied)))


def escape(text):
    return text.replace("%", "%%")


def default_text(action, applied):
    """The default of `action` as the help shows it (see show_defaults)."""
    key = action.dest
    fallback = FALLBACKS.get(key, action.default)
    if applied is None:
        return "from the recipe of --model" + (
            "" if fallback is None else f"; {shown(fallback)} if it sets none")
    if key in applied.given:   # the user's value is theirs: show what the recipe would use
        value = action.default if action.default is not None else fallback
        return "from the recipe" if value is None else shown(value)
    value = getattr(applied, key)
    if value is None:
        return "not used by this recipe" if key in NEEDS else "none"
    if key in applied.derived:
        return f"{shown(value)} at --epochs {applied.epochs}: it follows --epochs"
    return shown(value)


def shown(value):
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def given_flags(parser, argv):
    """The destinations of the flags written in `argv`, as opposed to left to their defaults."""
    unset = argparse.Namespace(**{action.dest: UNSET for action in parser._actions})
    parsed = parser.parse_args(argv, namespace=unset)
    return {dest for dest, value in vars(parsed).items() if value is not UNSET}


def flag(dest):
    return "--" + dest.replace("_", "-")


# The flags that apply only with another's value, and the value they take when the recipe sets
# none.
NEEDS = {"momentum": "--optimizer sgd", "step_size": "--scheduler step",
         "milestones": "--scheduler multistep", "gamma": "--scheduler step or multistep",
         "warmup_lr": "--warmup-iters", "warmup_shape": "--warmup-iters"}
FALLBACKS = {"momentum": 0.0, "step_size": 30, "gamma": 0.1, "warmup_lr": 0.01,
             "warmup_shape": "constant"}


def resolve_recipe(args):
    """Fill in the values the chosen optimizer, schedule and warm-up use, drop those they do
    not use (a recipe's momentum under Adam, say), and refuse a flag the user gave that would
    have no effect: every flag either takes effect or is refused."""
    given = args.given
    uses = {"momentum": args.optimizer == "sgd",
            "step_size": args.scheduler == "step",
            "milestones": args.scheduler == "multistep",
            "gamma": args.scheduler in ("step", "multistep"),
            "warmup_lr": args.warmup_iters > 0,
            "warmup_shape": args.warmup_iters > 0}
    for key, used in uses.items():
        if not used:
            if key in given:
                raise UserError(f"{flag(key)} applies with {NEEDS[key]} only; this run has "
                                f"--optimizer {args.optimizer}, --scheduler {args.scheduler}, "
                                f"--warmup-iters {args.warmup_iters}.")
            setattr(args, key, None)
    for key, value in FALLBACKS.items():
        if uses[key] and getattr(args, key) is None:
            setattr(args, key, value)
    if uses["milestones"] and not args.milestones:
        raise UserError("--scheduler multistep needs --milestones.")
    if args.weights and args.pretrained:
        if "pretrained" in given:
            raise UserError("--weights and --pretrained both choose the initial weights: give "
                            "one.")
        args.pretrained = False   # the recipe's ImageNet start gives way to the user's file
    if args.continue_run and (args.resume is not None or args.weights):
        raise UserError("--continue resumes the run of --out or starts it: give it without "
                        "--resume and --weights.")
    if args.weights and args.resume is not None:
        raise UserError("--weights starts a new run from a file, --resume continues a checkpoint "
                        "with its own weights: give one (a new run from a checkpoint's weights: "
                        "--weights <run>/checkpoint.pt --out NEW_FOLDER).")


def recorded(args):
    """The arguments as metrics.json and checkpoint.pt record them (without the bookkeeping of
    which flags were given and which a recipe derived)."""
    return {key: value for key, value in vars(args).items() if key not in ("given", "derived")}


def recipe_table(recipes):
    lines = ["recipes (the defaults per --model):"]
    for name, recipe in recipes.items():
        shown = ", ".join(f"{key.replace('_', '-')} {value}" for key, value in recipe.items())
        lines.append(f"  {name:<14} {shown}")
    return "\n".join(lines)
