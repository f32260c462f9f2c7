"""`make bench`: epochs of our training loop (data held on the device, batched augmentation,
bf16 autocast and channels_last on CUDA) against the common peer set-up (a torch DataLoader
of per-image torchvision transforms feeding a plain float32 loop), same model, data and
recipe, timed in one run and reported as a ratio."""
import os
import time
from functools import partial

import torch
import torch.nn.functional as F
from PIL import Image

from common import cli, runtime
from common.engine import build_optimizer, build_scheduler, grad_scaler, train_one_epoch


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
    parser.add_argument("--compile", action="store_true", help="also time our loop compiled")


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


def time_loops(*, build_model, recipe, our_loader, plain_loader, device, epochs, compile_too,
               num_classes):
    """Seconds per epoch of each loop, each on a fresh model after one warm-up epoch."""
    cuda = device.type == "cuda"
    loops = [("plain DataLoader loop", False, False), ("our loop", True, False)]
    if compile_too:
        loops.append(("our loop + torch.compile", True, True))
    results = []
    for name, ours, compiled in loops:
        torch.manual_seed(0)
        model = build_model().to(device)
        if ours and cuda:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(recipe, model, device)   # the same for both loops
        if ours:
            scheduler = build_scheduler(optimizer, recipe, len(our_loader))
            precision = runtime.resolve_precision("auto", device)
            epoch = partial(train_one_epoch, torch.compile(model) if compiled else model,
                            our_loader, optimizer, scheduler, grad_scaler(device, precision),
                            epoch=1, num_classes=num_classes, device=device,
                            dist=runtime.Distributed(), precision=precision,
                            log=lambda *_: None)
        else:
            epoch = partial(plain_epoch, model, plain_loader, optimizer, device)
        epoch()   # warm-up: worker start-up, cuDNN autotuning, compilation
        synchronize(device)
        started = time.perf_counter()
        for _ in range(epochs):
            epoch()
        synchronize(device)
        results.append((name, (time.perf_counter() - started) / epochs))
    return results


def print_results(title, results, images):
    """A table of seconds per epoch, images per second and speed-up over the plain loop."""
    baseline = results[0][1]
    print(title)
    print(f"  {'loop':<28} {'s/epoch':>9} {'images/s':>10} {'speed-up':>9}")
    for name, seconds in results:
        print(f"  {name:<28} {seconds:>9.2f} {images / seconds:>10,.0f} "
              f"{baseline / seconds:>8.2f}x")

