"""SSD300 (Liu et al., 2016, "SSD: Single Shot MultiBox Detector") in the paper's PASCAL VOC
configuration, built from torchvision's SSD machinery.

Report 000 section 5.3 ("Pascal VOC 2007 Performance (SSD)") trained an SSD on VOC2007 trainval
(batch 8, lr 0.003, 383 epochs): 68.9 test mAP. The paper's Table 1 gives SSD300 trained on
VOC2007 trainval 68.0 mAP on VOC2007 test.

torchvision's (torchvision.models.detection.ssd, used as is): the network (`_vgg_extractor`:
VGG-16 with pool3 in ceil mode, pool5 3x3/1, fc6 as a 3x3 convolution of dilation 6, fc7 1x1,
conv4_3 L2-normalised with a learnable scale starting at 20, the extra layers conv6_1..conv9_2;
`SSDHead`: 3x3 convolutions per feature map), the default boxes (`DefaultBoxGenerator`), the
input normalisation, the box encoding (`encode_boxes` with BoxCoder's weights 10, 10, 5, 5:
variances 0.1/0.2) and the inference (score 0.01, 400 candidates per class, NMS 0.45, 200
detections per image).

The training loss, `VOCSSD.loss`, is torchvision's (SSD.forward's matching: a default box
takes the box it overlaps most if their IoU is at least 0.5, and each box takes the default
box it overlaps most; SSD.compute_loss: smooth L1 on the matched default boxes' offsets,
softmax cross-entropy on them and on 3 times as many background boxes of highest loss per
image, hard negative mining; both divided by the batch's number of matched default boxes, as
Caffe's normalization VALID), computed by us for the whole padded batch at once, with static
shapes and no host sync, so that a CUDA graph can capture the training step; torchvision loops
over the images and indexes with boolean masks. tests/test_ssd.py checks that it equals
torchvision's loss on random inputs (to a relative 1e-5). It makes the default boxes once, on
its first call, in float32.

Ours too: the VOC default boxes (torchvision's builder `ssd300_vgg16` has COCO's), the label
shift (VOC labels 0..19 outside, torchvision's 1..20 inside, where 0 is the background), the
ImageNet tensor names for common.nets.load_initial_weights, float32 head outputs under autocast
(so that the losses, the box decoding and NMS run in float32), and a tiny configuration for
tests. Inference makes the default boxes at each call in the dtype of the first feature map,
which is float32 for SSD300 (the L2-normalised conv4_3 times its float32 scale) and, for the
tiny configuration, bf16 on grids that bf16 holds exactly (multiples of 1/16).

Checked against the paper and its Caffe configuration (weiliu89/caffe, examples/ssd/
ssd_pascal.py), and the same: default box scales (min sizes 30, 60, 111, 162, 213, 264 px, max
sizes 60 ... 315 px: scales 0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05), aspect ratios [[2], [2, 3],
[2, 3], [2, 3], [2], [2]] with their inverses plus the extra sqrt(s_k * s_k+1) box, steps 8, 16,
32, 64, 100, 300 and offset 0.5, boxes not clipped to the image (Caffe's clip = False;
torchvision's default clips their width and height to 1), 8,732 default boxes; neg:pos 3:1,
loc weight 1, overlap 0.5; mean subtraction of the Caffe VGG-16 on 0-255 pixels (R, G, B means
123, 117, 104, no scaling); top_k 400, keep_top_k 200, confidence 0.01, NMS 0.45; nothing
frozen (ssd_pascal.py trains every layer, as torchvision does without its own backbone
weights).

Differences kept:
- fc6 and fc7 start random (Xavier, as torchvision does); the paper sub-samples VGG's fc6/fc7
  into them ("VGG_ILSVRC_16_layers_fc_reduced"). torchvision's IMAGENET1K_FEATURES file has no
  usable classifier to sub-sample.
- Xavier initialisation is PyTorch's (uniform, fan_in + fan_out); Caffe's "xavier" filler
  uses fan_in only.
- the matching gives each ground-truth box its best default box by argmax: where two boxes
  want the same default box, the later one in the target's order gets it (torchvision's
  indexed assignment does so on the CPU and leaves it undefined on CUDA; ours is the same on
  both); Caffe's bipartite matching is greedy and one-to-one.
- hard negative mining takes 3 x the matches of an image from its highest-loss default boxes
  with the matched ones ranked last, so that an image with fewer background boxes than that
  (more than 2,183 matched default boxes of SSD300's 8,732) also counts some matched ones twice
  (torchvision); Caffe takes only the background boxes there are.
- decoded boxes are clipped to the image before NMS (torchvision); Caffe does not clip.
- in training (voc2007/train_ssd.py and data.py, which have the paper's augmentation): every
  parameter at one learning rate and weight decay, where Caffe gives biases twice the rate and
  no decay; difficult objects left out of the targets, as for YOLOv1 and the devkit's
  baselines, where Caffe's SSD trains on them.

Parameters (20 classes): ssd300 26,285,486; tiny 270,540.
"""
import math
import re
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD, SSDHead, _vgg_extractor
from torchvision.ops import box_iou

