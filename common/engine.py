"""The training and evaluation loops of the classifiers, and what every training loop shares:
optimizers, learning-rate schedules, mixed precision, the optimizer step and the watch for a
diverging loss."""
import math
import time
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import runtime
from common.errors import Diverged

DIVERGENCE_CHECK_STEPS = 50   # look at the losses this often (one device sync each time)
PROGRESS_SECONDS = 30         # within an epoch, print progress at most this often
# A classifier has diverged when its mean training loss over a check window exceeds this many
# times the loss of a uniform guess (ln C); a loss that is NaN or infinite diverged too.
CHANCE_LOSS_MULTIPLE = 100
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


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
        start = args.warmup_lr / args.lr
        if args.warmup_shape == "linear":
            return start + (1 - start) * step / args.warmup_iters
        return start
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


def autocast(device, precision):
    """Autocast to bf16 or fp16 (see runtime.resolve_precision), or plain float32."""
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def grad_scaler(device, precision):
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (disabled)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def optimizer_step(loss, optimizer, scheduler, scaler):
    """Backward, step and schedule. With the fused optimizers the scaler's check for infinite
    gradients stays on the device: no host sync."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


class LossWatch:
    """The per-step losses and learning rates of one epoch, kept on the device.

    Every DIVERGENCE_CHECK_STEPS steps (one host sync) it raises Diverged, on every rank at
    once, if a loss was NaN or infinite or the window's mean exceeded `limit`, a (value, why)
    pair; on the main rank it prints progress at most every PROGRESS_SECONDS.
    """

    def __init__(self, steps, *, epoch, device, dist, limit=None, log=print):
        self.steps, self.epoch, self.dist, self.limit, self.log = steps, epoch, dist, limit, log
        self.losses = torch.zeros(steps, device=device)
        self.lrs = []
        self.checked = 0
        self.started = self.last_report = time.time()

    def record(self, step, loss, lr):
        self.losses[step] = loss.detach()
        self.lrs.append(lr)
        done = step + 1
        if done % DIVERGENCE_CHECK_STEPS and done != self.steps:
            return
        self.check(done)
        if self.dist.is_main and time.time() - self.last_report > PROGRESS_SECONDS \
                and done < self.steps:
            self.last_report = time.time()
            recent = self.losses[max(0, done - DIVERGENCE_CHECK_STEPS): done]
            self.log(f"  epoch {self.epoch} step {done}/{self.steps}  loss "
                     f"{recent.mean().item():.4f}  {self.last_report - self.started:.0f}s")

    def check(self, done):
        window = self.losses[self.checked: done]
        bad = ~torch.isfinite(window)
        if self.limit is not None:   # name the first step of the explosion, not its NaN
            bad = (bad.any() | (window.mean() > self.limit[0])) & (bad | (window > self.limit[0]))
        first = torch.where(bad.any(), bad.int().argmax() + self.checked, self.steps).view(1)
        if self.dist.enabled:
            torch.distributed.all_reduce(first, op=torch.distributed.ReduceOp.MIN)
        step = int(first.item())
        self.checked = done
        if step == self.steps:
            return
        # the worst loss of that step over the ranks: the rank that went bad may not be this one
        loss = self.losses[step].nan_to_num(nan=math.inf).view(1)
        if self.dist.enabled:
            torch.distributed.all_reduce(loss, op=torch.distributed.ReduceOp.MAX)
        where = {"epoch": self.epoch, "step": step + 1, "steps": self.steps,
                 "lr": self.lrs[step], "loss": loss.item()}
        text = f"at epoch {self.epoch}, step {step + 1} of {self.steps} " \
               f"(learning rate {self.lrs[step]:.3g})"
        if math.isfinite(where["loss"]) and self.limit is not None:
            raise Diverged(f"the training loss exploded {text}: {where['loss']:.3g}, above "
                           f"{self.limit[1]}.", where)
        raise Diverged(f"the training loss became NaN or infinite {text}.", where)

    def mean(self):
        """The epoch's mean loss over every rank's steps."""
        totals = torch.stack([self.losses.sum(), torch.tensor(float(self.steps),
                                                              device=self.losses.device)])
        runtime.all_reduce_sum(totals, self.dist)
        return (totals[0] / totals[1]).item()


def divergence_help(limit):
    """The paragraph of a train script's --help on its exit codes, for a loss `limit` (text)."""
    return (f"exit codes: 0 done; 2 bad input (a one-paragraph message); 3 diverged: the "
            f"training loss became NaN or infinite or its mean over a {DIVERGENCE_CHECK_STEPS}-"
            f"step window rose above {limit}, or the weights became NaN or infinite. The message "
            "names the epoch, step and learning rate; the last good checkpoint stays.")


