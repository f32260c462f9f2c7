"""PASCAL VOC 2007 detection evaluation (per-class AP and mAP) by the rules of the VOC devkit.

Per class, every detection of the split is ranked by score (a stable sort: equal scores keep
image order, then their order within the image, as the MATLAB devkit's sort does). Going down
the ranking, a detection takes the ground-truth box of its image and class with the highest
IoU (the first such box on ties). It is a true positive when that IoU is strictly above the
threshold and the box is not yet taken, a false positive when the IoU is not above it or the
box is taken (even if another box would have matched), and neither when the box is difficult.
The recall denominator counts the non-difficult boxes. "Strictly above" is the rule of the
devkit's python port (voc_eval.py, `ovmax > ovthresh`); the MATLAB VOCevaldet.m takes an IoU
equal to the threshold too (`ovmax >= minoverlap`), which only an IoU of exactly 0.5 tells apart.

Boxes are in VOC's pixel coordinates, 1-based and inclusive: a box from x1 to x2 is
x2 - x1 + 1 pixels wide, for the intersection too. torchvision's box_iou uses continuous
coordinates (no +1), hence our own IoU.

`voc_eval` is vectorised over all detections; `voc_eval_per_detection` is the devkit's loop
ported straight, the reference the tests check `voc_eval` against.
"""
import math
from typing import NamedTuple

import numpy as np
import torch

from common.metrics import average_precision

# VOC 2007's eleven recall points, as the same doubles as the devkit's python port
# (np.arange(0, 1.1, 0.1)), so that our AP equals the port's to the last bit: 0.3, 0.6 and 0.7
# come out one ulp above the decimal, so a recall of exactly 3/10 does not reach the 0.3 point.
ELEVEN_POINTS = np.arange(0.0, 1.1, 0.1)


class _Detections(NamedTuple):
    """All detections of the split, one array per field, in input order (image by image)."""
    images: np.ndarray   # (N,) int64: index of the image in the input lists
    labels: np.ndarray   # (N,) int64
    scores: np.ndarray   # (N,) float64
    boxes: np.ndarray    # (N, 4) float64, xyxy


class _GroundTruth(NamedTuple):
    """All ground-truth boxes of the split, one array per field, in input order."""
    images: np.ndarray      # (M,) int64
    labels: np.ndarray      # (M,) int64
    boxes: np.ndarray       # (M, 4) float64, xyxy
    difficult: np.ndarray   # (M,) bool


def voc_eval(detections, ground_truths, num_classes, use_07_metric=True, iou_threshold=0.5):
    """Per-class average precision and mAP of detections on a split, by the VOC devkit's rules.

    Args:
        detections: one dict per image, torchvision's convention: "boxes" (N, 4) float xyxy in
            VOC pixel coordinates, "scores" (N,), "labels" (N,) int in 0..num_classes-1.
            Torch tensors or numpy arrays.
        ground_truths: one dict per image, same order: "boxes" (M, 4), "labels" (M,) and
            "difficult" (M,) bool (optional: none difficult when absent).
        num_classes: number of classes.
        use_07_metric: VOC 2007's 11-point interpolated AP (the mean over recall points
            0, 0.1, ..., 1 of the highest precision at a recall at least that high); False for
            the all-point AP of VOC 2010 on (the area under the monotone precision envelope).
        iou_threshold: a detection matches when its IoU is strictly greater than this.

    Returns:
        A dict of per-class lists, index = label, and the mean:
        "ap": AP of each class (float); NaN for a class without a non-difficult box.
        "map": mean of the non-NaN APs (NaN when all are NaN).
        "precision", "recall": numpy float64 arrays over the class's ranked detections
            (empty when it has none), precision = TP / max(TP + FP, eps) and recall =
            TP / positives as cumulative counts, as the devkit computes them: a detection on
            a difficult box keeps its row and repeats the counts. Recall is NaN where the
            class has no positives.
        "positives": number of non-difficult ground-truth boxes of each class (int).
        "detections": number of detections of each class (int).

    Raises:
        ValueError: lists of different lengths, malformed arrays, labels out of range, NaN
            scores, or boxes with x2 < x1 or y2 < y1.
    """
    dets, truth = _gather(detections, ground_truths, num_classes)
    ranked = _rank_by_class_and_score(dets)
    best_iou, best_box = _best_boxes(dets, truth, num_classes)
    true_positive, false_positive = _judge(best_iou[ranked], best_box[ranked], truth.difficult,
                                           iou_threshold)
    # the ranking groups the classes, so each class is one slice of it
    bounds = np.searchsorted(dets.labels[ranked], np.arange(num_classes + 1))
    flags = [(true_positive[start:end], false_positive[start:end])
             for start, end in zip(bounds[:-1], bounds[1:])]
    return _report(flags, truth, num_classes, use_07_metric)