# SSD300 on VOC (the paper's section 3 and ssd_pascal.py)
VOC_SCALES = [0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05]
ASPECT_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
STEPS = [8, 16, 32, 64, 100, 300]
VGG_CHANNELS = [512, 1024, 512, 256, 256, 256]   # conv4_3, fc7, conv6_2 ... conv9_2
# The Caffe VGG-16 takes 0-255 pixels less ImageNet's mean (B, G, R = 104, 117, 123); torchvision
# feeds it RGB, so (x - mean) / std with x in [0, 1] gives exactly that.
CAFFE_MEAN = [123 / 255, 117 / 255, 104 / 255]
CAFFE_STD = [1 / 255] * 3
# Matching, mining and inference as in the paper (torchvision's defaults, spelled out):
# positive_fraction 0.25 is 3 negatives per positive.
PAPER_SETTINGS = dict(iou_thresh=0.5, positive_fraction=0.25, score_thresh=0.01,
                      nms_thresh=0.45, topk_candidates=400, detections_per_img=200)
# torchvision's vgg16().features[23] is pool4. `_vgg_extractor` keeps layers 0-22 (conv1_1 ...
# conv4_3) at their indices in backbone.features and moves 23-29 (pool4, conv5_1 ... conv5_3)
# to backbone.extra[0] from index 0; pool5 (30) is replaced by SSD's 3x3/1 pooling.
VGG_POOL4 = 23


class Float32SSDHead(SSDHead):
    """torchvision's SSDHead with float32 outputs: under autocast its convolutions give bf16,
    and torchvision would then decode the boxes in bf16 (steps of 2 px at 300 px)."""

    def forward(self, x):
        return {name: output.float() for name, output in super().forward(x).items()}


class TinyBackbone(nn.Module):
    """A narrow stand-in for VGG-16 in tests and CPU runs: 3x3 stride-2 convolutions 16-32-64
    give the first feature map (stride 8), two more 64-wide ones the second and third (16, 32).
    Returns them as torchvision's SSD expects: an OrderedDict "0", "1", "2"."""

    def __init__(self):
        super().__init__()
        widths = [3, 16, 32, 64]
        self.features = nn.Sequential(*[
            layer for inputs, outputs in zip(widths, widths[1:])
            for layer in (nn.Conv2d(inputs, outputs, 3, stride=2, padding=1),
                          nn.ReLU(inplace=True))])
        self.extra = nn.ModuleList([
            nn.Sequential(nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(inplace=True))
            for _ in range(2)])
        self.out_channels = [64, 64, 64]

    def forward(self, x):
        x = self.features(x)
        maps = [x]
        for block in self.extra:
            x = block(x)
            maps.append(x)
        return OrderedDict((str(index), feature_map) for index, feature_map in enumerate(maps))


