"""What every training script does around its loop, classifiers and detectors alike: the
--resume rule and the checkpoint, the model's starting weights and placement (channels_last,
SyncBatchNorm, DDP, torch.compile), the optimizer, schedule and loss scaler, the divergence
message, and the fields every metrics.json shares. The run holds its folder for its life
(run_folder): one run per folder, and a disk that refuses a write is a message, not a
traceback."""
import contextlib
import os
import traceback
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from common import runtime
from common.cli import EXECUTION_FLAGS, flag, parse_training_args, recorded
from common.engine import Schedule, build_optimizer
from common.errors import Diverged, UserError, describe_error
from common.files import (DISK_ERRNOS, WriteFailed, load_torch, save_torch, write_failure,
                          write_json)
from common.nets import load_initial_weights
from common.rundir import given_flags_problem, lock_run_folder, read_run_metrics, run_outcome
from common.step import grad_scaler

# The flags a resumed run may change; every other flag is the checkpoint's recipe.
CHANGEABLE_ON_RESUME = EXECUTION_FLAGS | {"epochs"}
RUN_PLACE = {"out", "resume", "continue_run"}   # where this command writes: never the saved one


@contextlib.contextmanager
def run_folder(out, *, dist, device):
    """Hold the run folder `out` for the run inside the block (common.rundir.lock_run_folder):
    a second run on it is refused, exit 2, naming the first. A write the disk refuses (full,
    read-only) inside the block becomes a UserError saying what, where, and that the last
    checkpoint stays as it was.

    Under torchrun only the main rank takes the lock: it alone writes the folder, and flock
    is per process, so the ranks of one node would refuse each other. The other ranks learn
    whether it got the folder (one broadcast), so that a refused job stops on every rank
    instead of waiting in its first collective."""
    out = Path(out)
    with contextlib.ExitStack() as held:
        refusal = None
        if dist.is_main:
            try:
                held.enter_context(lock_run_folder(out))
            except UserError as error:
                refusal = error
        if dist.enabled:
            taken = torch.tensor([0.0 if refusal else 1.0], device=device)
            torch.distributed.broadcast(taken, src=0)
            if not taken.item() and refusal is None:
                refusal = UserError(f"the main process of this torchrun job could not take "
                                    f"--out {out}; its message says why.")
        if refusal:
            raise refusal
        try:
            yield
        except WriteFailed as error:
            raise UserError(f"{error} {kept_checkpoint(out)}") from None
        except OSError as error:   # a write outside common.files: TensorBoard's
            if error.errno not in DISK_ERRNOS:
                raise
            where = f"{out / 'tb'} (TensorBoard's files)" if raised_in_tensorboard(error) else out
            raise UserError(f"{write_failure(error, where)} {kept_checkpoint(out)}") from None


def raised_in_tensorboard(error):
    """Whether `error` came from TensorBoard's writers (whose file errors name no file)."""
    return any(f"{os.sep}tensorboard{os.sep}" in frame.filename
               for frame in traceback.extract_tb(error.__traceback__))


def kept_checkpoint(out):
    """What a run stopped by a refused write keeps, and what to do next."""
    checkpoint = out / "checkpoint.pt"
    if not checkpoint.exists():
        return ("No checkpoint had been written yet: make room (or pick a writable --out) and "
                "start again.")
    return (f"The checkpoint of the last finished epoch stays in {checkpoint}, as it was: make "
            "room (or make the folder writable), then add --resume to continue.")


def parse_run_args(argv, *, dataset, models, **options):
    """A train script's flags (common.cli.parse_training_args, with `options`), and with
    --resume the recipe of the checkpoint it continues (take_resumed_recipe)."""
    args = parse_training_args(argv, dataset=dataset, models=models, **options)
    if args.resume is not None:
        take_resumed_recipe(args, dataset, models)
    return args


