"""Training images per second of the full detectors on this device, YOLOv1 (448x448, its
default ResNet-50 backbone) and SSD300, against what one input-pipeline worker prepares: the
ratio is how many DataLoader workers (--workers) keep the training fed.

The training steps run the recipe's optimizer and autocast precision on batches already on the
device (random images with three boxes each), so they time the network alone; the pipeline is
timed in-process on generated VOC-like images (voc2007/bench_data.py times it with workers).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from common import cli, runtime  # noqa: E402
from common.bench import synchronize  # noqa: E402
from common.engine import autocast, build_optimizer, grad_scaler, optimizer_step  # noqa: E402
from voc2007 import train_ssd, train_yolo  # noqa: E402
from voc2007.bench_data import images_per_second  # noqa: E402
from voc2007.data import VOCDataset, pad_targets  # noqa: E402
from voc2007.synthetic import write_synthetic_voc  # noqa: E402

# name: (build_model, --model, its recipe, its training transform)
DETECTORS = {
    "YOLOv1 ResNet-50 448x448": (train_yolo.build_model, "resnet50",
                                 train_yolo.PAPER_RECIPES["resnet50"],
                                 train_yolo.AUGMENTATIONS["paper"]),
    "SSD300": (train_ssd.build_model, "ssd300", train_ssd.REPORT_RECIPES["ssd300"],
               train_ssd.AUGMENTATIONS["paper"]),
}


def random_batch(batch_size, size, device):
    """Images in [0, 1] and three boxes per image, as the training loop hands them over."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, 3, size, size, generator=generator).to(device)
    targets = []
    for _ in range(batch_size):
        corner = torch.rand(3, 2, generator=generator) * size * 0.6
        extent = torch.rand(3, 2, generator=generator) * size * 0.3 + size * 0.1
        targets.append({"boxes": torch.cat([corner, corner + extent], 1).to(device),
                        "labels": torch.randint(0, 20, (3,), generator=generator).to(device)})
    return images, targets


def training_images_per_second(build_model, model_name, recipe, *, batch_size, steps, device):
    """(images/s of `steps` optimizer steps of the recipe after two warm-up steps, the precision,
    the model's input side)."""
    args = argparse.Namespace(model=model_name, **{"momentum": None, **recipe})
    model = build_model(args).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model.train()
    precision = runtime.resolve_precision("auto", device)
    optimizer = build_optimizer(args, model, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = grad_scaler(device, precision)
    images, targets = random_batch(batch_size, model.image_size, device)
    for step in range(steps + 2):
        if step == 2:   # after cuDNN's autotuning and the allocator's first requests
            synchronize(device)
            started = time.perf_counter()
        with autocast(device, precision):
            loss = sum(model(images, *pad_targets(targets)).values())
        optimizer_step(loss, optimizer, scheduler, scaler)
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - started), precision, model.image_size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=cli.positive_int,
                        help="training batch (default: the recipe's on CUDA, 2 on the CPU)")
    parser.add_argument("--steps", type=cli.positive_int, default=3,
                        help="timed training steps (%(default)s)")
    parser.add_argument("--images", type=cli.positive_int, default=64,
                        help="images of the timed pipeline epoch (%(default)s)")
    args = parser.parse_args(argv)
    device, _ = runtime.setup(args.device)
    print(f"training the full detectors on {runtime.describe_device(device)} against one "
          "input-pipeline worker")
    print(f"  {'detector':<26} {'batch':>5} {'precision':>9} {'train img/s':>12} "
          f"{'worker img/s':>13} {'workers needed':>15}")
    with tempfile.TemporaryDirectory() as scratch:
        write_synthetic_voc(scratch, trainval=args.images, test=0, min_size=333, max_size=500)
        for name, (build_model, model_name, recipe, transform) in DETECTORS.items():
            batch_size = args.batch_size or (recipe["batch_size"] if device.type == "cuda"
                                             else 2)
            trained, precision, size = training_images_per_second(
                build_model, model_name, recipe, batch_size=batch_size, steps=args.steps,
                device=device)
            dataset = VOCDataset(scratch, "trainval", transform(size), drop_difficult=True)
            prepared = images_per_second(dataset, batch_size=min(16, len(dataset)), workers=0)
            print(f"  {name:<26} {batch_size:>5} {precision:>9} {trained:>12.1f} "
                  f"{prepared:>13.1f} {trained / prepared:>15.2f}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
