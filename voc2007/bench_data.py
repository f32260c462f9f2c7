"""Images per second of the VOC training input, for YOLOv1 (darknet's augmentation at 448x448)
and SSD300 (Caffe's at 300x300), on the two paths of voc2007/data.py:
- one DataLoader worker: reading, PIL decoding, augmenting one image at a time and batching,
  timed in-process (what each of --workers adds), and optionally with --workers processes;
- the device pipeline (VOCDeviceLoader): the split decoded once into memory, then gathered and
  augmented a batch at a time; on --device (the CPU by default, CUDA where there is one).
So a GPU that trains at X images/s needs about X / (one worker's rate) DataLoader workers.

On VOC 2007 trainval with --data-dir; otherwise on images generated into a temporary folder,
of VOC's size (333-500 pixels per side; VOC's are mostly 500x375).
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
from common.bench import synchronize  # noqa: E402
from voc2007.data import (VOCDataset, VOCDeviceLoader, make_loader,  # noqa: E402
                          ssd_train_transform, voc_folder, yolo_train_transform)
from voc2007.synthetic import write_synthetic_voc  # noqa: E402

PIPELINES = {"YOLOv1 448x448": yolo_train_transform(448), "SSD300": ssd_train_transform(300)}


def images_per_second(dataset, *, batch_size, workers):
    """DataLoader throughput over one epoch, after a warm-up epoch that starts the workers."""
    loader = make_loader(dataset, batch_size=batch_size, train=True, workers=workers)
    for epoch in range(2):
        loader.set_epoch(epoch)
        start = time.perf_counter()
        count = sum(len(images) for images, *_ in loader)
    return count / (time.perf_counter() - start)


def device_images_per_second(dataset, *, batch_size, device):
    """(VOCDeviceLoader's images/s over one epoch after a warm-up one, its decoding seconds)."""
    start = time.perf_counter()
    loader = VOCDeviceLoader(dataset, batch_size=batch_size, device=device)
    synchronize(device)
    decoding = time.perf_counter() - start
    for epoch in range(2):
        loader.set_epoch(epoch)
        start = time.perf_counter()
        count = 0
        for images, *_ in loader:
            count += len(images)
        synchronize(device)
    return count / (time.perf_counter() - start), decoding


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="time on VOC 2007 trainval there (default: generated "
                                           "images)")
    parser.add_argument("--images", type=cli.positive_int, default=256,
                        help="images per timed epoch (%(default)s)")
    parser.add_argument("--workers", type=cli.nonnegative_int, default=0,
                        help="also time this many DataLoader worker processes (%(default)s: "
                             "only the in-process worker)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=32, help="(%(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                        help="where the device pipeline runs (%(default)s)")
    args = parser.parse_args(argv)
    device, _ = runtime.setup(args.device)

    with tempfile.TemporaryDirectory() as scratch:
        if args.data_dir:
            data_dir, data = args.data_dir, f"VOC 2007 trainval in {voc_folder(args.data_dir)}"
        else:
            data_dir, data = scratch, "generated VOC-like images (333-500 px per side)"
            write_synthetic_voc(scratch, trainval=args.images, test=0, min_size=333,
                                max_size=500)
        print(f"VOC training input, {data}: {args.images} images per timed epoch, batch "
              f"{args.batch_size}, {os.cpu_count()} CPUs, torch threads "
              f"{torch.get_num_threads()}")
        header = f"{'pipeline':<16} {'one worker':>11}"
        if args.workers:
            header += f" {f'{args.workers} workers':>11}"
        print(header + f" {'device pipeline (' + runtime.describe_device(device) + ')':>40}"
              f" {'decoding':>9}   (images/s; decoding in s)")
        for name, transform in PIPELINES.items():
            dataset = VOCDataset(data_dir, "trainval", transform, drop_difficult=True)
            dataset = dataset.subset(args.images)
            alone = images_per_second(dataset, batch_size=args.batch_size, workers=0)
            row = f"{name:<16} {alone:>11.0f}"
            if args.workers:
                parallel = images_per_second(dataset, batch_size=args.batch_size,
                                             workers=args.workers)
                row += f" {parallel:>11.0f}"
            rate, decoding = device_images_per_second(dataset, batch_size=args.batch_size,
                                                      device=device)
            print(row + f" {rate:>40.0f} {decoding:>9.1f}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