def take_resumed_recipe(args, dataset, models):
    """--resume continues the recipe of its checkpoint: the flags left out take the checkpoint's
    values (so `args`, and the metrics.json written from it, say what the run really used), and
    a recipe flag given with another value is refused, naming how to start a new run from its
    weights. parse_run_args calls it, so that everything built from `args` (the data, the
    augmentation, the model) follows the run."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory.")
    path = checkpoint_to_resume(args)
    if not path.exists():
        raise UserError(f"nothing to resume: {path} does not exist. Start without --resume.")
    if path.resolve() != (out / "checkpoint.pt").resolve():
        for name in ("checkpoint.pt", "metrics.json", "diverged.json"):
            if (out / name).exists():
                raise UserError(f"--out {out} holds another run ({name}) than the checkpoint "
                                f"{path} continues: pass an --out of its own, or leave --out "
                                "out to continue the checkpoint's run in its folder.")
    saved = load_torch(path, "checkpoint", mmap=True)   # its args only
    if not isinstance(saved, dict) or not isinstance(saved.get("args"), dict):
        raise UserError(f"checkpoint {path} is not a checkpoint.pt of this suite.")
    if saved.get("dataset") != dataset or saved["args"].get("model") not in models:
        raise UserError(f"checkpoint {path} is of {saved.get('dataset')} model "
                        f"{saved.get('model_name')!r}, not of a {dataset} model of this script.")
    differing = recipe_differences(args, saved["args"], args.given)
    if differing:
        raise UserError(
            f"--resume continues the recipe of {path}, and these flags differ from it: "
            f"{differing}. Leave them out to continue the run, or start a new run from its "
            f"weights with them: --weights {path} --out NEW_FOLDER.")
    kept = (CHANGEABLE_ON_RESUME & args.given) | RUN_PLACE
    for key, value in saved["args"].items():
        if key not in kept:
            setattr(args, key, value)


def checkpoint_to_resume(args):
    return Path(args.resume) if args.resume else Path(args.out) / "checkpoint.pt"


def resume_state(args, out, dataset, name=None, extra=()):
    """The checkpoint to continue from, or None for a fresh run; `name` (default: --model)
    identifies the network, with `dataset`, in the checkpoint; `extra` names the fields the
    run's save_checkpoint adds (a classifier's train_confusion), which it must hold too. `args`
    already holds the checkpoint's recipe (take_resumed_recipe; --continue: already_done
    checked it). A checkpoint that is damaged (checkpoint_problem) is a UserError naming it.

    A fresh run never replaces an earlier one: the user resumes it, deletes it or picks another
    --out.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory.")
    if args.continue_run and (out / "checkpoint.pt").exists():
        args.resume = ""
    if args.resume is None:
        for name in ("checkpoint.pt", "metrics.json"):
            if (out / name).exists():
                raise UserError(f"{out} already holds a run ({name}). Add --resume to continue "
                                "it, pass another --out, or delete the folder to start over.")
        (out / "diverged.json").unlink(missing_ok=True)   # the record of an earlier attempt
        return None
    path = checkpoint_to_resume(args)
    state = load_torch(path, "checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("args"), dict):
        raise UserError(f"checkpoint {path} is not a checkpoint.pt of this suite.")
    name = name or args.model
    if (state.get("dataset"), state.get("model_name")) != (dataset, name):
        raise UserError(f"checkpoint {path} is of {state.get('dataset')} model "
                        f"{state.get('model_name')!r}, not {dataset} {name!r}.")
    problem = checkpoint_problem(state, extra)
    if problem:
        raise damaged_checkpoint(path, problem)
    # The recipe was taken from the checkpoint before this run held the folder: it must still
    # be the checkpoint's (another run may have replaced it meanwhile).
    differing = recipe_differences(args, state["args"], vars(args))
    if differing:
        raise UserError(f"checkpoint {path} changed while this command started (another run "
                        f"wrote it): {differing}. Run the command again.")
    args.given = set(args.given) | set(state.get("given_flags", ()))   # the run's, all along
    if len(state["history"]) > args.epochs:
        raise UserError(f"--epochs {args.epochs}: the run of {path} has already trained "
                        f"{len(state['history'])} epochs. Give --epochs "
                        f"{len(state['history'])} or more.")
    (out / "diverged.json").unlink(missing_ok=True)   # the record of an earlier attempt
    return state


CHECKPOINT_KEYS = ("args", "epoch", "model", "optimizer", "scheduler", "scaler", "history")


def checkpoint_problem(state, extra=()):
    """What is wrong with the content of a checkpoint (besides its tensors, which
    prepare_model and optimization check against the run's model and optimizer), as text ("" if
    nothing); `extra`: fields it must hold besides CHECKPOINT_KEYS."""
    missing = [key for key in (*CHECKPOINT_KEYS, *extra) if key not in state]
    if missing:
        return f"it has no {', '.join(missing)}"
    history = state["history"]
    if not isinstance(history, list) or not all(isinstance(record, dict) for record in history):
        return f"its history is a {type(history).__name__}, not a list of epoch records"
    if [record.get("epoch") for record in history] != list(range(1, len(history) + 1)) \
            or state["epoch"] != len(history):
        return (f"its history is not the records of epochs 1 to {state['epoch']!r}, the "
                "checkpoint's epoch, in order")
    return given_flags_problem(state)


def damaged_checkpoint(path, problem):
    return UserError(f"checkpoint {path} is damaged: {problem}. Resume from another checkpoint, "
                     "or start the run again (delete its folder or pass another --out).")


def recipe_differences(args, saved, keys):
    """The flags among `keys` whose value in `args` differs from the `saved` args of a run,
    as text ("" if none); the flags a resume may change are left out."""
    return "; ".join(f"{flag(key)} {getattr(args, key)} (the run's: {saved[key]})"
                     for key in sorted(set(keys) - CHANGEABLE_ON_RESUME - {"given", "derived"})
                     if key in saved and saved[key] != getattr(args, key))


def schedule_follows_epochs(args):
    """Whether the learning rates of the recipe depend on --epochs (a cosine schedule, or
    milestones stretched over the run), so that a run of other --epochs is another run."""
    return args.scheduler == "cosine" or "milestones" in getattr(args, "derived", ())


def already_done(args, out, log):
    """--continue: True (and says so) when the run of --out finished its --epochs, or diverged,
    so that there is nothing to do. A run there must be the one this command starts: every
    recipe flag, given or left to the recipe, must match it (only --epochs may grow).
    Call it before resume_state."""
    if not args.continue_run:
        return False
    diverged, finished = run_outcome(out)   # both checked
    saved_args = None
    if (out / "metrics.json").exists():
        saved_args = (finished or read_run_metrics(out))["args"]
    elif (out / "checkpoint.pt").exists():
        saved = load_torch(out / "checkpoint.pt", "checkpoint", mmap=True)   # its args only
        saved_args = saved.get("args") if isinstance(saved, dict) else None
        if not isinstance(saved_args, dict):
            raise UserError(f"checkpoint {out / 'checkpoint.pt'} is not a checkpoint.pt of this "
                            "suite.")
    elif diverged:
        saved_args = diverged.get("args", {})
    if saved_args is not None:
        differing = [recipe_differences(args, saved_args, vars(args))]
        if schedule_follows_epochs(args) and saved_args.get("epochs") != args.epochs:
            differing.append(f"--epochs {args.epochs} (the run's: "
                             f"{saved_args.get('epochs')}), which its {args.scheduler} "
                             "schedule is stretched over")
        differing = "; ".join(part for part in differing if part)
        if differing:
            raise UserError(f"--continue: {out} holds another run than this command's: "
                            f"{differing}. Delete the folder, or pass another --out.")
    if diverged:
        log(f"{out} diverged earlier ({out / 'diverged.json'}); delete the folder to try again")
        return True
    if finished and len(finished["history"]) >= args.epochs:
        log(f"{out} already holds a finished run of {len(finished['history'])} epochs")
        return True
    return False


def prepare_model(model, args, *, device, dist, resumed, log):
    """Give `model` its starting weights (the checkpoint's, or --pretrained / --weights), put it
    on `device` (channels_last on CUDA), convert batch norm to SyncBatchNorm for --sync-bn and
    wrap it for torchrun and --compile.

    Returns (model, train_model, eval_model): the plain module (its state_dict is what is saved),
    the one to train, and the one to evaluate with (DDP's forward syncs buffers across ranks,
    which uneven evaluation shards cannot do).
    """
    runtime.check_same_everywhere(len(resumed["history"]) if resumed else 0, dist, device,
                                  "the epochs the run in --out holds")
    if resumed:
        path = checkpoint_to_resume(args)
        problem = state_dict_problem(model, resumed["model"])
        if problem:
            raise damaged_checkpoint(path, f"its model state does not fit {args.model}: "
                                           f"{problem}")
        model.load_state_dict(resumed["model"])
    else:
        load_initial_weights(model, pretrained=args.pretrained, weights_file=args.weights, log=log)
    if args.sync_bn:
        if not dist.enabled:
            raise UserError("--sync-bn shares batch-norm statistics between torchrun "
                            "processes; this run has one process, so it would do nothing.")
        if device.type != "cuda":
            raise UserError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run "
                            "on the CPU.")
        if not any(isinstance(module, nn.modules.batchnorm._BatchNorm)
                   for module in model.modules()):
            raise UserError(f"--sync-bn: {args.model} has no batch norm.")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    cuda = device.type == "cuda"
    model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    train_model = model
    if dist.enabled:
        train_model = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if args.compile:
        train_model = torch.compile(train_model)
    return model, train_model, model if dist.enabled else train_model


