"""The training augmentation of YOLOv1 (as darknet trains it) and of SSD300 (as Caffe's
ssd_pascal.py configures it), and the plain resize of evaluation, on batches of uint8 images
with their boxes.

Ours rather than torchvision's transforms.v2: v2 draws one set of random parameters for a
whole batch and has neither darknet's per-edge jitter and HSV factors nor Caffe's samplers.
One code path serves both loaders of voc2007/data.py: the DataLoader's workers call it on one
image at a time (a batch of one), VOCDeviceLoader on a whole batch on the GPU. A batch is
  images  uint8 (B, 3, H, W): a canvas holding image b in its top-left corner of sizes[b]
  sizes   (B, 2): each image's (height, width) in pixels
  boxes   float32 (B, M, 4): XYXY in continuous pixel coordinates of the image (0-based: a box
          covering pixel columns 0..9 is [0, 10]); labels int64 (B, M), -1 marking padding.
Every random parameter is drawn per image from the torch.Generator passed in (on the images'
device; None takes torch's default one).

Crop (or zoom-out), flip and resize compose to one axis-aligned affine map per image: output
column u of S samples the source at x0 + (u + 0.5) / S * (x1 - x0) for the image's window
[x0, y0, x1, y1] (mirrored when flipped), and one grid_sample resamples the whole batch. The
resampling is bilinear on pixel centres without antialiasing, in training and evaluation alike:
OpenCV's INTER_LINEAR, which Caffe's test-time resize uses (darknet's resize_image is bilinear
too but maps corner pixels onto corner pixels, which moves pixels by under half a pixel).
Boxes move by the same map exactly; those that leave the image or become degenerate are
dropped and counted, and the kept ones come first, in their order.

Nothing here synchronises with the host (no .item(), no shape that depends on values, no
Python branch on a tensor), so the batched path runs asynchronously on the GPU.
"""
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from common.data import device_constant

# ImageNet's mean RGB (0-255), Caffe SSD's mean_value [104, 117, 123] in BGR: the zoom-out fill
MEAN_COLOUR = (123, 117, 104)


class Augmented(NamedTuple):
    images: torch.Tensor    # uint8 (B, 3, S, S)
    boxes: torch.Tensor     # float32 (B, M, 4) in the S x S image; kept boxes first, zeros after
    labels: torch.Tensor    # int64 (B, M), -1 marking padding
    dropped: torch.Tensor   # int64 (B,): the boxes of each image the augmentation removed
    origin: torch.Tensor    # int64 (B, M): each box's index in the input, -1 for padding


def uniform(low, high, shape, generator, device):
    """Uniform numbers in [low, high) (floats or tensors broadcasting to `shape`)."""
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def shuffle_boxes(boxes, labels, generator=None):
    """Each image's boxes in a random order, padding last, and the order (B, M). Darknet
    shuffles the boxes of every training image (data.c, randomize_boxes in fill_truth_region),
    so that where two objects share a YOLO cell, the first of which wins, each takes turns."""
    keys = torch.rand(labels.shape, generator=generator, device=labels.device)
    order = torch.where(labels >= 0, keys, 2.0).argsort(dim=1)
    return boxes.gather(1, order[..., None].expand(-1, -1, 4)), labels.gather(1, order), order


# ---------------------------------------------------------------------------------------------
# Geometry


def pixel_centres_inside(coordinates, extent):
    """Source coordinates clamped to the centres of the image's outer pixels: bilinear sampling
    there repeats the edge pixels outside the image (darknet's crop_image clamps likewise) and
    never reads the canvas beyond it."""
    return torch.minimum(coordinates.clamp(min=0.5), extent - 0.5)


def coverage(coordinates, extent):
    """The weight bilinear sampling at `coordinates` gives to the image's pixels rather than to
    what lies beyond its edge (1 inside, 0 from half a pixel outside)."""
    return torch.minimum(coordinates + 0.5, extent + 0.5 - coordinates).clamp(0, 1)


