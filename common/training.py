"""What every training script does around its loop, classifiers and detectors alike: the
--resume rule and the checkpoint, the model's starting weights and placement (channels_last,
SyncBatchNorm, DDP, torch.compile), the optimizer, schedule and loss scaler, the divergence
message, and the fields every metrics.json shares."""
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from common import runtime
from common.cli import EXECUTION_FLAGS, flag, parse_training_args, recorded
from common.engine import Schedule, build_optimizer
from common.errors import Diverged, UserError
from common.files import load_torch, read_json, save_torch, write_json
from common.nets import load_initial_weights
from common.step import grad_scaler

# The flags a resumed run may change; every other flag is the checkpoint's recipe.
CHANGEABLE_ON_RESUME = EXECUTION_FLAGS | {"epochs"}
RUN_PLACE = {"out", "resume", "continue_run"}   # where this command writes: never the saved one


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


def resume_state(args, out, dataset, name=None):
    """The checkpoint to continue from, or None for a fresh run; `name` (default: --model)
    identifies the network, with `dataset`, in the checkpoint. `args` already holds the
    checkpoint's recipe (take_resumed_recipe; --continue: already_done checked it).

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
    if not isinstance(state, dict) or not {"model", "optimizer", "history", "args"} <= state.keys():
        raise UserError(f"checkpoint {path} is not a checkpoint.pt of this suite.")
    name = name or args.model
    if (state.get("dataset"), state.get("model_name")) != (dataset, name):
        raise UserError(f"checkpoint {path} is of {state.get('dataset')} model "
                        f"{state.get('model_name')!r}, not {dataset} {name!r}.")
    if len(state["history"]) > args.epochs:
        raise UserError(f"--epochs {args.epochs}: the run of {path} has already trained "
                        f"{len(state['history'])} epochs. Give --epochs "
                        f"{len(state['history'])} or more.")
    (out / "diverged.json").unlink(missing_ok=True)   # the record of an earlier attempt
    return state


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
    for name in ("metrics.json", "checkpoint.pt", "diverged.json"):
        if (out / name).exists():
            saved = (load_torch(out / name, "checkpoint", mmap=True)   # its args only
                     if name == "checkpoint.pt"
                     else read_json(out / name, "run record"))
            saved_args = saved.get("args", {})
            differing = [recipe_differences(args, saved_args, vars(args))]
            if schedule_follows_epochs(args) and saved_args.get("epochs") != args.epochs:
                differing.append(f"--epochs {args.epochs} (the run's: "
                                 f"{saved_args.get('epochs')}), which its {args.scheduler} "
                                 "schedule is stretched over")
            differing = "; ".join(part for part in differing if part)
            if differing:
                raise UserError(f"--continue: {out} holds another run than this command's: "
                                f"{differing}. Delete the folder, or pass another --out.")
            break
    if (out / "diverged.json").exists():
        log(f"{out} diverged earlier ({out / 'diverged.json'}); delete the folder to try again")
        return True
    if (out / "metrics.json").exists():
        epochs = len(read_json(out / "metrics.json", "run metrics").get("history", []))
        if epochs >= args.epochs:
            log(f"{out} already holds a finished run of {epochs} epochs")
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
        load_optimizer_state(optimizer, resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        if resumed.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(resumed["scaler"])
    return optimizer, scheduler, scaler


def load_optimizer_state(optimizer, state):
    """The saved state of an optimizer, for this device: load_state_dict would also bring back
    the saved run's fused flag (a CUDA run's fused=True on the CPU, or unfused on CUDA) and its
    buffers' memory layout (channels_last momentum for a contiguous model on the CPU, where the
    fused step then computes wrong updates without an error)."""
    chosen = [{key: group[key] for key in ("fused", "foreach", "capturable") if key in group}
              for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, chosen):
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


def save_checkpoint(out, *, dataset, args, epoch, model, optimizer, scheduler, scaler, history,
                    name=None, **extra):
    """Everything --resume needs, written atomically: the last good state stays on disk."""
    save_torch({"dataset": dataset, "model_name": name or args.model, "args": recorded(args),
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
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
        write_json({**error.where, "message": str(error), "args": recorded(args)},
                   out / "diverged.json")
    if epoch == 1:
        return Diverged(f"{error} No checkpoint had been written yet. Start again with a "
                        f"lower --lr.", error.where)
    checkpoint = out / "checkpoint.pt"
    return Diverged(f"{error} The checkpoint of epoch {epoch - 1} stays in {checkpoint}. Start "
                    f"again with a lower --lr into another --out (or delete {out}); add "
                    f"--weights {checkpoint} to start from its weights.", error.where)


def lr_text(record):
    """An epoch's learning rate for the console: one value, or its first and last step's."""
    first, last = record["lr_first"], record["lr_last"]
    return f"{first:.4g}" if first == last else f"{first:.4g}->{last:.4g}"


def run_record(args, *, dataset, out, model, device, dist, precision):
    """The fields every metrics.json starts with; "target" is the make target of a run in
    runs/<dataset>/<name>."""
    return {"dataset": dataset, "model": args.model, "target": f"{dataset}-{out.name}",
            "run_dir": str(out), "args": recorded(args),
            "parameters": sum(p.numel() for p in model.parameters()),
            "device": runtime.describe_device(device), "precision": precision,
            "world_size": dist.world_size, "versions": runtime.versions()}
