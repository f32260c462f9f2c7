"""The VOC 2007 evaluator: hand-computed APs for each of the devkit's rules, and the vectorised
voc_eval against the devkit's per-detection loop on random problems."""
import math

import numpy as np
import pytest
import torch

from common.voc_eval import voc_eval, voc_eval_per_detection

BOTH = pytest.mark.parametrize("evaluate", [voc_eval, voc_eval_per_detection],
                               ids=["vectorised", "per_detection"])

BOX = [0, 0, 9, 9]         # 10 x 10 pixels in VOC's inclusive coordinates
FAR = [100, 100, 109, 109]  # overlaps nothing


def image(det_boxes=(), scores=(), det_labels=None, gt_boxes=(), gt_labels=None, difficult=None):
    """One image's (detections, ground truth) dicts as tensors; labels default to class 0."""
    detection = {"boxes": torch.tensor(det_boxes, dtype=torch.float32).reshape(-1, 4),
                 "scores": torch.tensor(scores, dtype=torch.float32),
                 "labels": torch.tensor(det_labels if det_labels is not None
                                        else [0] * len(det_boxes), dtype=torch.int64)}
    truth = {"boxes": torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4),
             "labels": torch.tensor(gt_labels if gt_labels is not None
                                    else [0] * len(gt_boxes), dtype=torch.int64),
             "difficult": torch.tensor(difficult if difficult is not None
                                       else [False] * len(gt_boxes), dtype=torch.bool)}
    return detection, truth


def evaluate_images(evaluate, images, num_classes=1, **options):
    detections, ground_truths = zip(*images) if images else ((), ())
    return evaluate(list(detections), list(ground_truths), num_classes, **options)


@BOTH
@pytest.mark.parametrize("use_07_metric", [True, False])
def test_a_perfect_detector_scores_one(evaluate, use_07_metric):
    images = [image([BOX, [20, 30, 59, 69]], [0.3, 0.9], [0, 1],
                    [BOX, [20, 30, 59, 69]], [0, 1]),
              image([[5, 5, 24, 44]], [0.1], [1], [[5, 5, 24, 44]], [1])]
    result = evaluate_images(evaluate, images, num_classes=2, use_07_metric=use_07_metric)
    # (the 11-point sum of eleven 1/11 is 1 + 2e-16, as in the devkit)
    assert result["ap"] == pytest.approx([1.0, 1.0], abs=1e-12)
    assert result["map"] == pytest.approx(1.0, abs=1e-12)
    assert result["positives"] == [1, 2]
    assert result["detections"] == [1, 2]


@BOTH
def test_eleven_point_and_all_point_ap_of_a_mixed_ranking(evaluate):
    # 4 positives over 2 images; ranked: TP, FP, TP, FP, FP (duplicate), TP; one box missed.
    #   precision 1, 1/2, 2/3, 1/2, 2/5, 1/2   recall .25, .25, .5, .5, .5, .75
    # 11-point: t = 0, .1, .2 -> 1;  t = .3, .4, .5 -> 2/3;  t = .6, .7 -> 1/2;  t >= .8 -> 0
    #   AP = (3 + 3 * 2/3 + 2 * 1/2) / 11 = 6/11
    # all-point: precision envelope 1 on (0, .25], 2/3 on (.25, .5], 1/2 on (.5, .75], then 0
    #   AP = .25 + .25 * 2/3 + .25 * 1/2 = 13/24
    # The input order is by image, not by score: the ranking must be global.
    images = [image([BOX, FAR, BOX, [20, 20, 29, 29]], [0.9, 0.8, 0.5, 0.4],
                    gt_boxes=[BOX, [20, 20, 29, 29]]),
              image([BOX, FAR], [0.7, 0.6], gt_boxes=[BOX, [50, 50, 59, 59]])]
    eleven = evaluate_images(evaluate, images)
    assert eleven["ap"][0] == pytest.approx(6 / 11, abs=1e-12)
    assert eleven["precision"][0] == pytest.approx([1, 1 / 2, 2 / 3, 1 / 2, 2 / 5, 1 / 2])
    assert eleven["recall"][0] == pytest.approx([0.25, 0.25, 0.5, 0.5, 0.5, 0.75])
    all_point = evaluate_images(evaluate, images, use_07_metric=False)
    assert all_point["ap"][0] == pytest.approx(13 / 24, abs=1e-12)