class VOCSSD(SSD):
    """torchvision's SSD taking and giving VOC's labels 0..num_classes-1 (torchvision's class 0
    is the background, so labels go in one higher and come out one lower), with the training
    loss computed for the whole batch at once.

    model.loss(images, boxes, labels) -> {"bbox_regression", "classification"}, scalar losses
    to add: images (B, 3, S, S) in [0, 1], boxes (B, M, 4) XYXY pixels and labels (B, M) padded
    with -1 (voc2007.data.pad_targets). model(images) in eval mode -> a list of {"boxes" (K, 4)
    XYXY pixels, "scores" (K,), "labels" (K,) int64}, K <= 200 (torchvision's inference, which
    also resizes the images to S x S: a no-op for images already that size).
    """

    cuda_precision = "bf16"   # VGG-16 at 300 px: wide convolutions (runtime.resolve_precision)

    def __init__(self, backbone, out_channels, anchor_generator, image_size, num_classes, *,
                 image_mean=None, image_std=None, imagenet_arch=None):
        head = Float32SSDHead(out_channels, anchor_generator.num_anchors_per_location(),
                              num_classes + 1)
        super().__init__(backbone, anchor_generator, (image_size, image_size), num_classes + 1,
                         image_mean=image_mean, image_std=image_std, head=head, **PAPER_SETTINGS)
        self.image_size = image_size
        self.num_classes = num_classes
        self.imagenet_arch = imagenet_arch
        # torchvision's normalisation and box weights as device tensors: torchvision builds
        # them from Python lists at every call, a host-to-device copy that a CUDA graph cannot
        # capture. Not saved in the state dict (they follow from the configuration).
        self.register_buffer("pixel_mean", torch.tensor(self.transform.image_mean).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.transform.image_std).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("box_weights", torch.tensor(self.box_coder.weights), persistent=False)
        # (A, 4) XYXY pixels, the same for every S x S image: set by the first loss call
        self.register_buffer("default_boxes", None, persistent=False)

    def forward(self, images, boxes=None, labels=None):
        """Detections in eval mode; with padded targets, the training loss terms (self.loss):
        the loop calls the model so, as DistributedDataParallel needs (its forward is what
        all-reduces the gradients)."""
        if boxes is not None:
            return self.loss(images, boxes, labels)
        if self.training:
            raise RuntimeError("VOCSSD trains through model(images, boxes, labels) or "
                               "model.loss; model(images) gives detections in eval mode")
        return [{**detections, "labels": detections["labels"] - 1}
                for detections in super().forward(images)]

    def loss(self, images, boxes, labels):
        """The training loss terms for images (B, 3, S, S) in [0, 1] and padded targets: boxes
        float32 (B, M, 4) XYXY pixels, labels int64 (B, M), -1 marking padding
        (voc2007.data.pad_targets). Static shapes and no host sync after the first call (which
        computes the default boxes: make it a warm-up step before any CUDA graph capture)."""
        if tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"images must be {self.image_size} x {self.image_size}, "
                             f"not {tuple(images.shape[-2:])}")
        features = list(self.backbone((images - self.pixel_mean) / self.pixel_std).values())
        if self.default_boxes is None:
            # torchvision's generator reads the grid sizes, dtype and device of the feature
            # maps: empty float32 maps of their sizes give float32 boxes whatever the autocast
            grids = [feature.new_empty(0, 0, *feature.shape[-2:], dtype=torch.float32)
                     for feature in features]
            frame = ImageList(images.new_empty(1, 0, self.image_size, self.image_size),
                              [(self.image_size, self.image_size)])
            self.default_boxes = self.anchor_generator(frame, grids)[0]
        return self.multibox_loss(self.head(features), self.default_boxes, boxes, labels)

    def multibox_loss(self, head_outputs, default_boxes, boxes, labels):
        """torchvision's SSD loss (SSD.forward's matching and SSD.compute_loss) for a whole
        padded batch at once, in fixed-shape tensor operations (no host sync, no data-dependent
        shapes): head_outputs {"bbox_regression" (B, A, 4), "cls_logits" (B, A, C + 1)},
        default_boxes (A, 4), boxes (B, M, 4), labels (B, M) with -1 for padding."""
        regression, logits = head_outputs["bbox_regression"], head_outputs["cls_logits"]
        batch, count = labels.shape
        if count == 0:   # no image of the batch has a box: one padding column keeps max() valid
            boxes, labels = boxes.new_zeros(batch, 1, 4), labels.new_full((batch, 1), -1)
            count = 1
        real = labels >= 0
        defaults = len(default_boxes)

        # SSDMatcher: a default box takes the box it overlaps most if their IoU is at least 0.5
        # (the first of equal ones), and every box takes the default box it overlaps most (the
        # first of equal ones) whatever the IoU; where two boxes want the same default box the
        # later one gets it, as torchvision's indexed assignment does on the CPU. Padding has
        # IoU -1 with everything, so it is never matched.
        overlaps = box_iou(boxes.reshape(-1, 4), default_boxes).view(batch, count, defaults)
        overlaps = overlaps.masked_fill(~real[:, :, None], -1.0)
        best_overlap, matches = overlaps.max(dim=1)
        matches = matches.masked_fill(best_overlap < self.proposal_matcher.high_threshold, -1)
        box_index = torch.arange(count, device=labels.device).expand(batch, count)
        claimed = torch.full_like(matches, -1).scatter_reduce(
            1, overlaps.argmax(dim=2), box_index.masked_fill(~real, -1), reduce="amax")
        matches = torch.where(claimed >= 0, claimed, matches)
        positive = matches >= 0
        matched = matches.clamp(min=0)
        matched_boxes = boxes.gather(1, matched[:, :, None].expand(batch, defaults, 4))
        matched_labels = labels.gather(1, matched)

        # Smooth L1 on the offsets of the matched default boxes (BoxCoder's encoding, weights
        # 10, 10, 5, 5); the others are encoded against themselves, so no padding box (of zero
        # size) ever reaches the logarithm.
        anchors = default_boxes.expand(batch, defaults, 4)
        targets = det_utils.encode_boxes(
            torch.where(positive[:, :, None], matched_boxes, anchors).reshape(-1, 4),
            anchors.reshape(-1, 4), self.box_weights).view(batch, defaults, 4)
        box_losses = F.smooth_l1_loss(regression, targets, reduction="none").sum(dim=2)

        # Softmax cross-entropy on the matched default boxes (labels one higher: 0 is the
        # background) and on each image's 3 x its matches background default boxes of highest
        # loss (hard negative mining; ties broken by default box index). Like torchvision, the
        # mined set reaches into the matched boxes only when an image has fewer than 3 x its
        # matches background boxes.
        classes = torch.where(positive, matched_labels + 1, 0)
        class_losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), classes.reshape(-1),
                                       reduction="none").view(batch, defaults)
        background_losses = class_losses.detach().masked_fill(positive, -math.inf)
        order = background_losses.argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(defaults, device=order.device).expand(batch, defaults))
        mined = rank < self.neg_to_pos_ratio * positive.sum(dim=1, keepdim=True)

        # both divided by the batch's number of matched default boxes (at least 1)
        matches_in_batch = positive.sum().clamp(min=1)
        return {
            "bbox_regression": torch.where(positive, box_losses, 0).sum() / matches_in_batch,
            "classification": (torch.where(positive, class_losses, 0).sum()
                               + torch.where(mined, class_losses, 0).sum()) / matches_in_batch,
        }

    def imagenet_name(self, name):
        """Where a tensor of torchvision's VGG-16 state dict ("features.21.weight") goes in this
        model, or None: the classifier (fc6/fc7 here are convolutions of other shapes, and the
        IMAGENET1K_FEATURES file has no valid classifier), and everything for a model without
        a VGG-16 backbone."""
        match = re.fullmatch(r"features\.(\d+)\.(weight|bias)", name)
        if self.imagenet_arch != "vgg16_features" or match is None:
            return None
        layer, tensor = int(match[1]), match[2]
        if layer < VGG_POOL4:
            return f"backbone.features.{layer}.{tensor}"
        return f"backbone.extra.0.{layer - VGG_POOL4}.{tensor}"