def voc_eval_per_detection(detections, ground_truths, num_classes, use_07_metric=True,
                           iou_threshold=0.5):
    """`voc_eval` computed as the devkit does: per class, one detection at a time down the
    ranking, one small IoU computation each. Same arguments and result as `voc_eval`.

    This straightforward port is the reference `voc_eval` is tested against
    (tests/test_voc_eval.py) and the baseline of voc2007/bench_eval.py; it is far slower.
    """
    dets, truth = _gather(detections, ground_truths, num_classes)
    flags = [_devkit_class_loop(dets, truth, label, iou_threshold)
             for label in range(num_classes)]
    return _report(flags, truth, num_classes, use_07_metric)


# ---- input ----------------------------------------------------------------------------------

def _gather(detections, ground_truths, num_classes):
    """Check the per-image dicts and concatenate them into flat arrays."""
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} images of detections but {len(ground_truths)} of "
                         "ground truth: the lists must have one entry per image each")
    det_boxes, det_scores, det_labels = [], [], []
    gt_boxes, gt_labels, gt_difficult = [], [], []
    for image, (det, gt) in enumerate(zip(detections, ground_truths)):
        name = f"detections[{image}]"
        det_boxes.append(_boxes(det["boxes"], f"{name}['boxes']"))
        count = len(det_boxes[-1])
        det_scores.append(_vector(det["scores"], count, f"{name}['scores']").astype(np.float64))
        det_labels.append(_vector(det["labels"], count, f"{name}['labels']"))
        name = f"ground_truths[{image}]"
        gt_boxes.append(_boxes(gt["boxes"], f"{name}['boxes']"))
        count = len(gt_boxes[-1])
        gt_labels.append(_vector(gt["labels"], count, f"{name}['labels']"))
        difficult = gt.get("difficult", np.zeros(count, dtype=bool))
        gt_difficult.append(_vector(difficult, count, f"{name}['difficult']").astype(bool))

    # the empty first parts give the right dtype and shape when there is nothing to concatenate
    dets = _Detections(images=_image_indices(det_boxes), labels=_labels(det_labels),
                       scores=np.concatenate([np.zeros(0)] + det_scores),
                       boxes=np.concatenate([np.zeros((0, 4))] + det_boxes))
    truth = _GroundTruth(images=_image_indices(gt_boxes), labels=_labels(gt_labels),
                         boxes=np.concatenate([np.zeros((0, 4))] + gt_boxes),
                         difficult=np.concatenate([np.zeros(0, dtype=bool)] + gt_difficult))
    _check_values(dets, truth, num_classes)
    return dets, truth


def _image_indices(boxes_per_image):
    """The image index of every box of the concatenation."""
    return np.repeat(np.arange(len(boxes_per_image)), [len(boxes) for boxes in boxes_per_image])