def chance_limit(num_classes):
    """LossWatch's limit for a classifier: CHANCE_LOSS_MULTIPLE times ln C."""
    chance = math.log(num_classes)
    return (CHANCE_LOSS_MULTIPLE * chance,
            f"{CHANCE_LOSS_MULTIPLE} x ln({num_classes}) = {CHANCE_LOSS_MULTIPLE * chance:.1f}, "
            f"{CHANCE_LOSS_MULTIPLE} times the loss of a uniform guess, as the mean of its "
            f"{DIVERGENCE_CHECK_STEPS}-step window")


def count_confusion(confusion, labels, predictions, num_classes):
    """Add the (true, predicted) pairs of a batch to the flat `confusion` counts. index_add_
    keeps it on the device; torch.bincount would sync with the host on CUDA to size its result."""
    confusion.index_add_(0, labels * num_classes + predictions, torch.ones_like(labels))


def mixup_loss(model, images, labels, weight):
    """Mixup (Zhang et al., 2018) of a batch with a shuffled copy of itself: the loss
    weight * CE(y) + (1 - weight) * CE(y of the partner), and the logits and the labels that
    train accuracy counts (those of the larger weight). `weight` is a Python float: no host
    sync; the partner permutation comes from torch's generator, seeded per epoch."""
    partner = torch.randperm(len(labels), device=labels.device)
    logits = model(weight * images + (1 - weight) * images[partner])
    loss = weight * F.cross_entropy(logits, labels) \
        + (1 - weight) * F.cross_entropy(logits, labels[partner])
    return loss, logits, labels if weight >= 0.5 else labels[partner]


def train_one_epoch(model, loader, optimizer, scheduler, scaler, *, epoch, num_classes, device,
                    dist, precision="fp32", mixup_alpha=0.0, seed=0, log=print):
    """One pass over `loader`. Returns mean loss, accuracy, the (true x predicted) counts, the
    per-step losses and learning rates and the time taken; raises Diverged (see LossWatch)."""
    model.train()
    watch = LossWatch(len(loader), epoch=epoch, device=device, dist=dist,
                      limit=chance_limit(num_classes), log=log)
    confusion = torch.zeros(num_classes ** 2, dtype=torch.long, device=device)
    mixup_weights = np.random.default_rng((seed, epoch, dist.rank))
    for step, (images, labels) in enumerate(loader):
        lr = optimizer.param_groups[0]["lr"]
        with autocast(device, precision):
            if mixup_alpha:
                weight = float(mixup_weights.beta(mixup_alpha, mixup_alpha))
                loss, logits, counted = mixup_loss(model, images, labels, weight)
            else:
                logits = model(images)
                loss = F.cross_entropy(logits, labels)
                counted = labels
        optimizer_step(loss, optimizer, scheduler, scaler)
        watch.record(step, loss, lr)
        count_confusion(confusion, counted, logits.detach().argmax(1), num_classes)

    mean_loss = watch.mean()
    runtime.all_reduce_sum(confusion, dist)
    matrix = confusion.view(num_classes, num_classes).cpu()
    return {"loss": mean_loss, "accuracy": accuracy(matrix), "confusion": matrix,
            "step_losses": watch.losses.cpu(), "step_lrs": watch.lrs,
            "seconds": time.time() - watch.started}


@torch.no_grad()
def evaluate(model, loader, *, num_classes, device, dist, precision="fp32"):
    """Mean loss, accuracy and (true x predicted) counts over `loader`, summed across ranks."""
    model.eval()
    totals = torch.zeros(2, device=device)   # loss sum, image count
    confusion = torch.zeros(num_classes ** 2, dtype=torch.long, device=device)
    for images, labels in loader:
        with autocast(device, precision):
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
def predict(model, loader, *, device, precision="fp32"):
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
            with autocast(device, precision):
                logits = model(images)
            probabilities.append(logits.float().softmax(1).cpu())
            features.append(captured[0].float().flatten(1).cpu())
    finally:
        hook.remove()
    return torch.cat(probabilities), torch.cat(features)


def accuracy(confusion):
    total = confusion.sum().item()
    return confusion.diag().sum().item() / total if total else 0.0
