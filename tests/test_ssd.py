"""SSD300 in the paper's VOC configuration (voc2007/ssd.py): default boxes, settings, output
formats, the batched loss against torchvision's, the label shift, the ImageNet weight mapping,
and a tiny SSD that overfits."""
import math

import pytest
import torch
from torchvision.models import vgg16
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

from common.errors import UserError
from common.nets import load_initial_weights
from conftest import memorised_map
from voc2007.data import pad_targets
from voc2007.ssd import CONFIGS, build_ssd

# torchvision's COCO ssd300_vgg16 (91 classes) has 35,641,826 parameters; 70 classes fewer
# remove 70 * 133,662 from the classification head (sum over the six maps of anchors x
# (9 x channels + 1)).
SSD300_PARAMETERS = 35_641_826 - 70 * 133_662           # 26,285,486
# backbone 448 + 4,640 + 18,496 + 2 x 36,928; per map (4 boxes) a 64 -> 4 x 21 classification
# and a 64 -> 4 x 4 regression 3x3 convolution
TINY_PARAMETERS = 97_440 + 3 * (84 * 577) + 3 * (16 * 577)   # 270,540


def count(model):
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(scope="module")
def ssd300():
    torch.manual_seed(0)
    return build_ssd("ssd300", num_classes=20)


def test_parameter_counts(ssd300):
    assert count(ssd300) == SSD300_PARAMETERS == 26_285_486
    assert count(build_ssd("tiny", num_classes=20)) == TINY_PARAMETERS == 270_540


def test_configs_and_bad_arguments():
    assert set(CONFIGS) == {"ssd300", "tiny"}
    with pytest.raises(ValueError, match="ssd512"):
        build_ssd("ssd512")
    for bad in (0, -1, "20"):
        with pytest.raises(ValueError, match="num_classes"):
            build_ssd("tiny", num_classes=bad)


def test_paper_settings(ssd300):
    model = ssd300
    assert (model.image_size, model.num_classes, model.imagenet_arch) == (300, 20, "vgg16_features")
    assert model.transform.fixed_size == (300, 300)
    # Caffe's VGG-16 input: 0-255 pixels less the means R 123, G 117, B 104
    assert [round(value * 255, 4) for value in model.transform.image_mean] == [123, 117, 104]
    assert [round(value * 255, 4) for value in model.transform.image_std] == [1, 1, 1]
    assert model.proposal_matcher.high_threshold == model.proposal_matcher.low_threshold == 0.5
    assert model.neg_to_pos_ratio == 3
    assert model.box_coder.weights == (10.0, 10.0, 5.0, 5.0)   # variances 0.1, 0.1, 0.2, 0.2
    assert (model.score_thresh, model.nms_thresh) == (0.01, 0.45)
    assert (model.topk_candidates, model.detections_per_img) == (400, 200)
    backbone = model.backbone
    assert torch.equal(backbone.scale_weight, torch.full((512,), 20.0))   # conv4_3 L2 norm
    assert backbone.features[16].ceil_mode                                # pool3: 75 -> 38
    pool5, fc6, fc7 = backbone.extra[0][7][0], backbone.extra[0][7][1], backbone.extra[0][7][3]
    assert (pool5.kernel_size, pool5.stride, pool5.padding) == (3, 1, 1)
    assert (fc6.out_channels, fc6.kernel_size, fc6.dilation) == (1024, (3, 3), (6, 6))
    assert (fc7.out_channels, fc7.kernel_size) == (1024, (1, 1))
    assert all(parameter.requires_grad for parameter in model.parameters())   # nothing frozen


def default_boxes(model):
    """torchvision's default boxes (A, 4) of an SSD300 or tiny SSD, from its generator."""
    size = model.image_size
    sides = {300: (38, 19, 10, 5, 3, 1), 64: (8, 4, 2)}[size]
    image_list = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
    return model.anchor_generator(image_list, [torch.zeros(1, 1, side, side) for side in sides])[0]