def _numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _boxes(value, name):
    boxes = _numpy(value).astype(np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")
    return boxes


def _vector(value, count, name):
    vector = _numpy(value)
    if vector.shape != (count,):
        raise ValueError(f"{name} must have shape ({count},) like its boxes, "
                         f"got {tuple(vector.shape)}")
    return vector


def _labels(parts):
    parts = [part for part in parts if part.size]   # an empty list reads as float: skip it
    for part in parts:
        if part.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, got {part.dtype}")
    return np.concatenate([np.zeros(0, dtype=np.int64)] + parts).astype(np.int64)


def _check_values(dets, truth, num_classes):
    for kind, images, labels in (("detections", dets.images, dets.labels),
                                 ("ground_truths", truth.images, truth.labels)):
        wrong = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if wrong.size:
            raise ValueError(f"{kind}[{images[wrong[0]]}] has label {labels[wrong[0]]}, outside "
                             f"0..{num_classes - 1}")
    if np.isnan(dets.scores).any():
        image = dets.images[np.flatnonzero(np.isnan(dets.scores))[0]]
        raise ValueError(f"detections[{image}] has a NaN score")
    # x2 >= x1 keeps every +1 area at least 1, so no IoU divides by zero
    for kind, images, boxes in (("detections", dets.images, dets.boxes),
                                ("ground_truths", truth.images, truth.boxes)):
        wrong = np.flatnonzero(~((boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])))
        if wrong.size:
            raise ValueError(f"{kind}[{images[wrong[0]]}] has box {boxes[wrong[0]].tolist()}: "
                             "boxes must be xyxy with x2 >= x1 and y2 >= y1")


# ---- matching -------------------------------------------------------------------------------

def _iou(boxes, others):
    """IoU of (..., 4) xyxy boxes with (..., 4) others, elementwise after broadcasting, with the
    devkit's +1 on every length. Both evaluators use it, so their IoUs agree to the bit."""
    width = np.maximum(np.minimum(boxes[..., 2], others[..., 2])
                       - np.maximum(boxes[..., 0], others[..., 0]) + 1.0, 0.0)
    height = np.maximum(np.minimum(boxes[..., 3], others[..., 3])
                        - np.maximum(boxes[..., 1], others[..., 1]) + 1.0, 0.0)
    intersection = width * height
    union = ((boxes[..., 2] - boxes[..., 0] + 1.0) * (boxes[..., 3] - boxes[..., 1] + 1.0)
             + (others[..., 2] - others[..., 0] + 1.0) * (others[..., 3] - others[..., 1] + 1.0)
             - intersection)
    return intersection / union


def _rank_by_class_and_score(dets):
    """Detection indices grouped by class, each class from its highest score down; equal scores
    keep input order (image, then place in the image), as both sorts are stable."""
    by_score = np.argsort(-dets.scores, kind="stable")
    return by_score[np.argsort(dets.labels[by_score], kind="stable")]


def _best_boxes(dets, truth, num_classes):
    """Each detection's highest IoU with a ground-truth box of its image and class, and that
    box's index (the first such box on ties, as np.argmax); -inf and -1 when there is none.

    All (detection, box) pairs of the same image and class are laid out in one flat array,
    the pairs of a detection side by side, so that one IoU call and two segment reductions
    serve the whole split.
    """
    # the boxes of one (image, class) are one contiguous run in gt_order, in input order
    gt_group = truth.images * num_classes + truth.labels
    gt_order = np.argsort(gt_group, kind="stable")
    gt_group = gt_group[gt_order]
    det_group = dets.images * num_classes + dets.labels
    first = np.searchsorted(gt_group, det_group, side="left")
    count = np.searchsorted(gt_group, det_group, side="right") - first

    pair_start = np.cumsum(count) - count   # where each detection's pairs begin
    pair_det = np.repeat(np.arange(len(det_group)), count)
    pair_box = gt_order[np.repeat(first - pair_start, count) + np.arange(len(pair_det))]
    overlaps = _iou(dets.boxes[pair_det], truth.boxes[pair_box])

    best_iou = np.full(len(det_group), -np.inf)
    best_box = np.full(len(det_group), -1)
    has_boxes = count > 0
    starts = pair_start[has_boxes]
    best_iou[has_boxes] = np.maximum.reduceat(overlaps, starts)
    # the first pair of each detection that reaches its maximum (boxes are finite, so one does)
    pair_index = np.arange(len(pair_det))
    reaching = np.where(overlaps == best_iou[pair_det], pair_index, len(pair_det))
    best_box[has_boxes] = pair_box[np.minimum.reduceat(reaching, starts)]
    return best_iou, best_box


