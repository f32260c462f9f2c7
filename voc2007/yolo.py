"""YOLOv1 (Redmon et al., 2016, "You Only Look Once: Unified, Real-Time Object Detection"): the
network on three backbones, the loss of the paper's equation 3 as darknet computes its gradient,
the encoding of ground-truth boxes into the 7x7 grid and the decoding of a grid into detections.

Report 000 section 5.3 ("Pascal VOC 2007 Performance (YOLOv1)") trained a tutorial's YOLOv1
and overfit: train mAP 96%, test 2.6%. This is the paper's model; what differs is said where
it differs. The reference code is pjreddie's darknet: src/detection_layer.c (the loss),
src/data.c fill_truth_region (the targets), examples/yolo.c validate_yolo (the mAP runs).

A grid is a tensor (B, S, S, 5 * K + C): image b, row i (y), column j (x), then per cell K box
predictors of five numbers each, (x, y, sqrt(w), sqrt(h), confidence), followed by the cell's C
class probabilities. x and y are the box centre's offset within its cell (0..1), w and h its
width and height relative to the image. The encoded ground truth is a grid with one "box" per
cell, (x, y, sqrt(w), sqrt(h), object), object being 1 in a cell holding an object's centre,
and a one-hot class vector: (B, S, S, 5 + C).
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import batched_nms, clip_boxes_to_image

GRID = 7               # S: the image is divided into S x S cells
BOXES_PER_CELL = 2     # K (the paper's B)
LAMBDA_COORD = 5.0
LAMBDA_NOOBJ = 0.5
FEATURE_SCALE = 0.1   # the starting scale of the last batch norm before fc1 (YOLOv1.__init__)
# darknet's validate_yolo (examples/yolo.c), which wrote the paper's VOC results: scores above
# 0.001, per-class NMS at IoU 0.5, no cap on the detections per image. Low on purpose: VOC's mAP
# integrates precision over the whole recall range, so the low-confidence detections that add
# recall count; a display threshold (darknet's demo uses 0.2) would cut the curve short.
SCORE_THRESHOLD = 0.001
NMS_IOU = 0.5

BACKBONES = ("darknet", "resnet50", "vgg16", "tiny")
# the input side each backbone takes: GRID times its total stride (64 with the detection head)
IMAGE_SIZES = {"darknet": 448, "resnet50": 448, "vgg16": 448, "tiny": 112}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_block(inputs, outputs, kernel_size, stride=1, batch_norm=True):
    """Convolution ('same' padding), optional batch norm, leaky ReLU 0.1."""
    layers = [nn.Conv2d(inputs, outputs, kernel_size, stride, padding=kernel_size // 2,
                        bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(outputs))
    layers.append(nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(*layers)


def darknet_features(batch_norm=True):
    """The first 20 convolutional layers of the paper's Figure 3 (the part it pre-trains on
    ImageNet): 448 -> 1024 x 14 x 14. 1x1 reduction layers alternate with 3x3 layers."""
    layers = [conv_block(3, 64, 7, stride=2, batch_norm=batch_norm), nn.MaxPool2d(2, 2),
              conv_block(64, 192, 3, batch_norm=batch_norm), nn.MaxPool2d(2, 2)]
    plan = [(128, 1), (256, 3), (256, 1), (512, 3), "pool",
            *[(256, 1), (512, 3)] * 4, (512, 1), (1024, 3), "pool",
            *[(512, 1), (1024, 3)] * 2]
    channels = 192
    for item in plan:
        if item == "pool":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            width, kernel_size = item
            layers.append(conv_block(channels, width, kernel_size, batch_norm=batch_norm))
            channels = width
    return nn.Sequential(*layers)


def resnet50_features():
    """torchvision's ResNet-50 without its pooling and classifier, under torchvision's names:
    448 -> 2048 x 14 x 14."""
    resnet = torchvision.models.resnet50(weights=None)
    return nn.Sequential(OrderedDict((name, module) for name, module in resnet.named_children()
                                     if name not in ("avgpool", "fc")))


def tiny_features(batch_norm=True):
    """Four 3x3 stride-2 convolutions (16-32-64-64) for tests and CPU runs: 112 -> 64 x 7 x 7."""
    widths = [3, 16, 32, 64, 64]
    return nn.Sequential(*[conv_block(inputs, outputs, 3, stride=2, batch_norm=batch_norm)
                           for inputs, outputs in zip(widths, widths[1:])])


def detection_convs(inputs, batch_norm=True):
    """The paper's last four convolutional layers (3x3 1024, 3x3/2 1024, 3x3 1024, 3x3 1024):
    14 x 14 -> 1024 x 7 x 7."""
    return nn.Sequential(conv_block(inputs, 1024, 3, batch_norm=batch_norm),
                         conv_block(1024, 1024, 3, stride=2, batch_norm=batch_norm),
                         conv_block(1024, 1024, 3, batch_norm=batch_norm),
                         conv_block(1024, 1024, 3, batch_norm=batch_norm))


class YOLOv1(nn.Module):
    """YOLOv1: backbone, detection convolutions, fc (S*S*channels -> hidden), leaky ReLU,
    dropout, fc (hidden -> S*S*(5K + C)), reshaped into the grid (B, S, S, 5K + C).
    The network of the paper's Figure 3 (63.4% mAP on VOC 2007 test, trained on VOC 2007+2012)
    for report 000 section 5.3's "Pascal VOC 2007 Performance (YOLOv1)" table (train 96.33%,
    test 2.61% mAP: a tutorial's YOLOv1, overfit).

    Backbones (build_yolo) and parameter counts with 20 classes:
    - darknet, 448 px: the paper's 24 convolutional layers and two fully connected layers
      (4096 hidden): 271,716,734 parameters (271,703,550 without batch norm). With the
      496-wide hidden layer of the report's tutorial (train_yolo.py --recipe report):
      85,787,534, the tutorial's own count (its convolutions also have batch norm, no bias).
    - resnet50 / vgg16, 448 px: torchvision's ImageNet feature layers (ResNet-50's layer4 gives
      2048 x 14 x 14, VGG-16's features 512 x 14 x 14) followed by the paper's detection head:
      its last four convolutions, the second with stride 2 (14 -> 7, as in the paper, whose
      first 20 layers also end at 14 x 14), and the two fully connected layers. resnet50:
      282,249,726 parameters (96,320,526 with 496 hidden); vgg16: 259,300,606 (73,371,406).
      Their backbones start from ImageNet through common.nets.load_initial_weights
      (imagenet_arch, imagenet_name).
    - tiny, 112 px: four 3x3 stride-2 convolutions (16-32-64-64), no detection convolutions,
      a 256-wide hidden layer: 1,241,550 parameters. For tests and CPU experiments.

    As in the paper: leaky ReLU 0.1 after every layer but the last, which is linear; dropout
    0.5 after the first fully connected layer; 2 boxes per cell; sum-squared loss (yolo_loss).
    Departures:
    - batch norm after every convolution we add (batch_norm=True, the default): the paper has
      none (YOLOv2 added it, +2% mAP). The paper pre-trained its first 20 layers on ImageNet for
      a week; without that, a 24-layer leaky-ReLU stack trained from scratch is hard to get
      going, and batch norm makes it trainable (and regularises, against report 000's
      overfitting). Convolutions are He-initialised (the paper does not say). The last batch
      norm before the first fully connected layer starts at scale 0.1, not 1: with
      unit-variance features SGD's steps on that layer's 50,176 inputs are 100 times too
      large, and the paper recipe diverged at lr 1e-3 (the paper's features came from its
      pretrained layers).
    - the images are normalised with ImageNet's mean and std inside the model (the loop feeds
      [0, 1] images), which the torchvision backbones expect.

    Training: model.loss(images, boxes, labels) on padded batches; inference: model(images) in
    eval mode, a list of detections per image.
    """

    # darknet decays weights only (update_convolutional_layer and update_connected_layer scale
    # l.weights by the decay, never l.biases nor the batch-norm scales): common.engine gives
    # one-dimensional parameters a weight decay of 0
    decays_weights_only = True
    cuda_precision = "bf16"   # a 448 px network of wide convolutions (runtime.resolve_precision)

    def __init__(self, backbone, backbone_channels, *, image_size, detection_head=True,
                 hidden=4096, dropout=0.5, num_classes=20, batch_norm=True, imagenet_arch=None):
        super().__init__()
        self.image_size = image_size
        self.num_classes = num_classes
        self.grid = GRID
        self.boxes_per_cell = BOXES_PER_CELL
        self.imagenet_arch = imagenet_arch
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.backbone = backbone
        own_convs = list(backbone.modules()) if imagenet_arch is None else []
        if detection_head:
            self.detection_convs = detection_convs(backbone_channels, batch_norm)
            own_convs += list(self.detection_convs.modules())
            backbone_channels = 1024
        else:
            self.detection_convs = nn.Identity()
        self.fc1 = nn.Linear(GRID * GRID * backbone_channels, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, GRID * GRID * (5 * BOXES_PER_CELL + num_classes))
        for module in own_convs:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.1, mode="fan_out",
                                        nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # SGD moves fc1's outputs by the learning rate times the squared norm of its input: with
        # the 7 x 7 x 1024 unit-variance features of batch norm, 25,000 times the rate, and the
        # paper recipe diverged within 7 steps at lr 1e-3. The last batch norm before fc1
        # starts at scale FEATURE_SCALE instead of 1 (the features 10x smaller, that factor 100x
        # smaller); training rescales it as it needs.
        norms = [module for module in own_convs if isinstance(module, nn.BatchNorm2d)]
        if norms:
            nn.init.constant_(norms[-1].weight, FEATURE_SCALE)

    def predict_grid(self, images):
        """The raw predictions (B, S, S, 5K + C) for images (B, 3, size, size) in [0, 1]."""
        x = (images - self.mean) / self.std
        x = self.detection_convs(self.backbone(x))
        x = self.dropout(F.leaky_relu(self.fc1(torch.flatten(x, 1)), 0.1))
        cell_outputs = 5 * self.boxes_per_cell + self.num_classes
        return self.fc2(x).view(-1, self.grid, self.grid, cell_outputs)

    def forward(self, images, boxes=None, labels=None):
        """Detections for images (B, 3, S, S) in [0, 1]: a list of {"boxes" (D, 4) xyxy pixels
        of the S x S input, "scores", "labels"} per image (detections_from_grid). With padded
        targets, the training loss terms (self.loss): the loop calls the model so, as
        DistributedDataParallel needs (its forward is what all-reduces the gradients)."""
        if boxes is not None:
            return self.loss(images, boxes, labels)
        grid = self.predict_grid(images).float()   # decoded in float32 under autocast
        return detections_from_grid(grid, self.image_size, self.boxes_per_cell)

    def loss(self, images, boxes, labels):
        """The training loss terms (yolo_loss, a dict of scalars whose sum is the loss) for
        images (B, 3, S, S) in [0, 1] and padded targets: boxes float32 (B, M, 4) xyxy in
        continuous pixels of the S x S input, labels int64 (B, M), -1 marking padding
        (voc2007.data.pad_targets). Static shapes and no host sync: it can be captured in a
        CUDA graph."""
        grid = self.predict_grid(images).float()   # the loss in float32 under autocast
        encoded = encode_targets(boxes, labels, self.grid, self.image_size, self.num_classes)
        return yolo_loss(grid, encoded, self.boxes_per_cell)

    def imagenet_name(self, name):
        """Where a tensor of torchvision's ImageNet state dict goes in this model (None: the
        classifier, which has no place here)."""
        if self.imagenet_arch == "resnet50" and not name.startswith("fc."):
            return f"backbone.{name}"
        if self.imagenet_arch == "vgg16" and name.startswith("features."):
            return "backbone." + name.removeprefix("features.")
        return None


def build_yolo(backbone, image_size=None, dropout=0.5, num_classes=20, batch_norm=True,
               hidden=None):
    """A YOLOv1 on `backbone` (one of BACKBONES). image_size must give the 7x7 grid: 448 for
    darknet, resnet50 and vgg16, 112 for tiny (IMAGE_SIZES; None takes it). hidden is the first
    fully connected layer's width (None: the paper's 4096, or 256 for tiny). batch_norm adds
    batch norm after the convolutions we add (not to torchvision's VGG-16, whose ImageNet
    weights are for the version without). Raises ValueError for a bad argument."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown YOLO backbone {backbone!r}; "
                         f"choose one of {', '.join(BACKBONES)}")
    expected_size = IMAGE_SIZES[backbone]
    image_size = expected_size if image_size is None else image_size
    if image_size != expected_size:
        raise ValueError(f"YOLOv1 on {backbone} takes {expected_size}x{expected_size} images "
                         f"(its {GRID}x{GRID} grid times the network's stride of "
                         f"{expected_size // GRID}), not {image_size}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, not {num_classes}")
    if hidden is not None and hidden < 1:
        raise ValueError(f"hidden must be at least 1, not {hidden}")
    options = dict(image_size=image_size, dropout=dropout, num_classes=num_classes,
                   batch_norm=batch_norm, hidden=hidden or 4096)
    if backbone == "darknet":
        return YOLOv1(darknet_features(batch_norm), 1024, **options)
    if backbone == "resnet50":
        return YOLOv1(resnet50_features(), 2048, imagenet_arch="resnet50", **options)
    if backbone == "vgg16":
        return YOLOv1(torchvision.models.vgg16(weights=None).features, 512,
                      imagenet_arch="vgg16", **options)
    options["hidden"] = hidden or 256
    return YOLOv1(tiny_features(batch_norm), 64, detection_head=False, **options)


