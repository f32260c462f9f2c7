"""Images per second of the VOC input pipeline on this CPU: reading, decoding, augmenting and
batching, for the YOLOv1 (448x448) and SSD300 training transforms, in-process and with worker
processes, and so how many workers a GPU needs to be kept fed.

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

from common import cli  # noqa: E402
from voc2007.data import (VOCDataset, make_loader, ssd_train_transform,  # noqa: E402
                          voc_folder, yolo_train_transform)
from voc2007.synthetic import write_synthetic_voc  # noqa: E402

PIPELINES = {"YOLOv1 448x448": yolo_train_transform(448), "SSD300": ssd_train_transform(300)}


def images_per_second(dataset, *, batch_size, workers):
    """Loader throughput over one epoch, after a warm-up epoch that starts the workers."""
    loader = make_loader(dataset, batch_size=batch_size, train=True, workers=workers)
    for epoch in range(2):
        loader.set_epoch(epoch)
        start = time.perf_counter()
        count = sum(len(images) for images, _ in loader)
    return count / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", help="time on VOC 2007 trainval there (default: generated "
                                           "images)")
    parser.add_argument("--images", type=cli.positive_int, default=256,
                        help="images per timed epoch (%(default)s)")
    parser.add_argument("--workers", type=cli.positive_int, default=min(4, os.cpu_count()),
                        help="worker processes of the parallel run (%(default)s)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=32, help="(%(default)s)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        if args.data_dir:
            data_dir, data = args.data_dir, f"VOC 2007 trainval in {voc_folder(args.data_dir)}"
        else:
            data_dir, data = scratch, "generated VOC-like images (333-500 px per side)"
            write_synthetic_voc(scratch, trainval=args.images, test=0, min_size=333,
                                max_size=500)
        print(f"VOC input pipeline on {os.cpu_count()} CPUs: {data}, {args.images} images per "
              f"epoch, batch {args.batch_size}")
        workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
        print(f"{'pipeline':<16} {'in-process':>12} {workers:>12} "
              f"{'per worker':>12}   (images/s)")
        per_worker = {}
        for name, transform in PIPELINES.items():
            dataset = VOCDataset(data_dir, "trainval", transform, drop_difficult=True)
            dataset = dataset.subset(args.images)
            alone = images_per_second(dataset, batch_size=args.batch_size, workers=0)
            parallel = images_per_second(dataset, batch_size=args.batch_size,
                                         workers=args.workers)
            per_worker[name] = parallel / args.workers
            print(f"{name:<16} {alone:>12.0f} {parallel:>12.0f} {per_worker[name]:>12.0f}")
    for name, rate in per_worker.items():
        print(f"{name}: a GPU that trains at X images/s needs about X / {rate:.0f} workers")


if __name__ == "__main__":
    sys.exit(cli.run(main))
