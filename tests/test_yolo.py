"""YOLOv1 (voc2007/yolo.py): the networks' shapes and sizes, ImageNet weights for the
backbones, target encoding from padded batches, the loss against hand-computed values and
darknet's gradients, inference, the recipes' widths and schedule (voc2007/train_yolo.py), and a
tiny model overfitting a few generated images."""
import math

import pytest
import torch
import torchvision

from common.nets import load_initial_weights
from conftest import memorised_map
from voc2007 import train_yolo
from voc2007.data import pad_targets
from voc2007.yolo import (BACKBONES, IMAGE_SIZES, SCORE_THRESHOLD, build_yolo, decode_grid,
                          detections_from_grid, encode_targets, yolo_loss)

PARAMETERS = {   # 20 classes, batch norm (the default) / without
    "darknet": (271_716_734, 271_703_550),
    "resnet50": (282_249_726, 282_245_630),
    "vgg16": (259_300_606, 259_296_510),
    "tiny": (1_241_550, 1_241_374),
}


def count(model):
    return sum(parameter.numel() for parameter in model.parameters())


def target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def encode(targets, grid=7, image_size=448, num_classes=20):
    """encode_targets of a list of targets, padded as the training batches are."""
    return encode_targets(*pad_targets(targets), grid, image_size, num_classes)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_parameter_counts_and_grid_shape(backbone):
    # on the meta device: shapes without allocating the 270M parameters
    with torch.device("meta"):
        for batch_norm, parameters in zip((True, False), PARAMETERS[backbone]):
            model = build_yolo(backbone, batch_norm=batch_norm)
            assert count(model) == parameters
        size = IMAGE_SIZES[backbone]
        assert model.image_size == size and model.num_classes == 20
        assert model.predict_grid(torch.empty(2, 3, size, size)).shape == (2, 7, 7, 30)


def test_paper_head_sizes():
    # darknet's 24 convolutions (20 + the 4 of the detection head), then 7*7*1024 -> 4096 -> 1470
    with torch.device("meta"):
        model = build_yolo("darknet", image_size=448)
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convolutions) == 24
    assert [m.stride[0] for m in convolutions].count(2) == 2   # the 7x7/2 and the 3x3/2
    assert (model.fc1.in_features, model.fc1.out_features) == (7 * 7 * 1024, 4096)
    assert (model.fc2.in_features, model.fc2.out_features) == (4096, 7 * 7 * 30)


def test_tiny_forward_training_and_inference():
    torch.manual_seed(0)
    model = build_yolo("tiny")
    images = torch.rand(2, 3, 112, 112)
    assert model.predict_grid(images).shape == (2, 7, 7, 30)
    losses = model.loss(images, *pad_targets([target([[10, 20, 50, 60]], [3]), target([], [])]))
    assert set(losses) == {"coord", "object", "no_object", "class"}
    assert all(loss.dtype == torch.float32 and loss.dim() == 0 for loss in losses.values())
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for detection in detections:
        assert detection["boxes"].shape[1] == 4 and detection["labels"].dtype == torch.int64
        assert len(detection["boxes"]) == len(detection["scores"])
    assert model.decays_weights_only   # darknet decays no bias nor batch-norm parameter


def test_loss_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    model = build_yolo("tiny")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.loss(torch.rand(2, 3, 112, 112),
                            *pad_targets([target([[10, 20, 50, 60]], [3])] * 2))
    assert all(loss.dtype == torch.float32 for loss in losses.values())


@pytest.mark.parametrize("arguments, message", [
    (dict(backbone="yolov8"), "unknown YOLO backbone"),
    (dict(backbone="darknet", image_size=416), "takes 448x448"),
    (dict(backbone="tiny", image_size=448), "takes 112x112"),
    (dict(backbone="tiny", dropout=1.0), "dropout"),
    (dict(backbone="tiny", num_classes=0), "num_classes"),
])
def test_build_yolo_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_yolo(**arguments)