def ssd300(num_classes):
    """The paper's SSD300 for VOC: torchvision's VGG-16 SSD with the VOC default boxes, 300 px.
    The backbone starts random; load_initial_weights fills it from torchvision's Caffe-trained
    VGG-16 features (imagenet_arch "vgg16_features")."""
    backbone = _vgg_extractor(vgg16(weights=None), highres=False, trainable_layers=5)
    anchors = DefaultBoxGenerator(ASPECT_RATIOS, scales=VOC_SCALES, steps=STEPS, clip=False)
    return VOCSSD(backbone, VGG_CHANNELS, anchors, 300, num_classes, image_mean=CAFFE_MEAN,
                  image_std=CAFFE_STD, imagenet_arch="vgg16_features")


def tiny_ssd(num_classes):
    """A small SSD for tests and CPU runs: 64 px, TinyBackbone's 8x8, 4x4 and 2x2 maps with 4
    default boxes each per cell (scales 0.15 ... 0.85: 10 to 44 px squares, and 2:1 boxes),
    torchvision's default ImageNet normalisation. No ImageNet weights."""
    anchors = DefaultBoxGenerator([[2], [2], [2]], scales=[0.15, 0.3, 0.55, 0.85],
                                  steps=[8, 16, 32], clip=False)
    return VOCSSD(TinyBackbone(), [64, 64, 64], anchors, 64, num_classes)


CONFIGS = {"ssd300": ssd300, "tiny": tiny_ssd}


def build_ssd(config="ssd300", num_classes=20):
    """An SSD in configuration `config` (one of CONFIGS) for `num_classes` object classes.
    Raises ValueError for a bad argument."""
    if config not in CONFIGS:
        raise ValueError(f"unknown SSD configuration {config!r}; choose one of "
                         f"{', '.join(CONFIGS)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a whole number of at least 1, not {num_classes!r}")
    return CONFIGS[config](num_classes)