def warp(images, sizes, windows, flips, size):
    """Resample each image's window [x0, y0, x1, y1] (source pixels, possibly beyond the image)
    to size x size, mirrored where `flips`. Returns float pixels (B, 3, S, S) in 0..255, the
    image's edge pixels continuing outside it, and the coverage (B, 1, S, S): the share of
    each output pixel that comes from inside the image, for blending a fill colour in."""
    _, _, canvas_height, canvas_width = images.shape
    centres = (torch.arange(size, device=images.device, dtype=torch.float32) + 0.5) / size
    along = torch.where(flips[:, None], 1 - centres, centres)                     # (B, S)
    xs = windows[:, 0:1] + along * (windows[:, 2:3] - windows[:, 0:1])            # (B, S)
    ys = windows[:, 1:2] + centres * (windows[:, 3:4] - windows[:, 1:2])          # (B, S)
    heights, widths = sizes[:, 0:1], sizes[:, 1:2]
    # grid_sample's coordinates with align_corners=False: -1 and 1 are the canvas' outer edges
    grid_x = pixel_centres_inside(xs, widths) * (2 / canvas_width) - 1
    grid_y = pixel_centres_inside(ys, heights) * (2 / canvas_height) - 1
    grid = torch.stack(torch.broadcast_tensors(grid_x[:, None, :], grid_y[:, :, None]), dim=-1)
    pixels = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    inside = coverage(ys, heights)[:, None, :, None] * coverage(xs, widths)[:, None, None, :]
    return pixels, inside


def move_boxes(boxes, windows, flips, size):
    """Boxes (B, M, 4) in source pixels -> the S x S output of `warp`, before clipping."""
    x0, y0, x1, y1 = windows[:, None, :].unbind(-1)                               # (B, 1)
    left = (boxes[..., 0] - x0) * (size / (x1 - x0))
    right = (boxes[..., 2] - x0) * (size / (x1 - x0))
    top = (boxes[..., 1] - y0) * (size / (y1 - y0))
    bottom = (boxes[..., 3] - y0) * (size / (y1 - y0))
    mirrored = flips[:, None]
    left, right = torch.where(mirrored, size - right, left), torch.where(mirrored, size - left,
                                                                         right)
    return torch.stack([left, top, right, bottom], dim=-1)


def pairwise_iou(first, second):
    """IoU of every box of `first` (B, P, 4) with every box of `second` (B, M, 4): (B, P, M)."""
    corner_low = torch.maximum(first[:, :, None, :2], second[:, None, :, :2])
    corner_high = torch.minimum(first[:, :, None, 2:], second[:, None, :, 2:])
    overlap = (corner_high - corner_low).clamp(min=0).prod(-1)
    area_first = (first[..., 2:] - first[..., :2]).prod(-1)
    area_second = (second[..., 2:] - second[..., :2]).clamp(min=0).prod(-1)
    union = area_first[:, :, None] + area_second[:, None, :] - overlap
    return overlap / union.clamp(min=1e-9)


def to_uint8(pixels):
    return pixels.round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# Colour


def hexcone(rgb):
    """HSV's hexcone of RGB pixels (B, 3, ...), as darknet's rgb_to_hsv (image.c) computes it:
    the hue in sixths of the colour circle (red at 0, green at 2, blue at 4; any multiple of 6
    may be added), the chroma (max - min, the saturation times the value) and the value (max).
    A change of saturation by a factor is a change of chroma by that factor at the same value.
    (Elementwise maxima: a reduction over the channel dimension is slow on the CPU.)"""
    red, green, blue = rgb.unbind(1)
    value = torch.maximum(torch.maximum(red, green), blue)
    chroma = value - torch.minimum(torch.minimum(red, green), blue)
    is_red, is_green = value == red, value == green
    start = torch.where(is_red, 0.0, torch.where(is_green, 2.0, 4.0))
    turn = torch.where(is_red, green - blue, torch.where(is_green, blue - red, red - green))
    return start + turn / chroma.clamp(min=1e-12), chroma, value


CHANNEL_PHASES = (5.0, 3.0, 1.0)   # red, green, blue in HSV-to-RGB's closed form