def state_dict_problem(model, state, shown=3):
    """What keeps `state` from loading into `model` exactly (missing or unexpected tensors,
    wrong shapes, values that are not tensors), as text ("" if nothing); at most `shown`
    names of each kind."""
    if not isinstance(state, dict):
        return f"it is a {type(state).__name__}, not a dict of tensors"
    expected = model.state_dict()

    def names(keys):
        more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
        return ", ".join(keys[:shown]) + more

    problems = []
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    not_tensors = [key for key in state if key in expected and not torch.is_tensor(state[key])]
    shapes = [f"{key} {tuple(state[key].shape)} (the model's: {tuple(expected[key].shape)})"
              for key in expected if key in state and torch.is_tensor(state[key])
              and state[key].shape != expected[key].shape]
    if missing:
        problems.append(f"it lacks {names(missing)}")
    if unexpected:
        problems.append(f"it has tensors the model does not: {names(unexpected)}")
    if not_tensors:
        problems.append(f"not tensors: {names(not_tensors)}")
    if shapes:
        problems.append(f"wrong shapes: {names(shapes)}")
    return "; ".join(problems)


def load_model_state(model, path, what, name):
    """Load the state_dict file `path` (a model.pt; `what` names it in messages) into `model`
    (the network `name`), refusing a file that does not fit it exactly with a UserError that
    says what is wrong: what test.py does with a run's weights."""
    state = load_torch(path, what)
    problem = state_dict_problem(model, state)
    if problem:
        raise UserError(f"{what} {path} does not fit {name}: {problem}.")
    model.load_state_dict(state)


