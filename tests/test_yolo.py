"""YOLOv1 (voc2007/yolo.py): the networks' shapes and sizes, ImageNet weights for the
backbones, target encoding, the loss against hand-computed values, inference, and a tiny model
overfitting a few generated images."""
import math

import pytest
import torch
import torchvision

from common.nets import load_initial_weights
from conftest import memorised_map
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
    losses = model(images, [target([[10, 20, 50, 60]], [3]), target([], [])])
    assert set(losses) == {"coord", "object", "no_object", "class"}
    assert all(loss.dtype == torch.float32 and loss.dim() == 0 for loss in losses.values())
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for detection in detections:
        assert detection["boxes"].shape[1] == 4 and detection["labels"].dtype == torch.int64
        assert len(detection["boxes"]) == len(detection["scores"]) <= 100


def test_loss_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    model = build_yolo("tiny")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(torch.rand(2, 3, 112, 112), [target([[10, 20, 50, 60]], [3])] * 2)
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
    # width 112 / 448 = 0.25 (sqrt 0.5), height 40.32 / 448 = 0.09 (sqrt 0.3)
    encoded = encode_targets([target([[94, 179.84, 206, 220.16]], [4])], 7, 448, 20)
    assert encoded.shape == (1, 7, 7, 25)
    expected = torch.zeros(25)
    expected[:5] = torch.tensor([0.34375, 0.125, 0.5, 0.3, 1.0])
    expected[5 + 4] = 1
    assert torch.allclose(encoded[0, 3, 2], expected, atol=1e-5)
    encoded[0, 3, 2] = 0
    assert not encoded.any()   # every other cell empty


