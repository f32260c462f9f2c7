"""The training and evaluation loops of the classifiers, and what every training loop shares:
the optimizer and the learning rate of every step, the watch for a diverging loss, and the
clock that says how long a run has left."""
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import runtime
from common.errors import Diverged
from common.step import Replayed, TrainingStep, autocast

DIVERGENCE_CHECK_STEPS = 50   # judge the losses this often (read back asynchronously)
PROGRESS_SECONDS = 30         # within an epoch, print progress at most this often
# A classifier has diverged when its mean training loss over a check window exceeds this many
# times the loss of a uniform guess (ln C); a loss that is NaN or infinite diverged too.
CHANCE_LOSS_MULTIPLE = 100


def parameter_groups(model, weight_decay):
    """The model's parameters as optimizer groups: one, or for a model that decays its weights
    only (`decays_weights_only`, darknet's rule for YOLOv1) two: the weights (kernels and
    matrices) with `weight_decay`, the biases and normalisation parameters (one dimension)
    without."""
    if not getattr(model, "decays_weights_only", False):
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    parameters = list(model.parameters())
    return [{"params": [p for p in parameters if p.dim() > 1], "weight_decay": weight_decay},
            {"params": [p for p in parameters if p.dim() <= 1], "weight_decay": 0.0}]


def build_optimizer(args, model, device, graphs=False):
    """The recipe's optimizer: fused on CUDA (one kernel for every parameter, and a learning
    rate it can read from a tensor); a captured step (`graphs`) needs Adam capturable."""
    groups = parameter_groups(model, args.weight_decay)
    fused = {"fused": True} if device.type == "cuda" else {}
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, **fused)
    if args.optimizer == "asgd":
        return torch.optim.ASGD(groups, lr=args.lr)
    return torch.optim.Adam(groups, lr=args.lr, capturable=graphs, **fused)


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


class Schedule:
    """The learning rate of every optimizer step of the run: --lr times lr_factor. Its state is
    the number of steps taken, so --resume continues it, and a longer --epochs stretches what
    follows the epochs (a cosine schedule, derived milestones) from there."""

    def __init__(self, args, steps_per_epoch):
        self.args = args
        self.steps_per_epoch = steps_per_epoch
        self.steps_taken = 0

    def rate(self):
        """The learning rate of the next step."""
        return self.args.lr * lr_factor(self.steps_taken, steps_per_epoch=self.steps_per_epoch,
                                        args=self.args)

    def advance(self):
        self.steps_taken += 1

    def state_dict(self):
        return {"steps_taken": self.steps_taken}

    def load_state_dict(self, state):
        """A saved state; checkpoints written before this class held torch's LambdaLR, whose
        step count is last_epoch. A state that holds no count is a ValueError."""
        steps = state.get("steps_taken", state.get("last_epoch")) if isinstance(state, dict) \
            else None
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"{state!r:.80} holds no step count")
        self.steps_taken = steps


def duration(seconds):
    """'42s', '12m05s', '3h07m' or '2d03h'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def plural(count, noun):
    """'1 epoch', '2 epochs'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


class RunClock:
    """How long a run has been going and how long it has left. The run has `epochs` epochs and
    this process started at `first_epoch` (later than 1 after --resume); what is left is
    estimated from this process's own pace, evaluations and all."""

    def __init__(self, epochs, first_epoch):
        self.epochs = epochs
        self.first_epoch = first_epoch
        self.started = time.time()

    def left(self, epoch, fraction=1.0):
        """Seconds left once `fraction` of epoch `epoch` is done; None before any progress."""
        done = epoch - self.first_epoch + fraction   # epochs this process has run
        if done <= 0:
            return None
        return (time.time() - self.started) / done * (self.epochs - epoch + 1 - fraction)

    def status(self, epoch, fraction=1.0):
        """'3m05s elapsed, 2h13m left (until Tue 14:05)' for the console."""
        elapsed = f"{duration(time.time() - self.started)} elapsed"
        left = self.left(epoch, fraction)
        if left is None or epoch >= self.epochs and fraction >= 1:
            return elapsed
        until = time.localtime(time.time() + left)
        when = time.strftime("%H:%M" if left < 12 * 3600 else "%a %H:%M", until)
        return f"{elapsed}, {duration(left)} left (until {when})"