def test_resnet50_backbone_loads_imagenet_weights(tmp_path):
    # torchvision's ResNet-50 state dict, tensor i filled with i + 1 so every copy is traceable
    imagenet = torchvision.models.resnet50(weights=None).state_dict()
    imagenet = {name: torch.full_like(tensor, index + 1)
                for index, (name, tensor) in enumerate(imagenet.items())}
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(imagenet, path)
    model = build_yolo("resnet50", hidden=8)   # a narrow fc1: the head is not what is tested
    assert model.imagenet_arch == "resnet50"
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    messages = []
    load_initial_weights(model, pretrained=False, weights_file=path, log=messages.append)

    after = model.state_dict()
    backbone = {model.imagenet_name(name): tensor for name, tensor in imagenet.items()
                if not name.startswith("fc.")}
    assert model.imagenet_name("fc.weight") is None and len(backbone) == 318   # 320 - fc
    assert set(backbone) == {name for name in after if name.startswith("backbone.")}
    for name, tensor in after.items():
        expected = backbone.get(name, before[name])
        assert torch.equal(tensor, expected), name
    assert messages[0].startswith(f"initialised 318 of {len(after)} tensors")


def test_vgg16_backbone_names():
    with torch.device("meta"):
        imagenet = torchvision.models.vgg16(weights=None).state_dict()
        model = build_yolo("vgg16")
    assert model.imagenet_arch == "vgg16"
    assert model.imagenet_name("features.28.bias") == "backbone.28.bias"
    assert model.imagenet_name("classifier.0.weight") is None
    own = model.state_dict()
    mapped = {model.imagenet_name(name): tensor.shape for name, tensor in imagenet.items()
              if name.startswith("features.")}
    assert len(mapped) == 26   # 13 convolutions, weight and bias
    assert mapped == {name: tensor.shape for name, tensor in own.items()
                      if name.startswith("backbone.")}


def test_darknet_and_tiny_have_no_imagenet_weights():
    with torch.device("meta"):
        for backbone in ("darknet", "tiny"):
            model = build_yolo(backbone)
            assert model.imagenet_arch is None
            assert model.imagenet_name("conv1.weight") is None


def test_encode_targets_by_hand():
    # 448 px, 64 px cells. Centre (150, 200): column 2 (150 / 64 = 2.34375), row 3 (3.125);
    # width 112 / 448 = 0.25 (sqrt 0.5), height 40.32 / 448 = 0.09 (sqrt 0.3). The second
    # image has no box: its row of the padded batch is all padding
    encoded = encode([target([[94, 179.84, 206, 220.16]], [4]), target([], [])])
    assert encoded.shape == (2, 7, 7, 25)
    expected = torch.zeros(25)
    expected[:5] = torch.tensor([0.34375, 0.125, 0.5, 0.3, 1.0])
    expected[5 + 4] = 1
    assert torch.allclose(encoded[0, 3, 2], expected, atol=1e-5)
    encoded[0, 3, 2] = 0
    assert not encoded.any()   # every other cell empty, the padding included