def test_encode_then_decode_gives_the_boxes_back():
    generator = torch.Generator().manual_seed(0)
    cells = torch.randperm(49, generator=generator)[:12]   # 12 boxes in distinct cells
    corners = torch.stack([cells % 7, cells // 7], 1)   # (column, row)
    centres = (corners + torch.rand(12, 2, generator=generator)) * 64
    sizes = torch.rand(12, 2, generator=generator) * 300 + 1
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1)
    labels = torch.randint(0, 20, (12,), generator=generator)
    encoded = encode_targets([{"boxes": boxes, "labels": labels}], 7, 448, 20)

    decoded, objects, classes = decode_grid(encoded, 448, boxes_per_cell=1)
    occupied = objects[0, :, :, 0] == 1
    order = torch.argsort(cells)   # decoded boxes come in row-major cell order
    assert occupied.sum() == 12
    assert torch.allclose(decoded[0, :, :, 0][occupied], boxes[order], atol=1e-3)
    assert torch.equal(classes[0][occupied].argmax(1), labels[order])


@pytest.mark.parametrize("first_larger", [True, False])
def test_a_cell_keeps_the_larger_of_two_objects(first_larger):
    small, large = [40, 40, 60, 60], [10, 20, 90, 80]   # both centres (50, 50): cell (0, 0)
    boxes, labels = ([large, small], [1, 2]) if first_larger else ([small, large], [2, 1])
    encoded = encode_targets([target(boxes, labels)], 7, 448, 20)
    assert encoded[0, 0, 0, 5:].argmax() == 1   # the large one's label
    assert encoded[0, 0, 0, 2] == pytest.approx(math.sqrt(80 / 448))
    assert encoded[..., 4].sum() == 1


def test_a_cell_keeps_the_last_of_two_equal_objects():
    encoded = encode_targets([target([[40, 40, 60, 60], [42, 38, 62, 58]], [2, 7])], 7, 448, 20)
    assert encoded[0, 0, 0, 5:].argmax() == 7


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
    encoded = encode_targets(targets, 7, 448, 20)
    losses = yolo_loss(perfect_prediction(encoded, generator), encoded)
    assert all(loss.item() == 0 for loss in losses.values())


def hand_case():
    """One object in a 2x2 grid over a 100 px image, 2 classes (see the test for the values)."""
    encoded = encode_targets([target([[10, 20, 46, 84]], [0])], 2, 100, 2)
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
    # predictor 1: a 1 px box at (0, 50), IoU 0 -> predictor 0 is responsible
    # coord     5 * 0.18^2                          = 0.162
    # object    (0.5 - 0.6)^2                       = 0.01
    # no_object 0.5 * (0.3^2 + 0.2^2 + 0.4^2)       = 0.145
    # class     (0.7 - 1)^2 + (0.1 - 0)^2           = 0.1
    expected = {"coord": 0.162, "object": 0.01, "no_object": 0.145, "class": 0.1}
    assert {name: loss.item() for name, loss in losses.items()} == pytest.approx(expected)


def test_the_predictor_with_the_higher_iou_is_responsible():
    encoded, grid = hand_case()
    # predictor 1 becomes the truth shifted by 0.1 cell (5 px): IoU 31 / 41 > 0.6
    grid[0, 1, 0, 5:10] = encoded[0, 1, 0, :5] + torch.tensor([0.1, 0, 0, 0, -0.5])
    losses = yolo_loss(grid, encoded)
    assert losses["coord"].item() == pytest.approx(5 * 0.1 ** 2)
    assert losses["object"].item() == pytest.approx((0.5 - 31 / 41) ** 2)
    # predictor 0 (confidence 0.5) now counts as no object: 0.5 * (0.5^2 + 0.2^2 + 0.4^2)
    assert losses["no_object"].item() == pytest.approx(0.225)


def test_without_overlap_the_nearest_predictor_is_responsible():
    encoded, grid = hand_case()
    # truth (10, 20, 46, 84); predictor 0: a 1 px box at (0, 50); predictor 1: a 9 px box at
    # (5, 52), (0.5, 47.5, 9.5, 56.5), nearer (squared corner distances 0.29 against 0.42 in
    # image units), neither overlapping it
    grid[0, 1, 0, :4] = torch.tensor([0.0, 0.0, 0.1, 0.1])
    grid[0, 1, 0, 5:9] = torch.tensor([0.1, encoded[0, 1, 0, 1], 0.3, 0.3])
    losses = yolo_loss(grid, encoded)
    # predictor 1's squared error: (0.1 - 0.56)^2 + 0 + (0.3 - 0.6)^2 + (0.3 - 0.8)^2 = 0.5516
    assert losses["coord"].item() == pytest.approx(5 * 0.5516)
    assert losses["object"].item() == pytest.approx(0.3 ** 2)   # its confidence, target IoU 0


def test_loss_is_finite_for_degenerate_inputs():
    torch.manual_seed(0)
    model = build_yolo("tiny")
    targets = [   # a zero-size box, the whole image, a box in the corner; no box; zero-size
        # boxes on the border (the first with its centre on the image's far corner)
        target([[30, 30, 30, 30], [0, 0, 112, 112], [100, 100, 112, 112]], [0, 1, 2]),
        target([], []),
        target([[112, 112, 112, 112], [0, 50, 0, 60]], [3, 4]),
    ]
    losses = model(torch.rand(3, 3, 112, 112), targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(loss) for loss in losses.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    # raw predictions with negative sqrt(w), sqrt(h) and confidences, and an all-empty batch
    grid = (torch.randn(3, 7, 7, 30) * 3 - 2).requires_grad_()
    all_empty = [target([], [])]
    for encoded in (encode_targets(targets, 7, 112, 20), encode_targets(all_empty, 7, 112, 20)):
        losses = yolo_loss(grid[:len(encoded)], encoded)
        sum(losses.values()).backward()
        assert all(torch.isfinite(loss) for loss in losses.values())
        assert torch.isfinite(grid.grad).all()


def test_training_forward_needs_no_host_sync():
    # on the meta device tensors have no values: .item(), branching on a value or a shape that
    # depends on the data (boolean masks, nonzero) raise, as they would sync a GPU each step
    with torch.device("meta"):
        model = build_yolo("tiny")
        targets = [{"boxes": torch.rand(3, 4), "labels": torch.zeros(3, dtype=torch.int64)},
                   {"boxes": torch.rand(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
        losses = model(torch.rand(2, 3, 112, 112), targets)
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
        once = model(images, targets)
        twice = model(torch.cat([images, images]), targets + targets)
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
    grid[0, 0, 0, 10 + 2] = 0.04                             # score 0.004 < 0.005: dropped
    put_box(grid, 6, 6, 0, (440, 440), 100, 0.1, label=3)
    grid[0, 6, 6, 10 + 3] = 0.06                             # score 0.006: kept
    put_box(grid, 3, 3, 0, (224, 224), 100, -0.5, label=4)
    grid[0, 3, 3, 10 + 4] = -0.5                             # two negatives: no detection
    detections = detections_from_grid(grid, 448)[0]
    assert SCORE_THRESHOLD == 0.005
    assert detections["labels"].tolist() == [3]
    assert detections["scores"].tolist() == pytest.approx([0.006])
    assert torch.allclose(detections["boxes"], torch.tensor([[390.0, 390, 448, 448]]))   # clipped


def test_inference_keeps_the_100_highest_scores():
    generator = torch.Generator().manual_seed(0)
    grid = torch.zeros(1, 7, 7, 30)
    grid[..., [0, 5]] = torch.tensor([0.25, 0.75])          # two 1 px boxes 32 px apart per cell
    grid[..., [1, 6]] = 0.5
    grid[..., [2, 3, 7, 8]] = 0.05
    grid[..., [4, 9]] = torch.rand(1, 7, 7, 2, generator=generator) * 0.9 + 0.1
    grid[..., 10:] = torch.rand(1, 7, 7, 20, generator=generator) * 0.9 + 0.1
    # 98 distinct boxes x 20 classes = 1960 detections survive the suppression
    scores = (grid[..., [4, 9], None] * grid[..., None, 10:]).flatten()
    detections = detections_from_grid(grid, 448)[0]
    assert len(detections["scores"]) == 100
    assert torch.allclose(detections["scores"], scores.sort(descending=True).values[:100])


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