def encode_targets(boxes, labels, grid, image_size, num_classes):
    """The ground truth as a grid (B, S, S, 5 + C): (x, y, sqrt(w), sqrt(h), object, one-hot
    class) in the cell holding each box's centre, zeros elsewhere (see the module docstring).

    boxes: float (B, M, 4) xyxy in continuous pixels of the image_size square; labels: int64
    (B, M) in 0..C-1, -1 marking padding (voc2007.data.pad_targets). Static shapes, tensor ops
    on the boxes' device, no host sync.
    Two centres in one cell: the first listed box wins, as in darknet (src/data.c,
    fill_truth_region skips a box whose cell is taken, after randomize_boxes shuffled them);
    the data pipeline lists each image's boxes in a random order drawn from the sample's seeded
    generator, so colliding objects take turns across epochs. Padding never wins a cell.
    """
    batch, count = labels.shape
    boxes = boxes.float()
    cells_per_image = grid * grid
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2 / image_size * grid   # in cells
    sizes = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0) / image_size   # relative to the image
    cells = centres.floor().clamp(0, grid - 1)                            # (column, row)
    offsets = centres - cells
    image_of_box = torch.arange(batch, device=boxes.device).unsqueeze(1)
    cell_index = (image_of_box * grid + cells[..., 1].long()) * grid + cells[..., 0].long()

    # a cell's winner is its valid box of the lowest number b * M + m (images share no cell);
    # B * M, the number of an all-zero row appended to the values, stands for none
    numbers = torch.arange(batch * count, device=boxes.device).view(batch, count)
    nobody = batch * count
    priority = torch.where(labels >= 0, numbers, nobody)
    winner = torch.full((batch * cells_per_image,), nobody, dtype=torch.long,
                        device=boxes.device)
    winner = winner.scatter_reduce(0, cell_index.flatten(), priority.flatten(), "amin")

    one_hot = (labels.unsqueeze(-1) == torch.arange(num_classes, device=labels.device)).float()
    values = torch.cat([offsets, sizes.sqrt(), torch.ones_like(offsets[..., :1]), one_hot], -1)
    values = torch.cat([values.flatten(0, 1), values.new_zeros(1, 5 + num_classes)])
    return values[winner].view(batch, grid, grid, 5 + num_classes)