def check_batch_size(model, per_process_batch, dist):
    """Batch norm cannot train on one image: refuse a per-process batch of one for such models."""
    if per_process_batch == 1 and any(isinstance(module, nn.modules.batchnorm._BatchNorm)
                                       for module in model.modules()):
        processes = f" split across {dist.world_size} processes" if dist.enabled else ""
        raise UserError(f"a batch of one image per process{processes} cannot train batch "
                        f"norm; raise --batch-size.")


def optimization(args, model, *, device, precision, steps_per_epoch, resumed, graphs=False):
    """(optimizer, schedule, scaler) for the recipe in `args`, in the checkpoint's state when
    resuming; `graphs`: the step will be captured (common.step)."""
    optimizer = build_optimizer(args, model, device, graphs)
    scheduler = Schedule(args, steps_per_epoch)
    scaler = grad_scaler(device, precision)
    if resumed:
        path = checkpoint_to_resume(args)
        with loading(path, f"{args.optimizer} optimizer"):
            load_optimizer_state(optimizer, resumed["optimizer"])
        with loading(path, "schedule"):
            scheduler.load_state_dict(resumed["scheduler"])
        if resumed["scaler"] and scaler.is_enabled():
            with loading(path, "loss scaler"):
                scaler.load_state_dict(resumed["scaler"])
    return optimizer, scheduler, scaler


@contextlib.contextmanager
def loading(path, what):
    """Turn the errors of loading the `what` state of checkpoint `path` into a UserError."""
    try:
        yield
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as error:
        raise damaged_checkpoint(path, f"its {what} state does not fit this run "
                                       f"({describe_error(error)[:200]})") from None