class LossWatch:
    """The per-step losses and learning rates of one epoch, kept on the device.

    Every DIVERGENCE_CHECK_STEPS steps it queues a check of the window (was a loss NaN or
    infinite, or did the window's mean exceed `limit`, a (value, why) pair), copied to the host
    asynchronously, and judges the previous window's, raising Diverged on every rank at once:
    the GPU never waits for it inside an epoch. The last window is judged when the epoch ends.
    On the main rank it prints progress, with the time the epoch and the run (`clock`) have
    left, at most every PROGRESS_SECONDS.
    """

    def __init__(self, steps, *, epoch, device, dist, limit=None, clock=None, log=print):
        self.steps, self.epoch, self.dist, self.limit, self.log = steps, epoch, dist, limit, log
        self.device = device
        self.clock = clock
        self.losses = torch.zeros(steps, device=device)
        self.lrs = []
        self.checked = 0
        self.pending = None   # the queued check: (its verdict, on the host; its CUDA event)
        self.judged_loss = None   # the mean loss of the last window judged
        self.started = self.last_report = time.time()

    def record(self, step, loss, lr):
        self.losses[step] = loss
        self.lrs.append(lr)
        done = step + 1
        if done % DIVERGENCE_CHECK_STEPS and done != self.steps:
            return
        self.queue_check(done)
        if done == self.steps:
            self.judge()
        if self.dist.is_main and time.time() - self.last_report > PROGRESS_SECONDS \
                and done < self.steps:
            self.report_progress(done)

    def queue_check(self, done):
        window = self.losses[self.checked: done]
        bad = ~torch.isfinite(window)
        if self.limit is not None:   # name the first step of the explosion, not its NaN
            bad = (bad.any() | (window.mean() > self.limit[0])) & (bad | (window > self.limit[0]))
        first = torch.where(bad.any(), bad.int().argmax() + self.checked, self.steps).view(1)
        if self.dist.enabled:
            torch.distributed.all_reduce(first, op=torch.distributed.ReduceOp.MIN)
        # the first bad step (or `steps`: none) and the window's mean loss, for the progress line
        verdict = torch.cat([first.double(), window.mean().double().view(1)])
        self.checked = done
        if self.pending is not None:
            self.judge()
        if self.device.type == "cuda":
            host = torch.empty(2, dtype=verdict.dtype, pin_memory=True)
            host.copy_(verdict, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self.pending = (host, event)
        else:
            self.pending = (verdict, None)

    def judge(self):
        """Read the queued check (waiting for it if need be) and raise Diverged if it failed;
        keep its window's mean loss for the progress line."""
        verdict, event = self.pending
        self.pending = None
        if event is not None:
            event.synchronize()
        step, self.judged_loss = int(verdict[0]), float(verdict[1])
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

    def report_progress(self, done):
        """The progress line, with the mean loss of the last window judged: the window just
        queued is read at the next check, or now when none was read yet this epoch (the GPU
        is waited for once)."""
        if self.judged_loss is None:
            self.judge()
        self.last_report = time.time()
        elapsed = self.last_report - self.started
        epoch_left = duration(elapsed / done * (self.steps - done))
        run = f" | run: {self.clock.status(self.epoch, done / self.steps)}" if self.clock else ""
        self.log(f"  epoch {self.epoch} step {done}/{self.steps}  loss {self.judged_loss:.4f}  "
                 f"{duration(elapsed)}, epoch done in {epoch_left}{run}")

    def mean(self):
        """The epoch's mean loss over every rank's steps."""
        totals = torch.stack([self.losses.sum(), torch.tensor(float(self.steps),
                                                              device=self.losses.device)])
        runtime.all_reduce_sum(totals, self.dist)
        return (totals[0] / totals[1]).item()


def divergence_help(limit):
    """The paragraph of a train script's --help on its exit codes, for a loss `limit` (text)."""
    return (f"exit codes: 0 done; 2 bad input (a one-paragraph message), --out in use by "
            f"another run, or a disk that refuses a write; 3 diverged: the training loss became "
            f"NaN or infinite or its mean over a {DIVERGENCE_CHECK_STEPS}-step window rose above "
            f"{limit}, or the weights became NaN or infinite. The message names the epoch, step "
            "and learning rate; the last good checkpoint stays. 130 interrupted (Ctrl-C), 143 "
            "stopped (SIGTERM, as cluster schedulers send): the checkpoint of the last finished "
            "epoch stays, --resume goes on.")


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


def mixup_loss(model, images, labels, weight, partner):
    """Mixup (Zhang et al., 2018) of a batch with a permutation of itself (`partner`): the loss
    weight * CE(y) + (1 - weight) * CE(y of the partner), the logits, and the labels that train
    accuracy counts (those of the larger weight). `weight` is a 0-dimensional tensor, so that a
    captured step reads each step's draw."""
    logits = model(weight * images + (1 - weight) * images[partner])
    loss = weight * F.cross_entropy(logits, labels) \
        + (1 - weight) * F.cross_entropy(logits, labels[partner])
    return loss, logits, torch.where(weight >= 0.5, labels, labels[partner])


def classifier_step(model, to_input, optimizer, *, device, precision, scaler, graphs):
    """The TrainingStep of a classifier: step(lr, images, labels[, mixup weight, partner]) with
    uint8 images, returning the loss, the predictions and the labels train accuracy counts."""
    def loss_of(images, labels, *mixup):
        images = to_input(images)
        if mixup:
            loss, logits, counted = mixup_loss(model, images, labels, *mixup)
        else:
            logits = model(images)
            loss, counted = F.cross_entropy(logits, labels), labels
        return loss, {"predicted": logits.argmax(1), "counted": counted}
    return TrainingStep(loss_of, optimizer, device=device, precision=precision, scaler=scaler,
                        graphs=graphs)


def mixup_draws(loader, alpha, *, seed, epoch, rank, device):
    """Each step's mixup weight, lambda ~ Beta(alpha, alpha) from a generator seeded by (seed,
    epoch, rank), and the random permutations that pair the images (torch's generator, seeded
    per epoch), drawn for the whole epoch at once: (weights (steps,), partners (steps, batch))."""
    weights = np.random.default_rng((seed, epoch, rank)).beta(alpha, alpha, size=len(loader))
    partners = torch.rand(len(loader), loader.batch_size, device=device).argsort(1)
    return torch.tensor(weights, dtype=torch.float32, device=device), partners


def train_one_epoch(model, step, loader, schedule, *, epoch, num_classes, device, dist,
                    mixup_alpha=0.0, seed=0, clock=None, log=print):
    """One pass over `loader` with the classifier_step `step` of `model` at the rates of
    `schedule`. Returns mean loss, accuracy, the (true x predicted) counts, the per-step losses
    and learning rates and the time taken; raises Diverged (see LossWatch)."""
    model.train()
    watch = LossWatch(len(loader), epoch=epoch, device=device, dist=dist,
                      limit=chance_limit(num_classes), clock=clock, log=log)
    confusion = torch.zeros(num_classes ** 2, dtype=torch.long, device=device)
    if mixup_alpha:
        weights, partners = mixup_draws(loader, mixup_alpha, seed=seed, epoch=epoch,
                                        rank=dist.rank, device=device)
    for index, (images, labels) in enumerate(loader):
        mixup = ()
        if mixup_alpha:   # a smaller last batch pairs by the order of its partners' prefix
            partner = partners[index] if len(labels) == loader.batch_size \
                else partners[index, :len(labels)].argsort()
            mixup = (weights[index], partner)
        lr = schedule.rate()
        outputs = step(lr, images, labels, *mixup)
        schedule.advance()
        watch.record(index, outputs["loss"], lr)
        count_confusion(confusion, outputs["counted"], outputs["predicted"], num_classes)

    mean_loss = watch.mean()
    runtime.all_reduce_sum(confusion, dist)
    matrix = confusion.view(num_classes, num_classes).cpu()
    return {"loss": mean_loss, "accuracy": accuracy(matrix), "confusion": matrix,
            "step_losses": watch.losses.cpu(), "step_lrs": watch.lrs,
            "seconds": time.time() - watch.started}


def evaluation_pass(model, to_input, *, device, precision, graphs):
    """The forward pass of an evaluation, forward(images, labels) -> the batch's summed
    cross-entropy and its predictions, replayed as CUDA graphs with `graphs` (Replayed)."""
    @torch.no_grad()
    def forward(images, labels):
        with autocast(device, precision, cache=not graphs):
            logits = model(to_input(images))
        return {"loss_sum": F.cross_entropy(logits.float(), labels, reduction="sum"),
                "predicted": logits.argmax(1)}
    return Replayed(forward, graphs)


def evaluate(model, forward, loader, *, num_classes, device, dist):
    """Mean loss, accuracy and (true x predicted) counts of `model` over `loader` through its
    evaluation_pass `forward`, summed across ranks."""
    model.eval()
    totals = torch.zeros(2, device=device)   # loss sum, image count
    confusion = torch.zeros(num_classes ** 2, dtype=torch.long, device=device)
    for images, labels in loader:
        outputs = forward(images, labels)
        totals[0] += outputs["loss_sum"]
        totals[1] += len(labels)
        count_confusion(confusion, labels, outputs["predicted"], num_classes)
    runtime.all_reduce_sum(totals, dist)
    runtime.all_reduce_sum(confusion, dist)
    matrix = confusion.view(num_classes, num_classes).cpu()
    return {"loss": (totals[0] / totals[1].clamp(min=1)).item(), "accuracy": accuracy(matrix),
            "confusion": matrix}


@torch.no_grad()
def predict(model, loader, to_input, *, device, precision="fp32"):
    """The logits and penultimate features (the input of the last Linear layer) of every image
    of `loader`, in order, in float32 on the CPU."""
    model.eval()
    last_linear = [module for module in model.modules() if isinstance(module, nn.Linear)][-1]
    captured = []
    hook = last_linear.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0]))
    logits, features = [], []
    try:
        for images, _ in loader:
            captured.clear()
            with autocast(device, precision):
                logits.append(model(to_input(images)).float().cpu())
            features.append(captured[0].float().flatten(1).cpu())
    finally:
        hook.remove()
    return torch.cat(logits), torch.cat(features)


def accuracy(confusion):
    total = confusion.sum().item()
    return confusion.diag().sum().item() / total if total else 0.0
