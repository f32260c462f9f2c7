"""Time the VOC 2007 evaluator: common/voc_eval.py's vectorised voc_eval against
voc_eval_per_detection (the devkit's loop, one detection at a time) on the same synthetic
problem the size of the VOC 2007 test split, and check that both give the same mAP.

    python voc2007/bench_eval.py [--images 4952] [--per-image 200] [--seed 0]
                                 [--reference-images 500]

The per-detection loop takes minutes on a million detections, so both are timed on the first
--reference-images images (a like-for-like ratio) and voc_eval alone on the full problem.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli  # noqa: E402
from common.voc_eval import voc_eval, voc_eval_per_detection  # noqa: E402

NUM_CLASSES = 20
WIDTH, HEIGHT = 500, 375   # a typical VOC image
NEAR_PER_OBJECT = 5        # detections around each ground-truth box; the rest are random


def random_boxes(rng, count, min_size=8):
    """Boxes inside the image, in VOC's 1-based inclusive pixel coordinates."""
    x1 = rng.integers(1, WIDTH - min_size, size=count)
    y1 = rng.integers(1, HEIGHT - min_size, size=count)
    x2 = rng.integers(x1 + min_size, WIDTH + 1)
    y2 = rng.integers(y1 + min_size, HEIGHT + 1)
    return np.stack([x1, y1, x2, y2], 1).astype(np.float32)


def synthetic_split(images, per_image, seed):
    """Ground truth of 1-5 objects per image (about 10% difficult) and `per_image` detections
    per image in a detector's output format (float32 boxes and scores, int64 labels): a few
    jittered copies of each object, mostly of its class, and random boxes for the rest."""
    rng = np.random.default_rng(seed)
    detections, ground_truths = [], []
    for _ in range(images):
        objects = int(rng.integers(1, 6))
        gt_boxes = random_boxes(rng, objects)
        gt_labels = rng.integers(0, NUM_CLASSES, size=objects)
        ground_truths.append({"boxes": torch.from_numpy(gt_boxes),
                              "labels": torch.from_numpy(gt_labels),
                              "difficult": torch.from_numpy(rng.random(objects) < 0.1)})

        near = min(per_image, objects * NEAR_PER_OBJECT)
        source = rng.integers(0, objects, size=near)
        sizes = (gt_boxes[source, 2:] - gt_boxes[source, :2])[:, [0, 1, 0, 1]]
        jittered = gt_boxes[source] + rng.normal(0, 0.1, size=(near, 4)) * sizes
        jittered[:, 2:] = np.maximum(jittered[:, 2:], jittered[:, :2])
        near_labels = np.where(rng.random(near) < 0.8, gt_labels[source],
                               rng.integers(0, NUM_CLASSES, size=near))
        boxes = np.concatenate([jittered, random_boxes(rng, per_image - near)])
        labels = np.concatenate([near_labels,
                                 rng.integers(0, NUM_CLASSES, size=per_image - near)])
        # near boxes score higher on average; scores rounded to 3 decimals so that some tie
        scores = np.concatenate([rng.beta(4, 2, size=near), rng.beta(1, 4, size=per_image - near)])
        detections.append({"boxes": torch.from_numpy(boxes.astype(np.float32)),
                           "scores": torch.from_numpy(np.round(scores, 3).astype(np.float32)),
                           "labels": torch.from_numpy(labels)})
    return detections, ground_truths


def timed(evaluate, detections, ground_truths):
    start = time.perf_counter()
    result = evaluate(detections, ground_truths, NUM_CLASSES)
    return result, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=cli.positive_int, default=4952,
                        help="images in the split (default: %(default)s, VOC 2007 test)")
    parser.add_argument("--per-image", type=cli.positive_int, default=200,
                        help="detections per image (default: %(default)s)")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=0)
    parser.add_argument("--reference-images", type=cli.positive_int, default=500,
                        help="time the per-detection loop (and voc_eval beside it) on the first "
                             "N images only (default: %(default)s)")
    args = parser.parse_args(argv)
    subset = min(args.reference_images, args.images)

    detections, ground_truths = synthetic_split(args.images, args.per_image, args.seed)
    full, full_seconds = timed(voc_eval, detections, ground_truths)
    fast, fast_seconds = timed(voc_eval, detections[:subset], ground_truths[:subset])
    reference, reference_seconds = timed(voc_eval_per_detection, detections[:subset],
                                         ground_truths[:subset])

    total, subset_count = args.images * args.per_image, subset * args.per_image
    print(f"synthetic VOC split: {args.images:,} images, {total:,} detections, "
          f"{NUM_CLASSES} classes, seed {args.seed}")
    print(f"voc_eval, all {args.images:,} images: {full_seconds:.2f} s "
          f"({total / full_seconds:,.0f} detections/s), mAP {full['map']:.6f}")
    print(f"first {subset:,} images ({subset_count:,} detections), like for like:")
    for name, seconds in (("voc_eval", fast_seconds),
                          ("voc_eval_per_detection", reference_seconds)):
        print(f"  {name:<24} {seconds:8.3f} s  {subset_count / seconds:12,.0f} detections/s")
    print(f"  ratio: voc_eval is {reference_seconds / fast_seconds:.1f}x faster")
    if subset < args.images:
        print(f"  the per-detection loop on all {total:,} detections, scaled per detection: "
              f"about {reference_seconds * total / subset_count:.1f} s")
    same = np.array_equal(fast["ap"], reference["ap"], equal_nan=True)
    print(f"same mAP on the first {subset:,} images: {'yes' if same else 'NO'} "
          f"(voc_eval {fast['map']:.12f}, per-detection {reference['map']:.12f})")
    if not same:
        raise SystemExit("the two evaluators disagree")


if __name__ == "__main__":
    sys.exit(cli.run(main))