def load_optimizer_state(optimizer, state):
    """The saved state of an optimizer, for this device: load_state_dict would also bring back
    the saved run's fused flag (a CUDA run's fused=True on the CPU, or unfused on CUDA) and its
    buffers' memory layout (channels_last momentum for a contiguous model on the CPU, where the
    fused step then computes wrong updates without an error)."""
    chosen = [{key: group[key] for key in ("fused", "foreach", "capturable") if key in group}
              for group in optimizer.param_groups]
    settings = [set(group) for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags, keys in zip(optimizer.param_groups, chosen, settings):
        if keys - set(group):
            raise ValueError(f"a parameter group lacks {sorted(keys - set(group))}")
        group.update(flags)
        on_device = bool(flags.get("fused") or flags.get("capturable"))
        for param in group["params"]:
            buffers = optimizer.state[param]
            for key, value in buffers.items():
                if not torch.is_tensor(value):
                    continue
                if value.shape == param.shape:   # momentum, moments: the parameter's layout
                    buffers[key] = torch.empty_like(param).copy_(value)
                elif key == "step":   # fused and capturable steps keep it on the device
                    buffers[key] = value.to(param.device if on_device else "cpu",
                                            torch.float32)
                elif value.dim():   # a per-parameter buffer of another parameter's shape
                    raise ValueError(f"its {key} of shape {tuple(value.shape)} belongs to no "
                                     f"parameter of shape {tuple(param.shape)}")


def save_checkpoint(out, *, dataset, args, epoch, model, optimizer, scheduler, scaler, history,
                    name=None, **extra):
    """Everything --resume needs, written atomically: the last good state stays on disk."""
    save_torch({"dataset": dataset, "model_name": name or args.model, "args": recorded(args),
                "given_flags": sorted(args.given), "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "history": history, **extra},
               out / "checkpoint.pt")


def check_weights_finite(model, *, epoch, steps, lr, dist):
    """Raise Diverged when a weight became NaN or infinite. LossWatch judges each step's loss,
    computed before that step's update, so the last updates of an epoch are judged here, before
    a checkpoint keeps them: one host sync per epoch."""
    finite = torch.stack([parameter.isfinite().all() for parameter in model.parameters()])
    finite = finite.all().float().view(1)
    if dist.enabled:
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    if not finite.item():
        raise Diverged(f"the weights became NaN or infinite in the last steps of epoch {epoch} "
                       f"(learning rate {lr:.3g}).",
                       {"epoch": epoch, "step": steps, "steps": steps, "lr": lr, "loss": None})


def divergence(error, *, out, dist, args):
    """The Diverged error to stop the run with (what happened, what stays, what to do); the
    main rank also writes <out>/diverged.json, so that `make report` can say the run diverged
    and where, and --continue knows its recipe."""
    epoch = error.where["epoch"]
    if dist.is_main:
        write_json({**error.where, "message": str(error), "args": recorded(args),
                    "given_flags": sorted(args.given)}, out / "diverged.json")
    if epoch == 1:
        return Diverged(f"{error} No checkpoint had been written yet. Start again with a "
                        f"lower --lr.", error.where)
    checkpoint = out / "checkpoint.pt"
    return Diverged(f"{error} The checkpoint of epoch {epoch - 1} stays in {checkpoint}. Start "
                    f"again with a lower --lr into another --out (or delete {out}); add "
                    f"--weights {checkpoint} to start from its weights.", error.where)


def log_start(what, *, args, resumed, device, precision, graphs, dist, out, log):
    """A run's first lines: `what` (the network and its data), then where and how it runs and
    into which folder; for a resumed run, the epoch it goes on from."""
    log(f"{what} | {runtime.describe_device(device)}, {precision}"
        + (", CUDA graphs" if graphs else "")
        + (f" x {dist.world_size} processes" if dist.enabled else "") + f" | {out}")
    if resumed:
        log(f"resumed at epoch {len(resumed['history']) + 1} of {args.epochs} from "
            f"{checkpoint_to_resume(args)}")


def lr_text(record):
    """An epoch's learning rate for the console: one value, or its first and last step's."""
    first, last = record["lr_first"], record["lr_last"]
    return f"{first:.4g}" if first == last else f"{first:.4g}->{last:.4g}"


def run_record(args, *, dataset, out, model, device, dist, precision):
    """The fields every metrics.json starts with; "target" is the make target of a run in
    runs/<dataset>/<name>; "given_flags" the flags the user wrote (over every command of the
    run: a resume adds its own), as opposed to those the recipe set or derived."""
    return {"dataset": dataset, "model": args.model, "target": f"{dataset}-{out.name}",
            "run_dir": str(out), "args": recorded(args), "given_flags": sorted(args.given),
            "parameters": sum(p.numel() for p in model.parameters()),
            "device": runtime.describe_device(device), "precision": precision,
            "world_size": dist.world_size, "versions": runtime.versions()}