@BOTH
def test_a_second_detection_of_a_box_is_a_false_positive(evaluate):
    # boxes A and B; ranked: A (TP), A again (FP), B (TP)
    #   precision 1, 1/2, 2/3   recall .5, .5, 1
    # 11-point: t = 0 .. .5 (6 points) -> 1, t = .6 .. 1 (5 points) -> 2/3: (6 + 10/3) / 11
    # all-point: .5 * 1 + .5 * 2/3 = 5/6
    second = [20, 0, 29, 9]
    images = [image([BOX, BOX, second], [0.9, 0.8, 0.7], gt_boxes=[BOX, second])]
    assert evaluate_images(evaluate, images)["ap"][0] == pytest.approx(28 / 33, abs=1e-12)
    assert evaluate_images(evaluate, images, use_07_metric=False)["ap"][0] == pytest.approx(5 / 6)


@BOTH
def test_a_detection_whose_best_box_is_taken_is_a_false_positive(evaluate):
    # A = [0,0,9,9] and B = [5,0,14,9]; the second detection [2,0,11,9] overlaps
    #   A: intersection 8 x 10 = 80, union 100 + 100 - 80 = 120, IoU 2/3 (best, but taken)
    #   B: intersection 7 x 10 = 70, union 130, IoU 7/13 = 0.54 (would match; the devkit
    #      does not look further)
    # ranked: TP, FP -> precision 1, 1/2, recall .5, .5: 11-point AP 6/11, all-point 1/2
    images = [image([BOX, [2, 0, 11, 9]], [0.9, 0.8], gt_boxes=[BOX, [5, 0, 14, 9]])]
    assert evaluate_images(evaluate, images)["ap"][0] == pytest.approx(6 / 11, abs=1e-12)
    assert evaluate_images(evaluate, images, use_07_metric=False)["ap"][0] == pytest.approx(0.5)


@BOTH
def test_an_iou_tie_goes_to_the_first_box(evaluate):
    # A = [0,0,9,9], B = [4,0,13,9]; [2,0,11,9] overlaps each by 8 x 10 = 80 of a 120 union:
    # IoU 2/3 with both, so it takes A (the first, as np.argmax); then B's exact copy takes B.
    # TP, TP -> AP 1 (had the tie gone to B: TP, FP -> 11-point AP 6/11)
    images = [image([[2, 0, 11, 9], [4, 0, 13, 9]], [0.9, 0.8], gt_boxes=[BOX, [4, 0, 13, 9]])]
    assert evaluate_images(evaluate, images)["ap"][0] == pytest.approx(1.0, abs=1e-12)


@BOTH
def test_a_difficult_box_counts_neither_way(evaluate):
    # boxes: A, D (difficult); ranked: D (ignored), far (FP), A (TP); positives 1 (not D)
    #   cumulative TP 0, 0, 1; FP 0, 1, 1 -> precision 0 (0 / eps), 0, 1/2; recall 0, 0, 1
    #   AP = 1/2 with either metric. Were the hit on D a FP: precision 0, 1/2, 1/3 -> AP 1/3;
    #   were D a positive: recall would end at 1/2 -> AP 6/11 * 1/2
    difficult_box = [40, 40, 79, 79]
    images = [image([difficult_box, FAR, BOX], [0.9, 0.8, 0.7],
                    gt_boxes=[BOX, difficult_box], difficult=[False, True])]
    result = evaluate_images(evaluate, images)
    assert result["positives"] == [1]
    assert result["detections"] == [3]
    assert result["precision"][0].tolist() == [0.0, 0.0, 0.5]
    assert result["recall"][0].tolist() == [0.0, 0.0, 1.0]
    assert result["ap"][0] == pytest.approx(0.5)
    assert evaluate_images(evaluate, images, use_07_metric=False)["ap"][0] == pytest.approx(0.5)