def decode_grid(grid, image_size, boxes_per_cell=BOXES_PER_CELL):
    """Split a grid (predictions, or encoded targets with boxes_per_cell=1) into boxes
    (B, S, S, K, 4) xyxy in pixels of the image_size square, confidences (B, S, S, K) and class
    probabilities (B, S, S, C). sqrt(w) and sqrt(h) are squared as they are, as darknet does
    (src/detection_layer.c): a negative one gives a positive size."""
    cells = grid.shape[1]
    predictors = grid[..., :5 * boxes_per_cell].unflatten(-1, (boxes_per_cell, 5))
    index = torch.arange(cells, device=grid.device, dtype=grid.dtype)
    centre_x = (predictors[..., 0] + index.view(1, 1, cells, 1)) / cells
    centre_y = (predictors[..., 1] + index.view(1, cells, 1, 1)) / cells
    width = predictors[..., 2].square()
    height = predictors[..., 3].square()
    boxes = torch.stack([centre_x - width / 2, centre_y - height / 2,
                         centre_x + width / 2, centre_y + height / 2], dim=-1) * image_size
    return boxes, predictors[..., 4], grid[..., 5 * boxes_per_cell:]


def paired_box_iou(boxes1, boxes2):
    """IoU of corresponding xyxy boxes (broadcasting), 0 where both are empty. torchvision's
    box_iou compares every box with every other; here each cell compares only its own."""
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(-1)
    return intersection / (area1 + area2 - intersection).clamp(min=1e-12)


