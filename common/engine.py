"""The training and evaluation loops, the optimizers and the learning-rate schedules."""
import math
import time
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import runtime
from common.cli import Diverged

DIVERGENCE_CHECK_STEPS = 50   # look for a NaN/inf loss this often (one device sync each time)
PROGRESS_SECONDS = 30         # within an epoch, print progress at most this often


def build_optimizer(args, model, device):
    fused = {"fused": True} if device.type == "cuda" else {}
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay, **fused)
    if args.optimizer == "asgd":
        return torch.optim.ASGD(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                            **fused)


def lr_factor(step, *, steps_per_epoch, args):
    """Multiplier of --lr at optimizer step `step` (counted from 0 over the whole run)."""
    if step < args.warmup_iters:
        return args.warmup_lr / args.lr
    epoch = step / steps_per_epoch   # fractional, so decays land on iteration boundaries
    if args.scheduler == "step":
        return args.gamma ** math.floor(epoch / args.step_size)
    if args.scheduler == "multistep":
        return args.gamma ** sum(epoch >= milestone for milestone in args.milestones)
    if args.scheduler == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(epoch / args.epochs, 1.0)))
    return 1.0


def build_scheduler(optimizer, args, steps_per_epoch):
    """A per-iteration LambdaLR; its state is just the step count, so --resume with a longer
    --epochs continues on the new horizon."""
    factor = partial(lr_factor, steps_per_epoch=steps_per_epoch, args=args)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(device):
    """bf16 autocast on CUDA (no loss scaling needed); plain float32 on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def count_confusion(confusion, labels, predictions, num_classes):
    """Add the (true, predicted) pairs of a batch to the flat `confusion` counts. index_add_
    keeps it on the device; torch.bincount would sync with the host on CUDA to size its result."""
    confusion.index_add_(0, labels * num_classes + predictions, torch.ones_like(labels))


def train_one_epoch(model, loader, optimizer, scheduler, *, epoch, num_classes, device, dist,
                    log=print):
    """One pass over `loader`. Returns mean loss, accuracy, the (true x predicted) counts, the
    per-step losses and the time taken; raises Diverged on a NaN/inf loss."""
    model.train()
    steps = len(loader)
    step_losses = torch.zeros(steps, device=device)
    confusion = torch.zeros(num_classes ** 2, dtype=torch.long, device=device)
    step_lrs = []
    started = last_report = time.time()
    for step, (images, labels) in enumerate(loader):
        step_lrs.append(optimizer.param_groups[0]["lr"])
        with autocast(device):
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step_losses[step] = loss.detach()
        count_confusion(confusion, labels, logits.detach().argmax(1), num_classes)

        if (step + 1) % DIVERGENCE_CHECK_STEPS == 0 or step + 1 == steps:
            check_finite(step_losses[: step + 1], step_lrs, epoch=epoch, steps=steps, dist=dist)
            if dist.is_main and time.time() - last_report > PROGRESS_SECONDS and step + 1 < steps:
                last_report = time.time()
                recent = step_losses[max(0, step + 1 - DIVERGENCE_CHECK_STEPS): step + 1]
                log(f"  epoch {epoch} step {step + 1}/{steps}  loss {recent.mean().item():.4f}  "
                    f"{last_report - started:.0f}s")

    totals = torch.stack([step_losses.sum(), torch.tensor(float(steps), device=device)])
    runtime.all_reduce_sum(totals, dist)
    runtime.all_reduce_sum(confusion, dist)
    matrix = confusion.view(num_classes, num_classes).cpu()
    return {"loss": (totals[0] / totals[1]).item(), "accuracy": accuracy(matrix),
            "confusion": matrix, "step_losses": step_losses.cpu(),
            "seconds": time.time() - started}


def check_finite(losses, step_lrs, *, epoch, steps, dist):
    """Raise Diverged naming the first step whose loss was NaN/inf, on every rank at once."""
    bad = (~torch.isfinite(losses)).nonzero()
    first_bad = torch.tensor([bad[0, 0].item() if len(bad) else steps], device=losses.device)
    if dist.enabled:
        torch.distributed.all_reduce(first_bad, op=torch.distributed.ReduceOp.MIN)
    step = int(first_bad.item())
    if step < steps:
        raise Diverged(f"the training loss became NaN or infinite at epoch {epoch}, step "
                       f"{step + 1} of {steps} (learning rate {step_lrs[step]:.3g}).")


@torch.no_grad()
def evaluate(model, loader, *, num_classes, device, dist):
    """Mean loss, accuracy and (true x predicted) counts over `loader`, summed across ranks."""
    model.eval()
    totals = torch.zeros(2, device=device)   # loss sum, image count
    confusion = torch.zeros(num_classes ** 2, dtype=torch.long, device=device)
    for images, labels in loader:
        with autocast(device):
            logits = model(images)
        totals[0] += F.cross_entropy(logits.float(), labels, reduction="sum")
        totals[1] += len(labels)
        count_confusion(confusion, labels, logits.argmax(1), num_classes)
    runtime.all_reduce_sum(totals, dist)
    runtime.all_reduce_sum(confusion, dist)
    matrix = confusion.view(num_classes, num_classes).cpu()
    return {"loss": (totals[0] / totals[1].clamp(min=1)).item(), "accuracy": accuracy(matrix),
            "confusion": matrix}


@torch.no_grad()
def predict(model, loader, *, device):
    """Class probabilities and penultimate features (the input of the last Linear layer) for
    every image of `loader`, in order, on the CPU."""
    model.eval()
    last_linear = [module for module in model.modules() if isinstance(module, nn.Linear)][-1]
    captured = []
    hook = last_linear.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0]))
    probabilities, features = [], []
    try:
        for images, _ in loader:
            captured.clear()
            with autocast(device):
                logits = model(images)
            probabilities.append(logits.float().softmax(1).cpu())
            features.append(captured[0].float().flatten(1).cpu())
    finally:
        hook.remove()
    return torch.cat(probabilities), torch.cat(features)


def accuracy(confusion):
    total = confusion.sum().item()
    return confusion.diag().sum().item() / total if total else 0.0