@BOTH
def test_classes_without_detections_or_without_positives(evaluate):
    # class 0: one box, detected (AP 1); class 1: one box, no detection (AP 0, empty curves);
    # class 2: detections but only a difficult box (AP NaN, left out of the mAP: (1 + 0) / 2);
    # class 3: nothing at all (AP NaN)
    images = [image([BOX, FAR, [20, 20, 29, 29]], [0.9, 0.8, 0.7], [0, 2, 2],
                    [BOX, [40, 40, 49, 49], [20, 20, 29, 29]], [0, 1, 2],
                    difficult=[False, False, True])]
    result = evaluate_images(evaluate, images, num_classes=4)
    assert result["ap"][:2] == pytest.approx([1.0, 0.0], abs=1e-12)
    assert math.isnan(result["ap"][2]) and math.isnan(result["ap"][3])
    assert result["map"] == pytest.approx(0.5)
    assert result["positives"] == [1, 1, 0, 0]
    assert result["detections"] == [1, 0, 2, 0]
    assert result["precision"][1].size == 0 and result["recall"][1].size == 0
    assert result["precision"][2].tolist() == [0.0, 0.0]   # a FP, then the difficult hit
    assert np.isnan(result["recall"][2]).all()
    assert math.isnan(evaluate_images(evaluate, [image([BOX], [0.5])])["map"])
    assert math.isnan(evaluate_images(evaluate, [])["map"])


@BOTH
def test_equal_scores_keep_image_order_then_order_in_the_image(evaluate):
    # one positive; a FP and the TP with the same score. FP ranked first: precision 0, 1/2 and
    # recall 0, 1 -> AP 1/2; TP first: precision 1, 1/2, recall 1, 1 -> AP 1
    fp_image, tp_image = image([FAR], [0.5]), image([BOX], [0.5], gt_boxes=[BOX])
    assert evaluate_images(evaluate, [fp_image, tp_image])["ap"][0] == pytest.approx(0.5)
    assert evaluate_images(evaluate, [tp_image, fp_image])["ap"][0] == pytest.approx(1.0)
    within_fp_first = image([FAR, BOX], [0.5, 0.5], gt_boxes=[BOX])
    within_tp_first = image([BOX, FAR], [0.5, 0.5], gt_boxes=[BOX])
    assert evaluate_images(evaluate, [within_fp_first])["ap"][0] == pytest.approx(0.5)
    assert evaluate_images(evaluate, [within_tp_first])["ap"][0] == pytest.approx(1.0)
    # many ties, where an unstable sort (numpy's default introsort) may reorder them: 49 FPs
    # then the TP, all at 0.5: precision reaches 1/50 at recall 1, so AP = 1/50
    many = image([FAR] * 49 + [BOX], [0.5] * 50, gt_boxes=[BOX])
    assert evaluate_images(evaluate, [many])["ap"][0] == pytest.approx(1 / 50)


@BOTH
def test_iou_of_exactly_one_half_is_not_a_match_with_the_plus_one_convention(evaluate):
    # class 0: gt [0,0,9,9] is 10 x 10 = 100 pixels, det [0,0,9,4] 10 x 5 = 50, inside it:
    #   IoU 50/100 = 0.5 exactly -> not a match (strictly greater), AP 0
    #   (without +1: 9 x 4 / (9 x 9) = 0.44)
    # class 1: gt [0,0,10,10] is 11 x 11 = 121 pixels, det [0,0,10,5] 11 x 6 = 66 inside it:
    #   IoU 66/121 = 0.545 -> a match, AP 1 (without +1: 10 x 5 / (10 x 10) = 0.5, no match)
    images = [image([[0, 0, 9, 4], [0, 0, 10, 5]], [0.9, 0.9], [0, 1],
                    [BOX, [0, 0, 10, 10]], [0, 1])]
    assert evaluate_images(evaluate, images, num_classes=2)["ap"] == pytest.approx([0, 1],
                                                                                  abs=1e-12)
    # a lower threshold accepts the first: 0.5 > 0.49
    lower = evaluate_images(evaluate, images, num_classes=2, iou_threshold=0.49)
    assert lower["ap"] == pytest.approx([1.0, 1.0], abs=1e-12)