def test_default_boxes_voc_scales(ssd300):
    generator = ssd300.anchor_generator
    assert generator.scales == [0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05]
    assert generator.aspect_ratios == [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    assert generator.steps == [8, 16, 32, 64, 100, 300]
    assert generator.num_anchors_per_location() == [4, 6, 6, 6, 4, 4]
    boxes = default_boxes(ssd300)
    assert boxes.shape == (8732, 4)   # 38^2*4 + 19^2*6 + 10^2*6 + 5^2*6 + 3^2*4 + 4

    def around(centre, width, height):
        return [centre - width / 2, centre - height / 2, centre + width / 2, centre + height / 2]

    root2, root3 = math.sqrt(2), math.sqrt(3)
    expected = {
        0: around(4, 30, 30),                                     # conv4_3: 0.1 x 300, centre 8/2
        1: around(4, math.sqrt(0.1 * 0.2) * 300, math.sqrt(0.1 * 0.2) * 300),   # 42.43 px
        2: around(4, 30 * root2, 30 / root2),                     # aspect ratio 2
        3: around(4, 30 / root2, 30 * root2),                     # and 1/2
        5776: around(8, 60, 60),                                  # fc7: 0.2 x 300, centre 16/2
        5776 + 4: around(8, 60 * root3, 60 / root3),              # aspect ratio 3
        8728: around(150, 264, 264),                              # conv9_2: 0.88 x 300
        8729: around(150, math.sqrt(0.88 * 1.05) * 300, math.sqrt(0.88 * 1.05) * 300),
        8730: around(150, 264 * root2, 264 / root2),   # 373 px wide: not clipped, as in Caffe
    }
    for index, box in expected.items():
        assert boxes[index].tolist() == pytest.approx(box, abs=1e-3), index


def test_ssd300_training_and_eval_formats(ssd300):
    model = ssd300
    torch.manual_seed(1)
    images = torch.rand(2, 3, 300, 300)
    targets = [{"boxes": torch.tensor([[20.0, 30.0, 140.0, 200.0]]), "labels": torch.tensor([5])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    seen = {}
    hooks = [model.backbone.register_forward_hook(
                 lambda module, inputs, output: seen.update(maps=list(output.values()))),
             model.head.register_forward_hook(
                 lambda module, inputs, output: seen.update(head=output))]
    try:
        model.train()
        losses = model.loss(images, *pad_targets(targets))
        model.eval()
        with torch.no_grad():
            detections = model(images)
    finally:
        for hook in hooks:
            hook.remove()
    assert set(losses) == {"bbox_regression", "classification"}
    assert all(loss.dim() == 0 and torch.isfinite(loss) and loss > 0 for loss in losses.values())
    assert torch.equal(model.default_boxes, default_boxes(model))   # kept from the loss call
    assert "default_boxes" not in model.state_dict()
    assert [tuple(m.shape[1:]) for m in seen["maps"]] == [
        (512, 38, 38), (1024, 19, 19), (512, 10, 10), (256, 5, 5), (256, 3, 3), (256, 1, 1)]
    assert seen["head"]["bbox_regression"].shape == (2, 8732, 4)
    assert seen["head"]["cls_logits"].shape == (2, 8732, 21)
    assert len(detections) == 2
    for found in detections:
        count = len(found["scores"])
        assert 0 < count <= 200   # random weights: every class scores about 1/21 > 0.01
        assert found["boxes"].shape == (count, 4) and found["boxes"].dtype == torch.float32
        assert found["labels"].dtype == torch.int64
        assert 0 <= found["labels"].min() and found["labels"].max() <= 19
        assert found["boxes"].min() >= 0 and found["boxes"].max() <= 300
        assert (found["scores"] > 0.01).all()


def torchvision_loss(model, head_outputs, defaults, boxes, labels):
    """torchvision's own loss of padded targets: SSD.forward's matching, image by image, then
    SSD.compute_loss (with torchvision's labels, one higher)."""
    targets, matches = [], []
    for image_boxes, image_labels in zip(boxes, labels):
        real = image_labels >= 0
        targets.append({"boxes": image_boxes[real], "labels": image_labels[real] + 1})
        if real.any():
            matches.append(model.proposal_matcher(box_iou(image_boxes[real], defaults)))
        else:
            matches.append(torch.full((len(defaults),), -1))
    return model.compute_loss(targets, head_outputs, [defaults] * len(targets), matches)


def random_batch(generator, defaults, size, counts, most=12):
    """Padded targets for len(counts) images with counts[i] boxes each, padding scattered among
    the boxes and holding random coordinates; ties on purpose: a repeated box (another label)
    and a box equal to a default box in each image with three boxes or more."""
    batch = len(counts)
    corners = torch.rand(batch, most, 2, generator=generator) * size * 0.8
    extents = torch.rand(batch, most, 2, generator=generator) * size * 0.5 + 2
    boxes = torch.cat([corners, (corners + extents).clamp(max=size)], dim=2)
    labels = torch.randint(0, 20, (batch, most), generator=generator)
    for image, count in enumerate(counts):
        if count >= 3:
            boxes[image, 1] = boxes[image, 0]
            boxes[image, 2] = defaults[torch.randint(len(defaults), (), generator=generator)]
        padding = torch.randperm(most, generator=generator)[:most - count]
        labels[image, padding] = -1
    return boxes, labels


def random_head_outputs(generator, batch, defaults, classes=21):
    return {"bbox_regression": torch.randn(batch, defaults, 4, generator=generator),
            "cls_logits": 2 * torch.randn(batch, defaults, classes, generator=generator)}


@pytest.mark.parametrize("config", ["tiny", "ssd300"])
def test_batched_loss_equals_torchvision(config, request):
    """model.multibox_loss against torchvision's matching and compute_loss on random head
    outputs and targets: images with no box, one and many, repeated boxes, boxes equal to a
    default box, padding with coordinates. Loss terms to a relative 1e-5 (float32 sums in
    another order), their gradients to 1e-6."""
    model = request.getfixturevalue("ssd300") if config == "ssd300" else build_ssd("tiny")
    defaults = default_boxes(model)
    generator = torch.Generator().manual_seed(0)
    for seed in range(6):
        counts = [0, 1, 12, int(torch.randint(2, 12, (), generator=generator))]
        boxes, labels = random_batch(generator, defaults, model.image_size, counts)
        outputs = random_head_outputs(generator, len(counts), len(defaults))
        ours_inputs = {name: value.clone().requires_grad_() for name, value in outputs.items()}
        theirs_inputs = {name: value.clone().requires_grad_() for name, value in outputs.items()}
        ours = model.multibox_loss(ours_inputs, defaults, boxes, labels)
        theirs = torchvision_loss(model, theirs_inputs, defaults, boxes, labels)
        assert set(ours) == set(theirs)
        for name in theirs:
            assert ours[name].item() == pytest.approx(theirs[name].item(), rel=1e-5), (seed, name)
            assert ours[name].item() > 0
        sum(ours.values()).backward()
        sum(theirs.values()).backward()
        for name in outputs:
            torch.testing.assert_close(ours_inputs[name].grad, theirs_inputs[name].grad,
                                       rtol=0, atol=1e-6)


def test_batched_loss_ties_and_padding():
    """Equal classification losses everywhere (all logits 0: which background boxes are mined
    cannot change the sum), two boxes with the same best default box (the later one gets it, as
    in torchvision on the CPU), and padding: more columns of it, or padding holding a real box's
    coordinates, change nothing."""
    model = build_ssd("tiny", num_classes=20)
    defaults = default_boxes(model)
    boxes = torch.tensor([[[4.0, 4.0, 30.0, 30.0], [4.0, 4.0, 30.0, 30.0], [30.0, 30.0, 60, 50]],
                          [[10.0, 12.0, 40.0, 60.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    labels = torch.tensor([[3, 7, 19], [0, -1, -1]])
    outputs = {"bbox_regression": torch.zeros(2, len(defaults), 4),
               "cls_logits": torch.zeros(2, len(defaults), 21)}
    theirs = torchvision_loss(model, outputs, defaults, boxes, labels)
    variants = [(boxes, labels),
                (torch.cat([boxes, torch.zeros(2, 5, 4)], 1),
                 torch.cat([labels, torch.full((2, 5), -1)], 1)),
                (torch.cat([boxes, boxes[:, :1].expand(2, 3, 4)], 1),
                 torch.cat([labels, torch.full((2, 3), -1)], 1))]
    for variant_boxes, variant_labels in variants:
        ours = model.multibox_loss(outputs, defaults, variant_boxes, variant_labels)
        for name in theirs:
            assert ours[name].item() == pytest.approx(theirs[name].item(), rel=1e-6), name
    # the repeated box's best default box says torchvision's class 8 (our 7, the later box's
    # label): its loss is low if and only if it was given the later box
    shared = box_iou(boxes[0, :1], defaults).argmax()
    outputs["cls_logits"][0, shared, 8] = 5.0
    ours = model.multibox_loss(outputs, defaults, boxes, labels)
    theirs = torchvision_loss(model, outputs, defaults, boxes, labels)
    assert ours["classification"].item() == pytest.approx(theirs["classification"].item(),
                                                          rel=1e-6)
    swapped = model.multibox_loss(outputs, defaults, boxes, labels[:, [1, 0, 2]])
    assert swapped["classification"] > ours["classification"]


def test_loss_through_the_network_equals_torchvision(monkeypatch):
    """model.loss against torchvision's SSD.forward in training mode (its transform, backbone,
    head, default boxes, matching and loss) on the same images and targets; the default boxes
    are made once."""
    torch.manual_seed(0)
    model = build_ssd("tiny", num_classes=20).train()
    defaults = default_boxes(model)
    made = []
    make = model.anchor_generator.forward
    monkeypatch.setattr(model.anchor_generator, "forward",
                        lambda *args: made.append(1) or make(*args))
    generator = torch.Generator().manual_seed(1)
    for step in range(2):
        images = torch.rand(3, 3, 64, 64, generator=generator)
        boxes, labels = random_batch(generator, defaults, 64, [4, 0, 1])
        ours = model.loss(images, boxes, labels)
        assert len(made) == (step == 0)   # made by the first call, kept for the next
        targets = [{"boxes": image_boxes[image_labels >= 0],
                    "labels": image_labels[image_labels >= 0] + 1}
                   for image_boxes, image_labels in zip(boxes, labels)]
        theirs = SSD.forward(model, images, targets)
        made.clear()
        for name in theirs:
            assert ours[name].item() == pytest.approx(theirs[name].item(), rel=1e-5), name
    assert torch.equal(model.default_boxes, defaults)


def test_loss_needs_no_values_on_the_host():
    """On the meta device tensors have shapes but no values: .item(), a Python `if` on a
    tensor, boolean-mask indexing or nonzero fail there. The batched loss and its backward run
    (so they can be captured as a CUDA graph); torchvision's own loss does not."""
    model = build_ssd("tiny", num_classes=20).train().to("meta")
    images = torch.empty(2, 3, 64, 64, device="meta")
    boxes = torch.empty(2, 5, 4, device="meta")
    labels = torch.empty(2, 5, dtype=torch.int64, device="meta")
    losses = model.loss(images, boxes, labels)
    assert all(loss.shape == () and loss.device.type == "meta" for loss in losses.values())
    sum(losses.values()).backward()
    assert model.head.classification_head.module_list[0].weight.grad.device.type == "meta"
    outputs = random_head_outputs(torch.Generator(), 2, len(model.default_boxes))
    outputs = {name: value.to("meta") for name, value in outputs.items()}
    with pytest.raises((RuntimeError, NotImplementedError)):
        torchvision_loss(model, outputs, model.default_boxes, boxes, labels)


def test_labels_come_out_one_lower():
    torch.manual_seed(0)
    model = build_ssd("tiny", num_classes=20).eval()
    with torch.no_grad():   # every default box says torchvision's class 1 (ours 0) or 20 (19)
        for conv in model.head.classification_head.module_list:
            conv.weight.zero_()
            bias = conv.bias.view(-1, 21)
            bias.zero_()
            bias[:, 1], bias[:, 20] = 10.0, 9.0
        detections = model(torch.rand(2, 3, 64, 64))
    for found in detections:
        assert set(found["labels"].tolist()) == {0, 19}
        assert len(found["labels"]) <= 200


def test_empty_targets_train():
    torch.manual_seed(0)
    model = build_ssd("tiny", num_classes=20).train()
    images = torch.rand(2, 3, 64, 64)
    for boxes, labels in [(torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.int64)),
                          (torch.rand(2, 3, 4) * 64, torch.full((2, 3), -1))]:   # all padding
        losses = model.loss(images, boxes, labels)
        assert {name: loss.item() for name, loss in losses.items()} == {
            "bbox_regression": 0.0, "classification": 0.0}   # no matches, so no mined negatives
        sum(losses.values()).backward()


def test_training_form_and_bad_sizes():
    model = build_ssd("tiny", num_classes=20).train()
    with pytest.raises(RuntimeError, match="model.loss"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="64 x 64"):
        model.loss(torch.rand(1, 3, 60, 64), torch.zeros(1, 0, 4),
                   torch.zeros(1, 0, dtype=torch.int64))


def test_float32_boxes_under_autocast_and_channels_last(ssd300):
    # torchvision gives the default boxes' centres the dtype of the first feature map: float32
    # for SSD300 (conv4_3 L2-normalised times a float32 scale), bf16 for the tiny SSD
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        conv4_3 = next(iter(ssd300.backbone(torch.rand(1, 3, 300, 300)).values()))
    assert conv4_3.dtype == torch.float32
    torch.manual_seed(0)
    model = build_ssd("tiny", num_classes=20).to(memory_format=torch.channels_last)
    images = torch.rand(2, 3, 64, 64)
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([3])}] * 2
    image_list = ImageList(images, [(64, 64)] * 2)
    maps = [torch.zeros(2, 64, side, side) for side in (8, 4, 2)]
    full = model.anchor_generator(image_list, maps)[0]
    half = model.anchor_generator(image_list, [m.bfloat16() for m in maps])[0]
    assert torch.equal(half, full)   # centres (2i + 1) / 16, / 8, / 4: exact in bf16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.train().loss(images, *pad_targets(targets))
        with torch.no_grad():
            detections = model.eval()(images)
    assert all(loss.dtype == torch.float32 and torch.isfinite(loss) for loss in losses.values())
    assert detections[0]["boxes"].dtype == detections[0]["scores"].dtype == torch.float32


def recognisable_vgg16(path):
    """torchvision's VGG-16 state dict with tensor k filled with k + 1, saved to `path`. The
    classifier's biases come along filled with NaN (the IMAGENET1K_FEATURES file has no valid
    classifier); its weights, 120 million numbers, are left out."""
    state = {}
    for index, (name, tensor) in enumerate(vgg16(weights=None).state_dict().items()):
        if name.startswith("features."):
            state[name] = tensor.fill_(index + 1)
        elif name.endswith(".bias"):
            state[name] = tensor.fill_(math.nan)
    torch.save(state, path)
    return state


def test_imagenet_vgg16_fills_the_backbone(tmp_path):
    torch.manual_seed(0)
    model = build_ssd("ssd300", num_classes=20)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    state = recognisable_vgg16(tmp_path / "vgg16_features.pth")
    logs = []
    load_initial_weights(model, pretrained=False, weights_file=tmp_path / "vgg16_features.pth",
                         log=logs.append)
    assert logs[0].startswith(f"initialised 26 of {len(before)} tensors")
    backbone = model.backbone
    places = {"features.0": backbone.features[0],      # conv1_1
              "features.21": backbone.features[21],    # conv4_3
              "features.24": backbone.extra[0][1],     # conv5_1
              "features.28": backbone.extra[0][5]}     # conv5_3
    for name, conv in places.items():
        assert torch.equal(conv.weight, state[f"{name}.weight"])
        assert torch.equal(conv.bias, state[f"{name}.bias"])
    after = model.state_dict()
    copied = {model.imagenet_name(name) for name in state if name.startswith("features.")}
    assert len(copied) == 26 and None not in copied
    for name, tensor in after.items():
        if name in copied:
            assert not torch.equal(tensor, before[name]), name
        else:   # fc6, fc7, the extra layers, the L2 scale and the head stay as they were
            assert torch.equal(tensor, before[name]), name
    assert model.imagenet_name("classifier.0.weight") is None
    assert build_ssd("tiny").imagenet_name("features.0.weight") is None


def test_pretrained_offline_names_the_weights_file(ssd300):
    with pytest.raises(UserError, match="vgg16_features-amdegroot-88682ab5.pth"):
        load_initial_weights(ssd300, pretrained=True, weights_file=None)
    with pytest.raises(UserError, match="no ImageNet weights"):
        load_initial_weights(build_ssd("tiny"), pretrained=True, weights_file=None)


COLOURS = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0]])


def rectangles_on_noise(generator, size=64, most=3):
    """A size x size image of noise with 1..most non-overlapping rectangles (10-32 px a side),
    each filled with its class's colour; and its target."""
    image = torch.rand(3, size, size, generator=generator) * 0.5
    boxes, labels = [], []
    wanted = int(torch.randint(1, most + 1, (), generator=generator))
    while len(boxes) < wanted:
        width, height = torch.randint(10, 33, (2,), generator=generator).tolist()
        left = int(torch.randint(0, size - width + 1, (), generator=generator))
        top = int(torch.randint(0, size - height + 1, (), generator=generator))
        box = torch.tensor([left, top, left + width, top + height], dtype=torch.float32)
        if boxes and box_iou(box[None], torch.stack(boxes)).max() > 0:
            continue
        label = int(torch.randint(0, len(COLOURS), (), generator=generator))
        image[:, top:top + height, left:left + width] = COLOURS[label][:, None, None]
        boxes.append(box)
        labels.append(label)
    return image, {"boxes": torch.stack(boxes), "labels": torch.tensor(labels)}


def test_tiny_ssd_overfits_a_handful_of_images():
    generator = torch.Generator().manual_seed(0)
    scenes = [rectangles_on_noise(generator) for _ in range(8)]
    images = torch.stack([image for image, _ in scenes])
    targets = [target for _, target in scenes]
    assert 0 in torch.cat([target["labels"] for target in targets])
    torch.manual_seed(0)
    result = memorised_map(build_ssd("tiny", num_classes=len(COLOURS)), images, targets, 200)
    assert result["map"] >= 0.9, result["ap"]


def test_recipes_report_and_paper():
    """--recipe report (the default: make voc2007-ssd) and --recipe paper (make
    voc2007-ssd-paper): Liu et al. 2016 at batch 32, lr 1e-3, 40k + 10k + 10k iterations,
    here 383 epochs of VOC 2007 trainval's 5,011 images, 156 steps each (the last partial
    batch dropped)."""
    from voc2007 import train_ssd
    from voc2007.data import FULL_SIZES
    report = train_ssd.parse_args([])
    assert (report.recipe, report.out) == ("report", "runs/voc2007/ssd")
    assert (report.batch_size, report.lr, report.epochs, report.pretrained) == (8, 3e-3, 383, True)
    paper = train_ssd.parse_args(["--recipe", "paper"])
    assert (paper.recipe, paper.out, paper.model) == ("paper", "runs/voc2007/ssd-paper", "ssd300")
    assert (paper.optimizer, paper.batch_size, paper.lr, paper.momentum, paper.weight_decay) == (
        "sgd", 32, 1e-3, 0.9, 5e-4)
    assert (paper.scheduler, paper.gamma, paper.pretrained, paper.augment) == (
        "multistep", 0.1, True, "paper")
    steps = FULL_SIZES["trainval"] // paper.batch_size
    iterations = [epoch * steps for epoch in [*paper.milestones, paper.epochs]]
    assert (steps, iterations) == (156, [39_780, 49_764, 59_748])
    for ours, papers in zip(iterations, (40_000, 50_000, 60_000)):
        assert abs(ours - papers) / papers < 0.01
    assert (paper.warmup_iters, paper.warmup_lr, paper.warmup_shape) == (1000, 1e-4, "linear")
    assert train_ssd.parse_args(["--recipe", "paper", "--model", "tiny"]).out == \
        "runs/voc2007/ssd-paper-tiny"
    assert train_ssd.parse_args(["--recipe", "paper", "--batch-size", "8"]).lr == 1e-3
    with pytest.raises(SystemExit):
        train_ssd.parse_args(["--recipe", "caffe"])
