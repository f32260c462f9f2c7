"""`make bench` for the classifiers: epochs of our training loop (data held on the device, the
epoch's augmentation batched, the step replayed as a CUDA graph in the network's precision)
against the common peer set-up (a torch DataLoader of per-image torchvision transforms feeding a
plain float32 loop), same model, data and recipe, timed in one run and reported as ratios; and,
as the limit a loop could reach, the training step alone on one fixed batch, as we replay it
and (--compiled) as torch.compile(mode="reduce-overhead") replays it."""
import os
import time
from functools import partial

import torch
import torch.nn.functional as F
from PIL import Image

from common import cli, runtime
from common.data import ToNetworkInput
from common.engine import Schedule, build_optimizer, classifier_step, train_one_epoch
from common.errors import UserError
from common.step import grad_scaler, use_graphs

WARMUP_STEPS = 5   # steps before a fixed-batch timing: cuDNN's choices, capture, compilation


class PerImageDataset(torch.utils.data.Dataset):
    """What torchvision's MNIST and CIFAR10 datasets do per item: one uint8 image to PIL, then
    the transforms (the peer set-up the plain loop stands for)."""

    def __init__(self, image_set, transform):
        self.images = image_set.images.permute(0, 2, 3, 1).numpy()   # N, H, W, C
        self.labels = image_set.labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index]
        image = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
        return self.transform(image), self.labels[index]


def add_bench_arguments(parser):
    parser.add_argument("--epochs", type=cli.positive_int, default=1,
                        help="timed epochs per loop, after one warm-up epoch (default: 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data-dir", default=cli.default_data_dir())
    parser.add_argument("--limit-train", type=cli.positive_int, metavar="N",
                        help="time on a fixed random N training images (slow devices)")
    parser.add_argument("--workers", type=cli.nonnegative_int, default=min(8, os.cpu_count()),
                        help="DataLoader worker processes of the plain loop (default: %(default)s)")
    parser.add_argument("--compiled", action="store_true",
                        help="also time the step alone under torch.compile(mode='reduce-"
                             "overhead'), optimizer step included (CUDA; compiling takes a "
                             "minute or more per network)")


def bench_device(args):
    """The device of a bench run (--device), refusing --compiled where it cannot take effect:
    torch.compile's "reduce-overhead" mode replays CUDA graphs."""
    device, _ = runtime.setup(args.device)
    if args.compiled and device.type != "cuda":
        raise UserError(f"--compiled times torch.compile's CUDA graphs: it needs a CUDA device, "
                        f"and this run has {runtime.describe_device(device)}.")
    return device


