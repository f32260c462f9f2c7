"""Training images per second of the full detectors on this device, YOLOv1 (448x448, its
default ResNet-50 backbone, the paper recipe's batch 64) and SSD300 (the report recipe's batch
8 and the paper recipe's 32), measured two ways in one run:
- the network alone: the training step (common/step.py: captured as a CUDA graph where it can
  be, in the network's precision) repeated on one batch already on the device;
- end to end: epochs of the training loop (voc2007/detection.py) over a generated VOC-layout
  set of VOC's image sizes, with the input decoded and augmented on the device (--input
  device), and with --workers DataLoader workers (--input workers).
End to end at the network's rate means the input keeps the GPU fed. On the CPU the batches are
small (--batch-size), the networks the tiny configurations and the set tiny: a check that it
runs, not a figure to quote.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from common import cli, runtime  # noqa: E402
from common.bench import placed_for_training, synchronize  # noqa: E402
from common.engine import Schedule, plural  # noqa: E402
from common.step import grad_scaler  # noqa: E402
from voc2007 import train_ssd, train_yolo  # noqa: E402
from voc2007.data import VOCDataset, VOCDeviceLoader, make_loader  # noqa: E402
from voc2007.detection import detector_step, train_one_epoch  # noqa: E402
from voc2007.models import INPUT_SIZE  # noqa: E402
from voc2007.synthetic import write_synthetic_voc  # noqa: E402

WARMUP_STEPS = 5
# name: (train script, the flags of its run, the model's name in voc2007/models.py)
DETECTORS = {
    "YOLOv1 ResNet-50 448x448": (train_yolo, ["--model", "resnet50"], "yolo-resnet50"),
    "SSD300, report recipe": (train_ssd, ["--model", "ssd300"], "ssd-ssd300"),
    "SSD300, paper recipe": (train_ssd, ["--recipe", "paper", "--model", "ssd300"],
                             "ssd-ssd300"),
}


def training_setup(script, args, device):
    """(model, its detector_step, its precision, graphs or not) for the run of `args` (the
    train script's parsed flags), as the train script builds them (random weights: the time is
    the same)."""
    torch.manual_seed(0)
    model = script.build_model(args)
    precision, graphs, optimizer = placed_for_training(model, args, device)
    step = detector_step(model, optimizer, device=device, precision=precision,
                         scaler=grad_scaler(device, precision), graphs=graphs)
    return model, step, precision, graphs


def network_alone(script, args, loader, *, steps, device):
    """Images/s of `steps` training steps on the first batch of `loader`, on the device."""
    model, step, precision, graphs = training_setup(script, args, device)
    model.train()
    batch = [tensor.to(device) for tensor in next(iter(loader))[:3]]
    for _ in range(WARMUP_STEPS):
        step(args.lr, *batch)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(args.lr, *batch)
    synchronize(device)
    return steps * len(batch[0]) / (time.perf_counter() - started), precision, graphs


def end_to_end(script, args, loader, *, device):
    """Images/s of an epoch of the training loop over `loader`, after a warm-up epoch."""
    model, step, _, _ = training_setup(script, args, device)
    schedule = Schedule(args, len(loader))
    seconds = []
    for epoch in (1, 2):
        loader.set_epoch(epoch)
        synchronize(device)
        started = time.perf_counter()
        train_one_epoch(model, step, loader, schedule, epoch=epoch, device=device,
                        dist=runtime.Distributed(), clock=None, log=lambda *_: None)
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return len(loader) * loader.batch_size / seconds[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=cli.positive_int,
                        help="training batch (default: each recipe's on CUDA, 2 on the CPU)")
    parser.add_argument("--steps", type=cli.positive_int,
                        help="timed steps of the network alone (default: 30 on CUDA, 2 on the "
                             "CPU)")
    parser.add_argument("--images", type=cli.positive_int,
                        help="images of the generated trainval set, an epoch (default: 640 on "
                             "CUDA, 8 on the CPU)")
    parser.add_argument("--workers", type=cli.nonnegative_int, default=min(8, os.cpu_count()),
                        help="DataLoader workers of --input workers (default: %(default)s)")
    parser.add_argument("--tiny", action="store_true",
                        help="the tiny configurations (112 and 64 px) instead of the full ones: "
                             "a check that the bench runs; the default on the CPU")
    parser.add_argument("--detectors", nargs="+", choices=sorted(DETECTORS),
                        default=list(DETECTORS), metavar="NAME",
                        help=f"(default: all: {', '.join(DETECTORS)})")
    args = parser.parse_args(argv)
    device, _ = runtime.setup(args.device)
    cuda = device.type == "cuda"
    steps = args.steps or (30 if cuda else 2)
    tiny = args.tiny or not cuda
    print(f"training images/s on {runtime.describe_device(device)}: the network alone, and end "
          f"to end with the input on the device and with "
          f"{plural(args.workers, 'DataLoader worker')}")
    print(f"  {'detector':<26} {'batch':>5} {'precision':>15} {'network':>9} {'device input':>13} "
          f"{'ratio':>6} {'workers':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        write_synthetic_voc(scratch, trainval=args.images or (640 if cuda else 8), test=0,
                            min_size=333, max_size=500)
        for name in args.detectors:
            script, flags, registered = DETECTORS[name]
            if tiny:
                flags, registered = [*flags, "--model", "tiny"], registered.split("-")[0] + "-tiny"
                name = f"{name.split(',')[0].split()[0]} tiny" + name[len(name.split(',')[0]):]
            run = script.parse_args(flags)   # the recipe, milestones derived; weights random
            batch_size = args.batch_size or (run.batch_size if cuda else 2)
            transform = script.AUGMENTATIONS[run.augment]
            dataset = VOCDataset(scratch, "trainval", transform(INPUT_SIZE[registered]),
                                 drop_difficult=True)
            on_device = VOCDeviceLoader(dataset, batch_size=batch_size, device=device)
            with_workers = make_loader(dataset, batch_size=batch_size, train=True,
                                       workers=args.workers, pin_memory=cuda)
            alone, precision, graphs = network_alone(script, run, on_device, steps=steps,
                                                     device=device)
            fed = end_to_end(script, run, on_device, device=device)
            workers = end_to_end(script, run, with_workers, device=device)
            how = f"{precision}, {'graphs' if graphs else 'eager'}"
            print(f"  {name:<26} {batch_size:>5} {how:>15} {alone:>9.1f} {fed:>13.1f} "
                  f"{fed / alone:>6.2f} {workers:>9.1f} {workers / alone:>6.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(cli.run(main))