def test_encode_then_decode_gives_the_boxes_back():
    generator = torch.Generator().manual_seed(0)
    cells = torch.randperm(49, generator=generator)[:12]   # 12 boxes in distinct cells
    corners = torch.stack([cells % 7, cells // 7], 1)   # (column, row)
    centres = (corners + torch.rand(12, 2, generator=generator)) * 64
    sizes = torch.rand(12, 2, generator=generator) * 300 + 1
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1)
    labels = torch.randint(0, 20, (12,), generator=generator)
    encoded = encode_targets(boxes[None], labels[None], 7, 448, 20)

    decoded, objects, classes = decode_grid(encoded, 448, boxes_per_cell=1)
    occupied = objects[0, :, :, 0] == 1
    order = torch.argsort(cells)   # decoded boxes come in row-major cell order
    assert occupied.sum() == 12
    assert torch.allclose(decoded[0, :, :, 0][occupied], boxes[order], atol=1e-3)
    assert torch.equal(classes[0][occupied].argmax(1), labels[order])


def test_a_shared_cell_goes_to_the_first_listed_object_so_each_gets_its_turn():
    # two objects centred in cell (0, 0) (centre (50, 50), 64 px cells), the large one of label
    # 1, the small one of label 2, and two padding boxes (zeros, centre (0, 0): cell (0, 0)
    # too), listed in a random order per image as the data pipeline lists them, each image's
    # from a generator of its own seed
    small, large, padding = [40, 40, 60, 60], [10, 20, 90, 80], [0, 0, 0, 0]
    entries = [(large, 1), (small, 2), (padding, -1), (padding, -1)]
    orders = [torch.randperm(4, generator=torch.Generator().manual_seed(seed))
              for seed in range(16)]
    boxes = torch.tensor([[entries[k][0] for k in order] for order in orders], dtype=torch.float)
    labels = torch.tensor([[entries[k][1] for k in order] for order in orders])
    encoded = encode_targets(boxes, labels, 7, 448, 20)

    first_listed = torch.stack([row[row >= 0][0] for row in labels])
    winners = encoded[:, 0, 0, 5:].argmax(-1)
    assert torch.equal(winners, first_listed)            # darknet's rule, padding never wins
    assert set(winners.tolist()) == {1, 2}               # over the seeds, each has its turn
    assert (labels[:, 0] == -1).any()                    # padding came first in some images
    small_wins = winners == 2
    assert torch.allclose(encoded[small_wins, 0, 0, 2], torch.tensor(math.sqrt(20 / 448)))
    assert torch.allclose(encoded[~small_wins, 0, 0, 2], torch.tensor(math.sqrt(80 / 448)))
    assert (encoded[..., 4].sum((1, 2)) == 1).all()     # one object cell per image


def test_padding_is_never_a_target():
    # padding anywhere, with any coordinates: only labels say what is padding
    boxes = torch.tensor([[[100.0, 100, 300, 300], [5, 5, 60, 60]], [[0, 0, 0, 0], [9, 9, 9, 9]]])
    labels = torch.tensor([[-1, 7], [-1, -1]])
    encoded = encode_targets(boxes, labels, 7, 448, 20)
    assert encoded[0, 0, 0, 5:].argmax() == 7 and encoded[0, 0, 0, 4] == 1
    encoded[0, 0, 0] = 0
    assert not encoded.any()


def perfect_prediction(encoded, generator):
    """Predictions whose first predictor is the encoded box with confidence 1 where an object
    is (its IoU with itself), whose second is a point at the cell's corner (IoU 0) with
    confidence 0, whose class probabilities are the one-hot classes where an object is and
    noise elsewhere (ignored by the loss)."""
    batch, cells = encoded.shape[:2]
    grid = torch.zeros(batch, cells, cells, 30)
    grid[..., :5] = encoded[..., :5]
    grid[..., 10:] = torch.where(encoded[..., 4:5] == 1, encoded[..., 5:],
                                 torch.rand(batch, cells, cells, 20, generator=generator))
    return grid


def test_loss_is_zero_for_a_perfect_prediction():
    generator = torch.Generator().manual_seed(0)
    targets = [target([[10, 20, 200, 300], [300, 310, 440, 440]], [0, 19]), target([], []),
               target([[0, 0, 448, 448]], [5])]
    encoded = encode(targets)
    losses = yolo_loss(perfect_prediction(encoded, generator), encoded)
    assert all(loss.item() == 0 for loss in losses.values())


def hand_case():
    """One object in a 2x2 grid over a 100 px image, 2 classes (see the test for the values)."""
    encoded = encode([target([[10, 20, 46, 84]], [0])], 2, 100, 2)
    grid = torch.zeros(1, 2, 2, 12)
    grid[0, 1, 0, :5] = encoded[0, 1, 0, :5] + torch.tensor([0.18, 0, 0, 0, -0.5])
    grid[0, 1, 0, 5:10] = torch.tensor([0.0, 0.0, 0.1, 0.1, 0.3])
    grid[0, 1, 0, 10:] = torch.tensor([0.7, 0.1])
    grid[0, 0, 0, 4], grid[0, 0, 0, 9] = 0.2, 0.4
    grid[0, 0, 1, 10:] = 0.9   # class probabilities of an empty cell: no loss
    return encoded, grid


def test_loss_by_hand():
    encoded, grid = hand_case()
    # box (10, 20, 46, 84): centre (28, 52) -> cell row 1, column 0 (50 px cells), offsets
    # (0.56, 0.04), sqrt(w) = sqrt(0.36) = 0.6, sqrt(h) = sqrt(0.64) = 0.8
    assert torch.allclose(encoded[0, 1, 0, :5], torch.tensor([0.56, 0.04, 0.6, 0.8, 1.0]))
    losses = yolo_loss(grid, encoded)
    # predictor 0: x off by 0.18 cell = 9 px -> (19, 20, 55, 84): IoU 27*64 / (45*64) = 0.6;
    # predictor 1: a 1 px box at (0, 50), IoU 0 -> predictor 0 is responsible. Each squared
    # error is halved (darknet's convention):
    # coord     5 * 0.18^2 / 2                      = 0.081
    # object    (0.5 - 0.6)^2 / 2                   = 0.005
    # no_object 0.5 * (0.3^2 + 0.2^2 + 0.4^2) / 2   = 0.0725
    # class     ((0.7 - 1)^2 + (0.1 - 0)^2) / 2     = 0.05
    expected = {"coord": 0.081, "object": 0.005, "no_object": 0.0725, "class": 0.05}
    assert {name: loss.item() for name, loss in losses.items()} == pytest.approx(expected)


def test_the_loss_gradient_is_darknets_delta():
    # darknet's forward_detection_layer (src/detection_layer.c) sets, per output o of target t,
    # delta = scale * (t - o), and the update adds learning_rate / batch times the deltas
    # summed over the batch: a loss averaged per image steps alike at the same rate when its
    # gradient is -delta / B. Batch of 2: the hand case and an image with no object.
    encoded, grid = hand_case()
    empty = torch.zeros(1, 2, 2, 12)
    empty[0, 0, 1, 4], empty[0, 1, 1, 9], empty[0, 1, 0, 10] = 0.6, -0.2, 0.8
    grid = torch.cat([grid, empty]).requires_grad_()
    encoded = torch.cat([encoded, torch.zeros_like(encoded)])
    sum(yolo_loss(grid, encoded).values()).backward()

    delta = torch.zeros(2, 2, 2, 12)
    delta[0, 1, 0, 0] = 5 * (0.56 - 0.74)      # coord_scale * (x - x'), predictor 0
    delta[0, 1, 0, 4] = 1 * (0.6 - 0.5)        # object_scale * (IoU - confidence) (rescore)
    delta[0, 1, 0, 9] = 0.5 * (0 - 0.3)        # noobject_scale * (0 - confidence), predictor 1
    delta[0, 1, 0, 10:] = torch.tensor([1 - 0.7, 0 - 0.1])   # class_scale * (t - p)
    delta[0, 0, 0, 4], delta[0, 0, 0, 9] = 0.5 * -0.2, 0.5 * -0.4   # an empty cell
    delta[1, 0, 1, 4], delta[1, 1, 1, 9] = 0.5 * -0.6, 0.5 * 0.2    # no class delta there
    assert torch.allclose(grid.grad, -delta / 2, atol=1e-6)


def test_the_predictor_with_the_higher_iou_is_responsible():
    encoded, grid = hand_case()
    # predictor 1 becomes the truth shifted by 0.1 cell (5 px): IoU 31 / 41 > 0.6
    grid[0, 1, 0, 5:10] = encoded[0, 1, 0, :5] + torch.tensor([0.1, 0, 0, 0, -0.5])
    losses = yolo_loss(grid, encoded)
    assert losses["coord"].item() == pytest.approx(5 * 0.1 ** 2 / 2)
    assert losses["object"].item() == pytest.approx((0.5 - 31 / 41) ** 2 / 2)
    # predictor 0 (confidence 0.5) now counts as no object: 0.5 * (0.5^2 + 0.2^2 + 0.4^2) / 2
    assert losses["no_object"].item() == pytest.approx(0.1125)


def test_without_overlap_the_predictor_of_least_rmse_is_responsible():
    # 2x2 grid over 100 px, 50 px cells: the object (20, 70, 30, 80), centre (25, 75) in cell
    # row 1, column 0 at offsets (0.5, 0.5), 10 x 10 px: w = h = 0.1 of the image
    encoded = encode([target([[20, 70, 30, 80]], [1])], 2, 100, 2)
    grid = torch.zeros(1, 2, 2, 12)
    # predictor 0: 2 x 2 px at (25, 68.5), i.e. (24, 67.5, 26, 69.5), just above the object;
    # predictor 1: 10 x 10 px at (36, 75), i.e. (31, 70, 41, 80), just right of it. Neither
    # overlaps it. darknet's box_rmse (centre offsets / 2 cells, sizes w and h):
    #   predictor 0: sqrt(0.065^2 + 0.08^2 + 0.08^2) = sqrt(0.017025) = 0.130
    #   predictor 1: sqrt(0.11^2)                                      = 0.110   <- responsible
    # while squared corner distances (image units) would choose predictor 0:
    #   predictor 0: 0.04^2 + 0.025^2 + 0.04^2 + 0.105^2 = 0.01485
    #   predictor 1: 0.11^2 + 0 + 0.11^2 + 0              = 0.0242
    grid[0, 1, 0, :5] = torch.tensor([0.5, 0.37, math.sqrt(0.02), math.sqrt(0.02), 0.4])
    grid[0, 1, 0, 5:10] = torch.tensor([0.72, 0.5, math.sqrt(0.1), math.sqrt(0.1), 0.3])
    grid[0, 1, 0, 11] = 1.0
    grid.requires_grad_()
    losses = yolo_loss(grid, encoded)
    assert losses["coord"].item() == pytest.approx(5 * 0.22 ** 2 / 2)   # x off by 0.22 cell
    assert losses["object"].item() == pytest.approx(0.3 ** 2 / 2)       # target IoU 0
    assert losses["no_object"].item() == pytest.approx(0.5 * 0.4 ** 2 / 2)
    sum(losses.values()).backward()
    assert grid.grad[0, 1, 0, 5] != 0 and not grid.grad[0, 1, 0, :4].any()


def test_loss_is_finite_for_degenerate_inputs():
    torch.manual_seed(0)
    model = build_yolo("tiny")
    targets = [   # a zero-size box, the whole image, a box in the corner; no box; zero-size
        # boxes on the border (the first with its centre on the image's far corner)
        target([[30, 30, 30, 30], [0, 0, 112, 112], [100, 100, 112, 112]], [0, 1, 2]),
        target([], []),
        target([[112, 112, 112, 112], [0, 50, 0, 60]], [3, 4]),
    ]
    losses = model.loss(torch.rand(3, 3, 112, 112), *pad_targets(targets))
    sum(losses.values()).backward()
    assert all(torch.isfinite(loss) for loss in losses.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    # raw predictions with negative sqrt(w), sqrt(h) and confidences, and an all-empty batch
    grid = (torch.randn(3, 7, 7, 30) * 3 - 2).requires_grad_()
    for encoded in (encode(targets, 7, 112), encode([target([], [])], 7, 112)):
        losses = yolo_loss(grid[:len(encoded)], encoded)
        sum(losses.values()).backward()
        assert all(torch.isfinite(loss) for loss in losses.values())
        assert torch.isfinite(grid.grad).all()


def test_the_training_loss_needs_no_host_sync():
    # on the meta device tensors have no values: .item(), branching on a value or a shape that
    # depends on the data (boolean masks, nonzero) raise, as they would sync a GPU each step
    with torch.device("meta"):
        model = build_yolo("tiny")
        boxes = torch.rand(2, 3, 4)
        labels = torch.zeros(2, 3, dtype=torch.int64)
        losses = model.loss(torch.rand(2, 3, 112, 112), boxes, labels)
        sum(losses.values()).backward()
    assert model.fc2.weight.grad.shape == model.fc2.weight.shape
    with pytest.raises(NotImplementedError):   # the check has teeth: inference selects by value
        with torch.device("meta"):
            model.eval()(torch.rand(2, 3, 112, 112))


def test_loss_does_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    model = build_yolo("tiny").eval()   # eval: no dropout, batch norm with fixed statistics
    images = torch.rand(2, 3, 112, 112)
    targets = [target([[10, 20, 50, 60], [60, 60, 100, 110]], [3, 8]), target([], [])]
    with torch.no_grad():
        once = model.loss(images, *pad_targets(targets))
        twice = model.loss(torch.cat([images, images]), *pad_targets(targets + targets))
    assert sum(once.values()).item() > 0
    for name in once:
        assert twice[name].item() == pytest.approx(once[name].item(), rel=1e-5)


def put_box(grid, row, column, predictor, centre, size, confidence, label, image_size=448):
    """Set a predictor of cell (row, column) to a size x size box at centre, and the cell's
    class probabilities to one-hot label."""
    cell = image_size / grid.shape[1]
    x, y = centre[0] / cell - column, centre[1] / cell - row
    grid[0, row, column, 5 * predictor:5 * predictor + 5] = torch.tensor(
        [x, y, math.sqrt(size / image_size), math.sqrt(size / image_size), confidence])
    grid[0, row, column, 10:] = torch.nn.functional.one_hot(torch.tensor(label), 20)


def test_inference_suppresses_overlaps_of_one_class_only():
    grid = torch.zeros(1, 7, 7, 30)
    put_box(grid, 3, 3, 0, (224, 224), 200, 0.9, label=5)
    put_box(grid, 3, 4, 0, (258, 224), 200, 0.6, label=5)   # IoU 166 / 234 = 0.71: suppressed
    put_box(grid, 4, 3, 1, (224, 258), 200, 0.8, label=7)   # IoU 0.71 too, but another class
    detections = detections_from_grid(grid, 448)[0]
    assert detections["labels"].tolist() == [5, 7]
    assert detections["scores"].tolist() == pytest.approx([0.9, 0.8])
    assert torch.allclose(detections["boxes"], torch.tensor([[124.0, 124, 324, 324],
                                                             [124, 158, 324, 358]]), atol=1e-3)


def test_inference_threshold_clipping_and_negative_outputs():
    grid = torch.zeros(1, 7, 7, 30)
    put_box(grid, 0, 0, 0, (10, 10), 100, 0.1, label=2)
    grid[0, 0, 0, 10 + 2] = 0.009                            # score 0.0009 < 0.001: dropped
    put_box(grid, 6, 6, 0, (440, 440), 100, 0.1, label=3)
    grid[0, 6, 6, 10 + 3] = 0.011                            # score 0.0011: kept
    grid[0, 6, 6, 2:4] *= -1                                 # sqrt(w), sqrt(h) squared as they are
    put_box(grid, 3, 3, 0, (224, 224), 100, -0.5, label=4)
    grid[0, 3, 3, 10 + 4] = -0.5                             # two negatives: no detection
    detections = detections_from_grid(grid, 448)[0]
    assert SCORE_THRESHOLD == 0.001   # darknet's validate_yolo
    assert detections["labels"].tolist() == [3]
    assert detections["scores"].tolist() == pytest.approx([0.0011])
    assert torch.allclose(detections["boxes"], torch.tensor([[390.0, 390, 448, 448]]))   # clipped


def test_inference_keeps_every_detection_above_the_threshold():
    generator = torch.Generator().manual_seed(0)
    grid = torch.zeros(1, 7, 7, 30)
    grid[..., [0, 5]] = torch.tensor([0.25, 0.75])          # two 1 px boxes 32 px apart per cell
    grid[..., [1, 6]] = 0.5
    grid[..., [2, 3, 7, 8]] = 0.05
    grid[..., [4, 9]] = torch.rand(1, 7, 7, 2, generator=generator) * 0.9 + 0.1
    grid[..., 10:] = torch.rand(1, 7, 7, 20, generator=generator) * 0.9 + 0.1
    # 98 distinct boxes x 20 classes = 1960 detections survive the suppression: no cap (darknet's
    # validate_yolo has none), highest score first
    scores = (grid[..., [4, 9], None] * grid[..., None, 10:]).flatten()
    detections = detections_from_grid(grid, 448)[0]
    assert len(detections["scores"]) == 1960
    assert torch.allclose(detections["scores"], scores.sort(descending=True).values)


def test_the_paper_recipe_is_one_run_of_600_epochs():
    args = train_yolo.parse_args([])
    assert train_yolo.parse_args(["--epochs", "600"]).out == args.out == "runs/voc2007/yolo"
    assert (args.epochs, args.batch_size, args.lr) == (600, 64, 1e-2)
    assert args.milestones == [333, 467]   # 75/135 and 105/135 of 600 epochs
    # darknet's burn-in (cfg/yolov1.cfg): a tenth of the peak rising to it over 600 iterations
    assert (args.warmup_iters, args.warmup_lr, args.warmup_shape) == (600, 1e-3, "linear")


@pytest.mark.parametrize("argv, hidden", [
    ([], 4096), (["--recipe", "report"], 496), (["--model", "tiny"], 256),
    (["--recipe", "report", "--model", "tiny"], 256), (["--model", "darknet", "--hidden", "8"], 8),
])
def test_the_hidden_width_follows_the_recipe(argv, hidden):
    args = train_yolo.parse_args(argv)
    assert args.hidden == hidden
    with torch.device("meta"):
        model = train_yolo.build_model(args)
    assert model.fc1.out_features == hidden
    if argv == ["--recipe", "report"]:   # the tutorial's Darknet, parameter for parameter
        assert count(model) == 85_787_534


def generated_scenes(count, size, generator):
    """Noise images with three coloured rectangles each (colour = class), their centres in
    distinct cells of the 7x7 grid."""
    colours = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    images = torch.rand(count, 3, size, size, generator=generator) * 0.5
    targets = []
    for image in images:
        boxes, labels, cells = [], [], set()
        while len(boxes) < 3:
            width, height = torch.randint(16, 48, (2,), generator=generator).tolist()
            left = torch.randint(0, size - width, (1,), generator=generator).item()
            top = torch.randint(0, size - height, (1,), generator=generator).item()
            cell = ((top + height // 2) * 7 // size, (left + width // 2) * 7 // size)
            if cell in cells:
                continue
            cells.add(cell)
            label = torch.randint(0, 4, (1,), generator=generator).item()
            image[:, top:top + height, left:left + width] = colours[label].view(3, 1, 1)
            boxes.append([left, top, left + width, top + height])
            labels.append(label)
        targets.append(target(boxes, labels))
    return images, targets


def test_tiny_yolo_overfits_a_few_images():
    torch.manual_seed(0)
    images, targets = generated_scenes(8, 112, torch.Generator().manual_seed(0))
    model = build_yolo("tiny", dropout=0.0)   # dropout would only slow the memorising down
    # mAP 1.0 from about step 20
    assert memorised_map(model, images, targets, 100)["map"] >= 0.9