def _judge(best_iou, best_box, difficult, iou_threshold):
    """True- and false-positive flags of ranked detections, given each one's best box.

    A detection's best box does not depend on which boxes are taken, so the devkit's greedy
    loop reduces to: the first detection in rank order to hit a non-difficult box takes it
    (TP), every later hit on it is a FP. A box belongs to one image and class, so rank order
    within the class is all that matters.
    """
    hit = best_iou > iou_threshold
    hits_difficult = np.zeros(len(hit), dtype=bool)
    hits_difficult[hit] = difficult[best_box[hit]]
    claims = np.flatnonzero(hit & ~hits_difficult)
    _, first_claims = np.unique(best_box[claims], return_index=True)
    true_positive = np.zeros(len(hit), dtype=bool)
    true_positive[claims[first_claims]] = True
    false_positive = ~(true_positive | hits_difficult)
    return true_positive, false_positive


def _devkit_class_loop(dets, truth, label, iou_threshold):
    """True- and false-positive flags of one class's ranked detections, one detection at a
    time as the devkit's loop does."""
    # per image, the indices of this class's boxes (the devkit's class_recs)
    boxes_of_image = {}
    for index in np.flatnonzero(truth.labels == label):
        boxes_of_image.setdefault(int(truth.images[index]), []).append(index)
    boxes_of_image = {image: np.array(indices) for image, indices in boxes_of_image.items()}
    taken = np.zeros(len(truth.labels), dtype=bool)

    ranked = np.flatnonzero(dets.labels == label)
    ranked = ranked[np.argsort(-dets.scores[ranked], kind="stable")]
    true_positive = np.zeros(len(ranked))
    false_positive = np.zeros(len(ranked))
    for rank, index in enumerate(ranked):
        candidates = boxes_of_image.get(int(dets.images[index]))
        best_iou = -np.inf
        if candidates is not None:
            overlaps = _iou(dets.boxes[index], truth.boxes[candidates])
            best = int(np.argmax(overlaps))
            best_iou = overlaps[best]
        if best_iou > iou_threshold:
            box = candidates[best]
            if not truth.difficult[box]:
                if not taken[box]:
                    true_positive[rank] = 1
                    taken[box] = True
                else:
                    false_positive[rank] = 1   # a second detection of a taken box
        else:
            false_positive[rank] = 1
    return true_positive, false_positive


# ---- curves and AP --------------------------------------------------------------------------

def _report(flags, truth, num_classes, use_07_metric):
    """The result dict of `voc_eval` from each class's (TP, FP) flags down its ranking."""
    positives = np.bincount(truth.labels[~truth.difficult], minlength=num_classes)
    result = {"ap": [], "precision": [], "recall": [], "positives": positives.tolist(),
              "detections": [len(true_positive) for true_positive, _ in flags]}
    for (true_positive, false_positive), class_positives in zip(flags, positives):
        precision, recall = _curve(true_positive, false_positive, class_positives)
        result["precision"].append(precision)
        result["recall"].append(recall)
        result["ap"].append(_average_precision(precision, recall, use_07_metric)
                            if class_positives else math.nan)
    present = [ap for ap in result["ap"] if not math.isnan(ap)]
    result["map"] = float(np.mean(present)) if present else math.nan
    return result


def _curve(true_positive, false_positive, positives):
    """Precision and recall after each ranked detection, as the devkit computes them."""
    true_positives = np.cumsum(true_positive, dtype=np.float64)
    false_positives = np.cumsum(false_positive, dtype=np.float64)
    # eps: before any TP or FP (only difficult hits so far) precision is 0, not 0/0
    precision = true_positives / np.maximum(true_positives + false_positives,
                                            np.finfo(np.float64).eps)
    if positives == 0:
        return precision, np.full(len(true_positives), math.nan)
    return precision, true_positives / positives


def _average_precision(precision, recall, use_07_metric):
    if not use_07_metric:
        return average_precision(precision, recall)   # all-point, the same as the devkit's
    ap = 0.0
    for point in ELEVEN_POINTS:   # summed point by point, as the devkit does
        reached = precision[recall >= point]
        ap += (reached.max() if reached.size else 0.0) / 11
    return float(ap)