def box_rmse(predictors, encoded):
    """darknet's box_rmse (src/box.c) between each predictor (B, S, S, K, 5) and its cell's
    object (encoded, B, S, S, 5 + C), as forward_detection_layer calls it: the centre offsets
    divided by the grid size (image units), the width and height as sizes (the squared sqrt
    outputs). (B, S, S, K)."""
    cells = encoded.shape[1]
    truth = encoded[..., None, :4]
    centre = (predictors[..., :2] - truth[..., :2]) / cells
    size = predictors[..., 2:4].square() - truth[..., 2:4].square()
    return torch.cat([centre, size], -1).square().sum(-1).sqrt()


def yolo_loss(grid, encoded, boxes_per_cell=BOXES_PER_CELL, lambda_coord=LAMBDA_COORD,
              lambda_noobj=LAMBDA_NOOBJ):
    """The paper's equation 3 for predictions `grid` (B, S, S, 5K + C, float32) and encoded
    targets (B, S, S, 5 + C), as a dict of weighted terms whose sum is the loss, each summed over
    the cells and divided by B:
      coord      lambda_coord * squared errors of x, y, sqrt(w), sqrt(h) of responsible predictors
      object     squared error of responsible predictors' confidence against their IoU with the
                 object (detached: a target, not a path for gradients)
      no_object  lambda_noobj * squared confidence of every predictor not responsible (those of
                 empty cells and the other predictors of object cells)
      class      squared error of the class probabilities against the one-hot class, in cells
                 holding an object
    Every squared error is halved, lambda / 2 * (t - o)^2, whose gradient is darknet's delta
    lambda * (t - o) (src/detection_layer.c, forward_detection_layer) with the opposite sign;
    darknet sums the deltas of a batch and divides the learning rate by the batch, we average
    the loss over the B images: so one learning rate takes the same step here as in darknet
    and the paper (whose equation 3 omits the 1/2 that its code has). The rate does not depend
    on the batch size.
    A cell's responsible predictor is, as in darknet, the one whose box has the highest IoU with
    the object; when none overlaps it, the one of the lowest box_rmse (the first of equals).
    Predictions of sqrt(w), sqrt(h) enter squared errors directly, so no square root of a
    prediction is taken, and every term stays finite for finite predictions.
    """
    batch = grid.shape[0]
    predictors = grid[..., :5 * boxes_per_cell].unflatten(-1, (boxes_per_cell, 5))
    has_object = encoded[..., 4]
    with torch.no_grad():
        predicted_boxes, _, _ = decode_grid(grid, 1.0, boxes_per_cell)   # relative to the image
        true_boxes, _, _ = decode_grid(encoded, 1.0, 1)
        ious = paired_box_iou(predicted_boxes, true_boxes)               # (B, S, S, K)
        overlaps = ious.amax(-1, keepdim=True) > 0
        affinity = torch.where(overlaps, ious, -box_rmse(predictors, encoded))
        responsible = F.one_hot(affinity.argmax(-1), boxes_per_cell) * has_object.unsqueeze(-1)

    coordinate_errors = (predictors[..., :4] - encoded[..., None, :4]).square().sum(-1)
    confidences = predictors[..., 4]
    class_errors = (grid[..., 5 * boxes_per_cell:] - encoded[..., 5:]).square().sum(-1)
    half_mean = 0.5 / batch
    return {
        "coord": lambda_coord * half_mean * (responsible * coordinate_errors).sum(),
        "object": half_mean * (responsible * (confidences - ious).square()).sum(),
        "no_object": lambda_noobj * half_mean * ((1 - responsible) * confidences.square()).sum(),
        "class": half_mean * (has_object * class_errors).sum(),
    }