@BOTH
def test_boxes_are_inclusive_pixel_ranges(evaluate):
    # a one-pixel box [5,5,5,5] is 1 x 1 with the +1 (zero area without): found exactly, IoU 1
    # [0,0,1,1] (2 x 2) against [0,0,2,1] (3 x 2): IoU 4/6 -> a match; without +1 it would be
    # 1/2 -> no match
    images = [image([[5, 5, 5, 5], [0, 0, 1, 1]], [0.9, 0.8], [0, 1],
                    [[5, 5, 5, 5], [0, 0, 2, 1]], [0, 1])]
    assert evaluate_images(evaluate, images, num_classes=2)["ap"] == pytest.approx([1, 1],
                                                                                  abs=1e-12)


@BOTH
def test_eleven_points_are_the_python_devkits_doubles(evaluate):
    # As py-faster-rcnn's voc_eval.py, the recall points are np.arange(0, 1.1, 0.1), whose 0.3
    # is 0.30000000000000004: a recall of exactly 3/10 does not reach it.
    # 10 positives; ranked: 3 TPs (recall .1, .2, .3 at precision 1), a FP, a TP (4/5 at .4)
    #   t = 0, .1, .2 -> 1;  t = .3 (one ulp above) and .4 -> 4/5;  t >= .5 -> 0
    #   AP = (3 + 2 * 4/5) / 11 = 4.6 / 11   (4.8 / 11 if recall .3 reached the .3 point)
    gt_boxes = [[20 * k, 0, 20 * k + 9, 9] for k in range(10)]
    images = [image(gt_boxes[:3] + [FAR] + gt_boxes[3:4], [0.9, 0.8, 0.7, 0.6, 0.5],
                    gt_boxes=gt_boxes)]
    assert evaluate_images(evaluate, images)["ap"][0] == pytest.approx(4.6 / 11, abs=1e-12)


def test_tensors_and_numpy_arrays_give_the_same_result():
    images = [image([BOX, FAR, [2, 0, 11, 9]], [0.9, 0.8, 0.7], [0, 1, 0],
                    [BOX, [5, 0, 14, 9]], [0, 1], [False, True]),
              image([[3, 3, 12, 12]], [0.6], gt_boxes=[[3, 3, 12, 12]])]
    as_tensors = evaluate_images(voc_eval, images, num_classes=2)
    as_numpy = evaluate_images(voc_eval, [({key: value.numpy() for key, value in det.items()},
                                           {key: value.numpy() for key, value in gt.items()})
                                          for det, gt in images], num_classes=2)
    # the numpy ones in float64 and int32, and without the optional difficult flags
    as_numpy_64 = voc_eval([{"boxes": np.array(det["boxes"].tolist()),
                             "scores": np.array(det["scores"].tolist()),
                             "labels": det["labels"].numpy().astype(np.int32)}
                            for det, _ in images],
                           [{"boxes": np.array([BOX, [5, 0, 14, 9]]), "labels": np.array([0, 1])},
                            {"boxes": np.array([[3, 3, 12, 12]]), "labels": np.array([0])}],
                           num_classes=2)
    # class 0: 2 positives; ranked BOX (TP, .9), [2,0,11,9] (FP: IoU 2/3 with taken BOX, .7),
    #   [3,3,12,12] (TP, .6): 11-point AP 28/33 as in the duplicate test
    # class 1: its only box is difficult (AP NaN) unless the flags are left out (then FAR is a FP)
    assert as_tensors["ap"][0] == pytest.approx(28 / 33, abs=1e-12)
    assert math.isnan(as_tensors["ap"][1])
    assert as_numpy["ap"][0] == as_tensors["ap"][0] and math.isnan(as_numpy["ap"][1])
    assert as_numpy_64["ap"] == [as_tensors["ap"][0], 0.0]