def from_hexcone(sixths, chroma, value):
    """RGB (B, 3, ...) of a hue in sixths, a chroma and a value: channel n is value - chroma *
    clamp(min(k, 4 - k), 0, 1) with k = (phase_n + sixths) mod 6, the closed form of darknet's
    hsv_to_rgb. A chroma above the value (a saturation above 1) gives values below 0, which
    the caller clamps as darknet's constrain_image does."""
    phases = device_constant(CHANNEL_PHASES, sixths.device).view(1, 3, *([1] * (sixths.dim() - 1)))
    k = torch.remainder(phases + sixths[:, None], 6)
    return value[:, None] - chroma[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def rand_scale(scale, count, generator, device):
    """darknet's rand_scale (utils.c): a factor uniform in [1, scale], inverted with
    probability 1/2 (so between 1/scale and scale, half of the draws below 1)."""
    factor = uniform(1.0, scale, count, generator, device)
    inverted = torch.rand(count, generator=generator, device=device) < 0.5
    return torch.where(inverted, 1 / factor, factor)


def per_image(values):
    return values[:, None, None]


# ---------------------------------------------------------------------------------------------
# Recipes


class Resize:
    """The resize alone: evaluation, and training with `--augment none` (the report's recipe).
    Nothing is random."""
    fill = None   # what lies outside the image: None repeats its edge pixels, else an RGB colour

    def __init__(self, size):
        self.size = size

    def __call__(self, images, sizes, boxes, labels, generator=None):
        """The batch (see the module's docstring) augmented and resized to size x size."""
        sizes = sizes.to(device=images.device, dtype=torch.float32)
        valid = labels >= 0
        windows, flips = self.geometry(sizes, boxes, valid, generator)
        pixels, inside = warp(images, sizes, windows, flips, self.size)
        pixels = self.colour(pixels, generator)
        if self.fill is not None:
            fill = device_constant(self.fill, images.device)[None, :, None, None]
            pixels = inside * pixels + (1 - inside) * fill
        moved = move_boxes(boxes, windows, flips, self.size)
        clipped = moved.clamp(0, self.size)
        keep = valid & self.keeps(moved, clipped)
        return compact(to_uint8(pixels), clipped, labels, keep, valid)

    def geometry(self, sizes, boxes, valid, generator):
        """Each image's window (B, 4) in source pixels and whether it is mirrored (B,)."""
        zeros = torch.zeros_like(sizes[:, 0])
        return (torch.stack([zeros, zeros, sizes[:, 1], sizes[:, 0]], dim=1),
                torch.zeros_like(zeros, dtype=torch.bool))

    def colour(self, pixels, generator):
        """The photometric changes of float pixels (B, 3, S, S) in 0..255."""
        return pixels

    def keeps(self, moved, clipped):
        """Which moved boxes stay (before clipping, and clipped to the output): those with an
        area."""
        return (clipped[..., 2] > clipped[..., 0]) & (clipped[..., 3] > clipped[..., 1])


def compact(images, boxes, labels, keep, valid):
    """The kept boxes first, in their order, then padding (zero boxes, label -1)."""
    order = (~keep).to(torch.uint8).sort(dim=1, stable=True).indices
    kept = keep.gather(1, order)
    boxes = torch.where(keep[..., None], boxes, 0.0).gather(1, order[..., None].expand(-1, -1, 4))
    labels = torch.where(keep, labels, -1).gather(1, order)
    dropped = (valid & ~keep).sum(1)
    return Augmented(images, boxes, labels, dropped, torch.where(kept, order, -1))


class DarknetYOLO(Resize):
    """YOLOv1's training augmentation as darknet trains it (pjreddie/darknet: src/data.c
    load_data_region and fill_truth_region, src/image.c crop_image and random_distort_image,
    cfg/yolov1.cfg). The paper (Redmon et al. 2016, section 2.2) names random scaling and
    translation of up to 20% and exposure and saturation of up to 1.5 in HSV.

    - jitter 0.2 (yolov1.cfg [detection]): each edge of the crop moves independently by an
      integer number of pixels truncated from uniform(-dw, dw), dw = int(0.2 * width) (top and
      bottom likewise), so scale, position and aspect ratio all change; where the crop reaches
      outside the image its edge pixels repeat (crop_image clamps the coordinates).
    - the crop is resized to size x size (resize_image: bilinear), then mirrored with
      probability 1/2.
    - random_distort_image in HSV: hue shifted by uniform(-0.1, 0.1) of the colour circle,
      saturation and value (exposure) scaled by rand_scale(1.5) each; yolov1.cfg sets
      hue=.1, saturation=1.5, exposure=1.5 and examples/yolo.c passes all three (darknet of
      2016, the paper's, had none of them in load_data_region; the paper names the last two).
    - boxes move with the crop and flip, are clipped to the image, and are dropped below
      0.005 of its side (fill_truth_region's `w < .005 || h < .005`).
    """

    def __init__(self, size=448, jitter=0.2, hue=0.1, saturation=1.5, exposure=1.5):
        super().__init__(size)
        self.jitter, self.hue, self.saturation, self.exposure = jitter, hue, saturation, exposure

    def geometry(self, sizes, boxes, valid, generator):
        count, device = len(sizes), sizes.device
        heights, widths = sizes.unbind(1)
        limits = (torch.stack([widths, heights, widths, heights], dim=1) * self.jitter).trunc()
        offsets = (uniform(-1.0, 1.0, (count, 4), generator, device) * limits).trunc()
        windows = torch.stack([offsets[:, 0], offsets[:, 1], widths - offsets[:, 2],
                               heights - offsets[:, 3]], dim=1)
        flips = torch.rand(count, generator=generator, device=device) < 0.5
        return windows, flips

    def colour(self, pixels, generator):
        count, device = len(pixels), pixels.device
        hue = uniform(-self.hue, self.hue, count, generator, device)
        saturation = rand_scale(self.saturation, count, generator, device)
        exposure = rand_scale(self.exposure, count, generator, device)
        sixths, chroma, value = hexcone(pixels)   # distort_image, on 0..255 values
        exposure = per_image(exposure)
        return from_hexcone(sixths + 6 * per_image(hue),
                                     chroma * per_image(saturation) * exposure,
                                     value * exposure).clamp(0, 255)

    def keeps(self, moved, clipped):
        smallest = 0.005 * self.size
        return ((clipped[..., 2] - clipped[..., 0] >= smallest)
                & (clipped[..., 3] - clipped[..., 1] >= smallest))


@dataclass(frozen=True)
class Distortion:
    """Caffe SSD's photometric distortion, with ssd_pascal.py's train_transform_param values
    (distort_param; random_order_prob is 0 there, so the channels keep their order)."""
    brightness_prob: float = 0.5
    brightness_delta: float = 32       # added to 0..255 pixel values: AdjustBrightness
    contrast_prob: float = 0.5
    contrast_lower: float = 0.5        # pixel values multiplied: AdjustContrast
    contrast_upper: float = 1.5
    saturation_prob: float = 0.5
    saturation_lower: float = 0.5      # HSV saturation multiplied: AdjustSaturation
    saturation_upper: float = 1.5
    hue_prob: float = 0.5
    hue_delta: float = 18              # in OpenCV's 8-bit hue unit of 2 degrees: +-36 degrees


class CaffeSSD(Resize):
    """SSD300's training augmentation as Caffe's examples/ssd/ssd_pascal.py configures it
    (weiliu89/caffe, ssd branch: src/caffe/util/im_transforms.cpp ApplyDistort,
    src/caffe/data_transformer.cpp ExpandImage, src/caffe/util/sampler.cpp, bbox_util.cpp
    MeetEmitConstraint; Liu et al. 2016, section 3.6).

    - photometric distortion (ApplyDistort): with probability 1/2 the order brightness,
      contrast, saturation, hue, else brightness, saturation, hue, contrast; each applied with
      probability 1/2: brightness + uniform(-32, 32), contrast x uniform(0.5, 1.5) on the pixel
      values, saturation x uniform(0.5, 1.5) and hue + uniform(-18, 18) of 180 in HSV.
    - zoom-out (expand_param): with probability 1/2 the image is placed at a random integer
      offset on a canvas of the mean colour, uniform(1, 4) times its width and height.
    - the batch samplers: the whole image, and for each minimum IoU 0.1, 0.3, 0.5, 0.7, 0.9
      and for "any overlap" the first of 50 trials (scale uniform(0.3, 1) of the zoomed-out
      image's sides, aspect ratio uniform(0.5, 2) clamped to [scale^2, 1/scale^2]) whose IoU
      with an object meets the bound; one of the samples found is taken at random.
    - boxes whose centre lies outside the crop are dropped (emit_constraint CENTER), the others
      clipped to it; mirror with probability 1/2; resize (WARP) to size x size.

    Where this departs from Caffe:
    - a trial counts only when an object that meets its IoU bound also has its centre inside
      the crop (ssd.pytorch's and torchvision's RandomIoUCrop's rule), so a crop never leaves an
      image without a target; Caffe accepts a crop for an object whose centre it then drops.
    - the crop is judged on the boxes that are trained on: the difficult ones are dropped before
      (voc2007/data.py); ssd_pascal.py trains on them too (train_on_diff_gt = True).
    - one resampling, bilinear: Caffe's training resize picks one of linear, area, nearest,
      cubic and Lanczos at random (resize_param interp_mode), its test-time resize is linear.
    - the crop is continuous (sub-pixel), so pixels and boxes agree exactly; Caffe crops whole
      pixels and moves the boxes by the unrounded crop (under a pixel apart).
    - the distortion runs on the warped image, before the mean colour is blended in (Caffe
      distorts the original image before zooming out: the same up to how interpolation mixes
      with clipping), in float with clipping after each step and one rounding at the end
      (Caffe rounds to 8 bits after each step); the hue turns round the colour circle where
      Caffe's 8-bit hue saturates at 0 below red.
    """
    fill = MEAN_COLOUR
    EXPAND_PROB = 0.5
    MAX_EXPAND_RATIO = 4.0
    SCALE = (0.3, 1.0)
    ASPECT_RATIO = (0.5, 2.0)
    MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9, 0.0)   # the last: max_jaccard_overlap 1.0, any overlap
    MAX_TRIALS = 50

    def __init__(self, size=300, distortion=Distortion()):
        super().__init__(size)
        self.distortion = distortion

    def geometry(self, sizes, boxes, valid, generator):
        count, device = len(sizes), sizes.device
        heights, widths = sizes.unbind(1)
        # ExpandImage: a canvas int(ratio * side) wide and high, the image at floor(offset)
        expand = torch.rand(count, generator=generator, device=device) <= self.EXPAND_PROB
        ratio = torch.where(expand, uniform(1.0, self.MAX_EXPAND_RATIO, count, generator, device),
                            1.0)
        canvas_width, canvas_height = (widths * ratio).trunc(), (heights * ratio).trunc()
        left = -(torch.rand(count, generator=generator, device=device)
                 * (canvas_width - widths)).floor()
        top = -(torch.rand(count, generator=generator, device=device)
                * (canvas_height - heights)).floor()
        whole = torch.stack([left, top, left + canvas_width, top + canvas_height], dim=1)

        # SampleBBox for every sampler and trial at once, in the zoomed-out image's fractions
        shape = (count, len(self.MIN_IOUS), self.MAX_TRIALS)
        scale = uniform(*self.SCALE, shape, generator, device)
        aspect = uniform(*self.ASPECT_RATIO, shape, generator, device)
        aspect = torch.minimum(torch.maximum(aspect, scale ** 2), 1 / scale ** 2)
        crop_width, crop_height = scale * aspect.sqrt(), scale / aspect.sqrt()
        crop_left = torch.rand(shape, generator=generator, device=device) * (1 - crop_width)
        crop_top = torch.rand(shape, generator=generator, device=device) * (1 - crop_height)
        span_x = (canvas_width)[:, None, None]
        span_y = (canvas_height)[:, None, None]
        crops = torch.stack([left[:, None, None] + crop_left * span_x,
                             top[:, None, None] + crop_top * span_y,
                             left[:, None, None] + (crop_left + crop_width) * span_x,
                             top[:, None, None] + (crop_top + crop_height) * span_y], dim=-1)

        # SatisfySampleConstraint, plus the object's centre inside the crop
        flat = crops.flatten(1, 2)                                                 # (B, K*T, 4)
        iou = pairwise_iou(flat, boxes)                                            # (B, K*T, M)
        centre_x = (boxes[..., 0] + boxes[..., 2])[:, None, :] / 2
        centre_y = (boxes[..., 1] + boxes[..., 3])[:, None, :] / 2
        centred = ((centre_x >= flat[..., 0:1]) & (centre_x <= flat[..., 2:3])
                   & (centre_y >= flat[..., 1:2]) & (centre_y <= flat[..., 3:4]))
        bound = device_constant(self.MIN_IOUS, device).repeat_interleave(self.MAX_TRIALS)
        meets = (iou >= bound[None, :, None]) & centred & valid[:, None, :]
        satisfied = meets.any(-1).view(shape)                                      # (B, K, T)
        first = satisfied.to(torch.uint8).argmax(-1)                               # first True
        found = satisfied.any(-1)                                                  # (B, K)
        chosen = crops.gather(2, first[:, :, None, None].expand(-1, -1, 1, 4))[:, :, 0]

        # one of the samples found at random, the whole image always among them
        candidates = torch.cat([whole[:, None], chosen], dim=1)                   # (B, K+1, 4)
        found = torch.cat([torch.ones_like(found[:, :1]), found], dim=1)
        pick = (torch.rand(count, generator=generator, device=device)
                * found.sum(1)).floor().clamp(max=found.shape[1] - 1)
        place = found.cumsum(1) - 1
        index = (found & (place == pick[:, None])).to(torch.uint8).argmax(1)
        windows = candidates.gather(1, index[:, None, None].expand(-1, 1, 4))[:, 0]
        flips = torch.rand(count, generator=generator, device=device) < 0.5
        return windows, flips

    def colour(self, pixels, generator):
        spec, count, device = self.distortion, len(pixels), pixels.device

        def draw(probability, low, high, neutral):
            applied = torch.rand(count, generator=generator, device=device) < probability
            return per_image(torch.where(applied, uniform(low, high, count, generator, device),
                                         neutral))

        contrast_first = per_image(torch.rand(count, generator=generator, device=device) > 0.5)
        brightness = draw(spec.brightness_prob, -spec.brightness_delta, spec.brightness_delta,
                          0.0)
        contrast = draw(spec.contrast_prob, spec.contrast_lower, spec.contrast_upper, 1.0)
        saturation = draw(spec.saturation_prob, spec.saturation_lower, spec.saturation_upper,
                          1.0)
        hue = draw(spec.hue_prob, -spec.hue_delta, spec.hue_delta, 0.0) / 180

        pixels = (pixels + brightness[:, None]).clamp(0, 255)
        pixels = (pixels * torch.where(contrast_first, contrast, 1.0)[:, None]).clamp(0, 255)
        sixths, chroma, value = hexcone(pixels)
        chroma = torch.minimum(chroma * saturation, value)   # 8-bit HSV: saturation up to 1
        pixels = from_hexcone(sixths + 6 * hue, chroma, value).clamp(0, 255)
        return (pixels * torch.where(contrast_first, 1.0, contrast)[:, None]).clamp(0, 255)

    def keeps(self, moved, clipped):
        centre_x = (moved[..., 0] + moved[..., 2]) / 2
        centre_y = (moved[..., 1] + moved[..., 3]) / 2
        inside = ((centre_x >= 0) & (centre_x <= self.size)
                  & (centre_y >= 0) & (centre_y <= self.size))
        return inside & super().keeps(moved, clipped)