def detections_from_grid(grid, image_size, boxes_per_cell=BOXES_PER_CELL,
                         score_threshold=SCORE_THRESHOLD, nms_iou=NMS_IOU):
    """Detections per image from predictions (B, S, S, 5K + C): class-specific scores
    confidence x class probability for each predictor and class, those above score_threshold,
    boxes clipped to the image, per-class non-maximum suppression at nms_iou, all that remain
    (darknet's validate_yolo caps nothing), highest score first. A list of B dicts
    {"boxes" (D, 4) xyxy pixels, "scores" (D,), "labels" (D,) int64}.

    The last layer is linear, so a confidence or a probability can come out negative; both are
    floored at 0 first, so that two negatives never multiply into a confident detection.
    """
    boxes, confidences, probabilities = decode_grid(grid.float(), image_size, boxes_per_cell)
    boxes = clip_boxes_to_image(boxes, (image_size, image_size))
    scores = confidences.clamp(min=0).unsqueeze(-1) * probabilities.clamp(min=0).unsqueeze(-2)
    batch, num_classes = grid.shape[0], probabilities.shape[-1]
    boxes, scores = boxes.reshape(batch, -1, 4), scores.reshape(batch, -1, num_classes)
    detections = []
    for image_boxes, image_scores in zip(boxes, scores):
        predictor, labels = torch.nonzero(image_scores > score_threshold, as_tuple=True)
        kept_boxes, kept_scores = image_boxes[predictor], image_scores[predictor, labels]
        keep = batched_nms(kept_boxes, kept_scores, labels, nms_iou)
        detections.append({"boxes": kept_boxes[keep], "scores": kept_scores[keep],
                           "labels": labels[keep]})
    return detections