def plain_loader(image_set, transform, *, batch_size, workers, device):
    return torch.utils.data.DataLoader(
        PerImageDataset(image_set, transform), batch_size=batch_size, shuffle=True,
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epoch(model, loader, optimizer, device):
    """The loop of pytorch/examples: move each batch, forward, backward, step."""
    model.train()
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def timed(run, times, device):
    """Seconds per call of run() over `times` calls, after one untimed call."""
    run()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(times):
        run()
    synchronize(device)
    return (time.perf_counter() - started) / times


def placed_for_training(model, recipe, device, graphs=None):
    """Place `model` as the train scripts do (channels_last on CUDA) and give it the recipe's
    optimizer: (precision, graphs, optimizer), the precision --precision auto chooses and
    graphs as --cuda-graphs `graphs` (None: where they can run) does."""
    cuda = device.type == "cuda"
    model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    precision = runtime.resolve_precision("auto", device, model)
    graphs = use_graphs(graphs, device=device, distributed=False, precision=precision,
                        optimizer=recipe.optimizer, compiled=False)
    return precision, graphs, build_optimizer(recipe, model, device, graphs)


def our_step(build_model, recipe, *, device, mean, std, resize, graphs):
    """(model, our classifier_step of it, its precision, graphs or not), as train.py builds
    them."""
    torch.manual_seed(0)
    model = build_model()
    precision, graphs, optimizer = placed_for_training(model, recipe, device, graphs)
    to_input = ToNetworkInput(mean, std, device=device, resize=resize,
                              channels_last=device.type == "cuda")
    step = classifier_step(model, to_input, optimizer, device=device, precision=precision,
                           scaler=grad_scaler(device, precision), graphs=graphs)
    return model, step, precision, graphs


def compiled_step(build_model, recipe, *, device, mean, std, resize):
    """The step as PyTorch's recipes compile it: the model under torch.compile(mode=
    "reduce-overhead") (CUDA graphs of inductor's kernels) and the optimizer step compiled,
    the learning rate in a tensor, float32 (TF32)."""
    torch.manual_seed(0)
    model = build_model().to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(recipe, model, device)
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(recipe.lr, device=device)
    to_input = ToNetworkInput(mean, std, device=device, resize=resize, channels_last=True)
    forward = torch.compile(model, mode="reduce-overhead")
    optimizer_step = torch.compile(optimizer.step)

    def step(images, labels):
        loss = F.cross_entropy(forward(to_input(images)), labels)
        loss.backward()
        optimizer_step()
        optimizer.zero_grad(set_to_none=True)
    return model, step


def time_loops(*, build_model, recipe, our_loader, plain_loader, device, epochs, num_classes,
               mean, std, resize=None, compiled=False):
    """(name, seconds per epoch) of each loop and limit, each on a fresh model after one
    warm-up epoch (or WARMUP_STEPS steps): the plain loop; ours with CUDA graphs where they can
    run, and eagerly (on CUDA); the step alone on one batch of `our_loader` repeated as many
    times as an epoch has steps, ours and (`compiled`, CUDA only: bench_device) torch.compile's."""
    cuda = device.type == "cuda"
    results = []
    torch.manual_seed(0)
    model = build_model().to(device)
    optimizer = build_optimizer(recipe, model, device)
    results.append(("plain DataLoader loop, fp32",
                    timed(partial(plain_epoch, model, plain_loader, optimizer, device), epochs,
                          device)))

    steps = len(our_loader)
    for graphs in ((None, False) if cuda else (None,)):
        model, step, precision, graphed = our_step(build_model, recipe, device=device,
                                                   mean=mean, std=std, resize=resize,
                                                   graphs=graphs)
        schedule = Schedule(recipe, steps)
        epoch = partial(train_one_epoch, model, step, our_loader, schedule, epoch=1,
                        num_classes=num_classes, device=device, dist=runtime.Distributed(),
                        log=lambda *_: None)
        how = "CUDA graphs" if graphed else "eager"
        results.append((f"our loop, {precision}, {how}", timed(epoch, epochs, device)))

    images, labels = next(iter(our_loader))
    model, step, precision, graphed = our_step(build_model, recipe, device=device, mean=mean,
                                               std=std, resize=resize, graphs=None)
    model.train()
    for _ in range(WARMUP_STEPS):
        step(recipe.lr, images, labels)
    how = "CUDA graph" if graphed else "eager"
    results.append((f"limit: our step alone, {how}",
                    timed(lambda: step(recipe.lr, images, labels), steps, device) * steps))
    if compiled:
        model, step = compiled_step(build_model, recipe, device=device, mean=mean, std=std,
                                    resize=resize)
        model.train()
        for _ in range(WARMUP_STEPS):
            step(images, labels)
        results.append(("limit: torch.compile step, fp32",
                        timed(lambda: step(images, labels), steps, device) * steps))
    return results


def print_results(title, results, images):
    """A table of seconds per epoch, images per second and speed-up over the plain loop."""
    baseline = results[0][1]
    print(title)
    print(f"  {'loop':<36} {'s/epoch':>9} {'images/s':>10} {'speed-up':>9}")
    for name, seconds in results:
        print(f"  {name:<36} {seconds:>9.2f} {images / seconds:>10,.0f} "
              f"{baseline / seconds:>8.2f}x")