@pytest.mark.parametrize("evaluate", [voc_eval, voc_eval_per_detection])
def test_mistakes_in_the_inputs_are_value_errors(evaluate):
    detection, truth = image([BOX], [0.5], gt_boxes=[BOX])
    with pytest.raises(ValueError, match="1 images of detections but 2"):
        evaluate([detection], [truth, truth], 1)
    with pytest.raises(ValueError, match=r"detections\[0\] has label 3, outside 0..2"):
        evaluate([{**detection, "labels": torch.tensor([3])}], [truth], 3)
    with pytest.raises(ValueError, match=r"ground_truths\[1\] has label -1"):
        evaluate([detection, detection], [truth, {**truth, "labels": torch.tensor([-1])}], 1)
    with pytest.raises(ValueError, match=r"scores'\] must have shape \(1,\)"):
        evaluate([{**detection, "scores": torch.tensor([0.5, 0.4])}], [truth], 1)
    with pytest.raises(ValueError, match=r"must have shape \(N, 4\)"):
        evaluate([{**detection, "boxes": torch.zeros(1, 5)}], [truth], 1)
    with pytest.raises(ValueError, match="x2 >= x1"):
        evaluate([detection], [{**truth, "boxes": torch.tensor([[9.0, 0, 0, 9]])}], 1)
    with pytest.raises(ValueError, match="labels must be integers"):
        evaluate([{**detection, "labels": torch.tensor([0.0])}], [truth], 1)


def random_problem(rng, num_classes):
    """A few images on a small integer grid (so IoUs often tie or sit on the threshold), with
    difficult flags, duplicates and few distinct scores (many ties)."""
    images = []
    for _ in range(rng.integers(0, 6)):
        gt_count = rng.integers(0, 5)
        corners = rng.integers(0, 12, size=(gt_count, 2))
        gt_boxes = np.concatenate([corners, corners + rng.integers(0, 8, size=(gt_count, 2))], 1)
        det_count = rng.integers(0, 9)
        corners = rng.integers(0, 12, size=(det_count, 2))
        det_boxes = np.concatenate([corners, corners + rng.integers(0, 8, size=(det_count, 2))],
                                   1)
        if gt_count:   # some detections copy or shift a box: hits and duplicates
            copied = rng.random(det_count) < 0.5
            source = gt_boxes[rng.integers(0, gt_count, size=det_count)]
            det_boxes[copied] = source[copied] + rng.integers(-1, 2, size=(copied.sum(), 1))
        images.append(({"boxes": det_boxes.astype(np.float64),
                        "scores": rng.integers(0, 4, size=det_count) / 4,
                        "labels": rng.integers(0, num_classes, size=det_count)},
                       {"boxes": gt_boxes.astype(np.float64),
                        "labels": rng.integers(0, num_classes, size=gt_count),
                        "difficult": rng.random(gt_count) < 0.25}))
    return images


def test_vectorised_equals_the_per_detection_loop_on_random_problems():
    rng = np.random.default_rng(0)
    for trial in range(300):
        num_classes = int(rng.integers(1, 4))
        images = random_problem(rng, num_classes)
        options = {"use_07_metric": bool(trial % 2),
                   "iou_threshold": float(rng.choice([0.5, 0.3, 0.7]))}
        fast = evaluate_images(voc_eval, images, num_classes, **options)
        reference = evaluate_images(voc_eval_per_detection, images, num_classes, **options)
        assert np.array_equal(fast["ap"], reference["ap"], equal_nan=True), trial
        assert np.array_equal(fast["map"], reference["map"], equal_nan=True), trial
        for key in ("precision", "recall"):
            for ours, theirs in zip(fast[key], reference[key]):
                assert np.array_equal(ours, theirs, equal_nan=True), (trial, key)
        assert fast["positives"] == reference["positives"]
        assert fast["detections"] == reference["detections"]
