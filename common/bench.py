"""`make bench`: epochs of our training loop (data held on the device, batched augmentation,
bf16 autocast and channels_last on CUDA) against the common peer set-up (a torch DataLoader
of per-image torchvision transforms feeding a plain float32 loop), same model, data and
recipe, timed in one run and reported as a ratio."""
import time

import torch
import torch.nn.functional as F

from common import runtime
from common.engine import build_optimizer, build_scheduler, train_one_epoch


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
        step_model = torch.compile(model) if compiled else model
        if ours:
            scheduler = build_scheduler(optimizer, recipe, len(our_loader))

            def epoch():
                train_one_epoch(step_model, our_loader, optimizer, scheduler, epoch=1,
                                num_classes=num_classes, device=device,
                                dist=runtime.Distributed(), log=lambda *_: None)
        else:
            def epoch():
                plain_epoch(model, plain_loader, optimizer, device)
        epoch()   # warm-up: worker start-up, cuDNN autotuning, compilation
        synchronize(device)
        started = time.perf_counter()
        for _ in range(epochs):
            epoch()
        synchronize(device)
        results.append((name, (time.perf_counter() - started) / epochs))
    return results


def print_results(title, results, images):
    baseline = results[0][1]
    print(title)
    print(f"  {'loop':<28} {'s/epoch':>9} {'images/s':>10} {'speed-up':>9}")
    for name, seconds in results:
        print(f"  {name:<28} {seconds:>9.2f} {images / seconds:>10,.0f} {baseline / seconds:>8.2f}x")

