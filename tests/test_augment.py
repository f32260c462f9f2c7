"""voc2007/augment.py through both loaders of voc2007/data.py: boxes that agree with the pixels,
the same distributions per sample and per batch, the flip of a known box, crops that keep a
target, and the reference recipes' parameters (darknet's jitter and rand_scale, Caffe's
additive brightness)."""
import math

import pytest
import torch

from voc2007.augment import (MEAN_COLOUR, CaffeSSD, DarknetYOLO, Distortion, Resize,
                             from_hexcone, hexcone)
from voc2007.data import (VOCDataset, VOCDeviceLoader, eval_transform, make_loader,
                          ssd_train_transform, to_voc_boxes)
from voc2007.synthetic import style, write_rectangles_voc

RED = "aeroplane"    # label 0, drawn (230, 25, 75)
GREEN = "bicycle"    # label 1, drawn (60, 180, 75)
DRAWN = {0: RED, 1: GREEN}
BACKGROUND = (40, 40, 40)   # write_rectangles_voc's
# the geometry alone (no colour changes), so that the rectangles keep their colour
GEOMETRY = {"yolo": lambda size: DarknetYOLO(size, hue=0, saturation=1, exposure=1),
            "ssd": lambda size: CaffeSSD(size, Distortion(brightness_prob=0, contrast_prob=0,
                                                          saturation_prob=0, hue_prob=0))}
PIXEL_TOLERANCE = 0.6   # an edge is measured to the nearest pixel boundary: half a pixel
# images of different sizes with a red and a green rectangle clear of the borders (1-based)
SCENES = [(120, 90, [(RED, 11, 21, 40, 60, 0), (GREEN, 71, 11, 110, 50, 0)]),
          (96, 128, [(RED, 6, 41, 35, 90, 0), (GREEN, 51, 21, 90, 60, 0)]),
          (140, 100, [(RED, 21, 31, 60, 70, 0), (GREEN, 91, 51, 130, 90, 0)]),
          (80, 80, [(RED, 5, 5, 30, 40, 0), (GREEN, 45, 35, 75, 70, 0)])]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("rectangles")
    write_rectangles_voc(root, SCENES)
    return root


def measured_box(image, name):
    """The continuous box of the pixels of `name`'s colour in a uint8 (3, H, W) image, or None.
    A pixel counts when that colour is the nearest of the ones drawn (the rectangles', the
    background's and the zoom-out's mean colour), so an edge pixel counts when over half of it
    comes from inside the rectangle."""
    palette = torch.tensor([style(name)[1] for name in DRAWN.values()]
                           + [BACKGROUND, MEAN_COLOUR], dtype=torch.float32)
    distances = (image.float().permute(1, 2, 0)[:, :, None, :] - palette).norm(dim=-1)
    mask = distances.argmin(-1) == list(DRAWN.values()).index(name)
    if not mask.any():
        return None
    rows, columns = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    return torch.tensor([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], dtype=torch.float32)


def loader_batches(dataset, path, epochs, batch_size=4):
    """The training batches of `epochs` epochs through the DataLoader ("sample") or the
    batched device path ("batch", on the CPU here)."""
    if path == "sample":
        loader = make_loader(dataset, batch_size=batch_size, train=True, workers=0, seed=5)
    else:
        loader = VOCDeviceLoader(dataset, batch_size=batch_size, device="cpu", seed=5)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        yield from loader


def boxes_seen(batches):
    """(image, box, label) of every box kept in the batches."""
    for images, boxes, labels, _ in batches:
        for image, image_boxes, image_labels in zip(images, boxes, labels):
            for box, label in zip(image_boxes, image_labels.tolist()):
                if label >= 0:
                    yield image, box, label


@pytest.mark.parametrize("path", ["sample", "batch"])
@pytest.mark.parametrize("recipe", ["yolo", "ssd"])
def test_boxes_agree_with_the_pixels(scenes, recipe, path):
    """Each kept box is measured on the output image (its rectangle's pixels): corners within
    PIXEL_TOLERANCE. Boxes under 2 pixels wide or high (YOLO keeps them from 0.005 of the
    side) are too thin to measure."""
    dataset = VOCDataset(scenes, "trainval", GEOMETRY[recipe](96), drop_difficult=True)
    worst, measured = 0.0, 0
    for image, box, label in boxes_seen(loader_batches(dataset, path, epochs=6)):
        if min(box[2] - box[0], box[3] - box[1]) < 2:
            continue
        found = measured_box(image, DRAWN[label])
        assert found is not None, box
        worst = max(worst, float((found - box).abs().max()))
        measured += 1
    assert measured >= 30
    assert worst <= PIXEL_TOLERANCE


def statistics(batches):
    """(value, standard error) of: the log of the red (left) object's size (the square root of
    its area) and its spread, the spread of the log of its aspect ratio, the share of images
    where it lies right of the green one (a flip), the boxes dropped per image, and the share
    of batches whose images are not all flipped alike (the parameters are drawn per image)."""
    sizes, aspects, flips, dropped, mixed = [], [], [], [], []
    for _, boxes, labels, lost in batches:
        dropped += lost.tolist()
        batch_flips = []
        for image_boxes, image_labels in zip(boxes, labels):
            by_label = {label: box for box, label in zip(image_boxes, image_labels.tolist())}
            if 0 in by_label:
                width, height = (by_label[0][2:] - by_label[0][:2]).tolist()
                sizes.append(math.log(width * height) / 2)
                aspects.append(math.log(width / height))
            if 0 in by_label and 1 in by_label:
                batch_flips.append(float(by_label[0][0] > by_label[1][0]))
        flips += batch_flips
        if len(batch_flips) > 1:
            mixed.append(float(len(set(batch_flips)) > 1))
    size, aspect = torch.tensor(sizes), torch.tensor(aspects)
    return {"size": (size.mean(), size.std() / len(size) ** 0.5),
            "size_spread": (size.std(), size.std() / (2 * len(size)) ** 0.5),
            "aspect_spread": (aspect.std(), aspect.std() / (2 * len(aspect)) ** 0.5),
            "flip": share(flips), "dropped": (torch.tensor(dropped, dtype=torch.float).mean(),
                                              torch.tensor(dropped, dtype=torch.float).std()
                                              / len(dropped) ** 0.5),
            "mixed_batches": share(mixed)}


def share(outcomes):
    value = sum(outcomes) / len(outcomes)
    return value, (value * (1 - value) / len(outcomes)) ** 0.5


@pytest.mark.parametrize("recipe", ["yolo", "ssd"])
def test_per_sample_and_batched_paths_draw_alike(scenes, recipe):
    """40 epochs of the 4 images, in batches of 4, through each path: every statistic agrees
    within four standard errors of the difference (the draws are seeded, so the test is
    deterministic)."""
    dataset = VOCDataset(scenes, "trainval", GEOMETRY[recipe](48), drop_difficult=True)
    per_sample = statistics(loader_batches(dataset, "sample", epochs=40))
    batched = statistics(loader_batches(dataset, "batch", epochs=40))
    for name, (value, error) in per_sample.items():
        other, other_error = batched[name]
        assert abs(value - other) <= 4 * math.hypot(error, other_error), (name, value, other)
    assert 0.35 <= batched["flip"][0] <= 0.65
    assert batched["mixed_batches"][0] > 0.4    # 0 if a batch shared its draws
    assert batched["aspect_spread"][0] > 0.1    # both recipes change the aspect ratio
    if recipe == "ssd":
        assert batched["dropped"][0] > 0.2      # crops drop objects
        assert batched["size_spread"][0] > 0.4  # zoom-out and crops: a wide range of sizes


def test_a_flip_lands_on_the_mirrored_pixels_exactly(tmp_path):
    """VOC's box (11, 21, 30, 40) covers pixel columns 10..29 and rows 20..39 of a 64 x 64
    image: [10, 20, 30, 40] in the samples' coordinates, [34, 20, 54, 40] mirrored, and the
    rectangle's pixels lie exactly there, through the resize alone and through flips."""
    write_rectangles_voc(tmp_path, [(64, 64, [(RED, 11, 21, 30, 40, 0)])])
    plain = VOCDataset(tmp_path, "test", eval_transform(64))
    image, target = plain[0]
    assert torch.equal(target["boxes"], torch.tensor([[10.0, 20, 30, 40]]))
    assert torch.equal(measured_box(image, RED), target["boxes"][0])
    assert torch.equal(to_voc_boxes(target["boxes"]), plain.ground_truth(0)["boxes"])

    flips_only = DarknetYOLO(64, jitter=0, hue=0, saturation=1, exposure=1)
    dataset = VOCDataset(tmp_path, "trainval", flips_only)
    seen = set()
    for epoch in range(8):
        image, target = dataset[(0, epoch, 0)]
        box = target["boxes"][0]
        assert box.tolist() in ([10, 20, 30, 40], [34, 20, 54, 40])
        assert torch.equal(measured_box(image, RED), box)
        seen.add(box[0].item())
    assert seen == {10.0, 34.0}   # both flipped and not
    device = VOCDeviceLoader(dataset, batch_size=1, device="cpu")
    for epoch in range(4):
        device.set_epoch(epoch)
        for images, boxes, _, _ in device:
            assert boxes[0, 0].tolist() in ([10, 20, 30, 40], [34, 20, 54, 40])
            assert torch.equal(measured_box(images[0], RED), boxes[0, 0])


def test_a_crop_never_leaves_an_image_without_its_trained_boxes(tmp_path):
    """A large difficult object beside small ones: a crop accepted for the difficult box's sake
    would leave no target. Difficult boxes are dropped before the crop, and a crop counts only
    with an object's centre inside it."""
    write_rectangles_voc(tmp_path, [
        (200, 150, [(GREEN, 1, 1, 150, 150, 1), (RED, 170, 10, 185, 25, 0)]),
        (150, 200, [(GREEN, 20, 20, 150, 200, 1), (RED, 2, 2, 12, 12, 0),
                    (RED, 5, 180, 14, 195, 0)])])
    dataset = VOCDataset(tmp_path, "trainval", ssd_train_transform(64), drop_difficult=True)
    for epoch in range(60):
        for index in range(2):
            target = dataset[(1, epoch, index)][1]
            assert len(target["labels"]) > 0 and (target["labels"] == 0).all()
    device = VOCDeviceLoader(dataset, batch_size=2, device="cpu")
    for epoch in range(60):
        device.set_epoch(epoch)
        for _, _, labels, _ in device:
            assert ((labels == 0).sum(1) > 0).all()


def grey_images(count, levels=(60, 140)):
    """(count, 3, 4, 8) float images: the left half at levels[0], the right at levels[1]."""
    images = torch.empty(count, 3, 4, 8)
    images[..., :4], images[..., 4:] = levels
    return images


def test_caffe_brightness_is_additive_within_32():
    brightness_only = CaffeSSD(64, Distortion(brightness_prob=1, contrast_prob=0,
                                              saturation_prob=0, hue_prob=0))
    images = grey_images(400)
    out = brightness_only.colour(images, torch.Generator().manual_seed(0))
    shift = out - images
    assert torch.allclose(shift[..., :4], shift[..., 4:], atol=1e-3)   # added, not multiplied
    assert shift.abs().max() <= 32 + 1e-3
    assert shift.min() < -30 and shift.max() > 30    # the full range of +-32
    # the recipe's distortion: brightness on half of the images
    out = ssd_train_transform(64).colour(grey_images(400, (100, 100)),
                                         torch.Generator().manual_seed(0))
    changed = ((out - 100).abs() > 0.01).flatten(1).any(1).float().mean()
    assert 0.55 < changed < 0.95   # brightness or contrast, each on half: 3/4 of the images


def test_darknet_jitter_moves_each_edge_and_changes_the_aspect():
    yolo = DarknetYOLO(448)
    sizes = torch.tensor([[100.0, 200.0]]).repeat(2000, 1)   # 200 wide, 100 high
    windows, flips = yolo.geometry(sizes, None, None, torch.Generator().manual_seed(0))
    offsets = torch.stack([windows[:, 0], windows[:, 1], 200 - windows[:, 2],
                           100 - windows[:, 3]], 1)
    assert torch.equal(offsets, offsets.round())              # whole pixels, as crop_image
    assert offsets[:, [0, 2]].abs().max() == 39 and offsets[:, [1, 3]].abs().max() == 19
    width_scale = (windows[:, 2] - windows[:, 0]) / 200
    height_scale = (windows[:, 3] - windows[:, 1]) / 100
    aspect = (width_scale / height_scale).log()
    assert aspect.std() > 0.15 and aspect.min() < -0.4 and aspect.max() > 0.4
    assert 0.45 < flips.float().mean() < 0.55


def test_darknet_exposure_and_saturation_follow_rand_scale():
    """On a grey image hue and saturation change nothing and the value scales by the exposure:
    rand_scale(1.5), a factor uniform in [1, 1.5] inverted half of the time."""
    yolo = DarknetYOLO(448)
    out = yolo.colour(torch.full((2000, 3, 2, 2), 100.0), torch.Generator().manual_seed(0))
    factor = out[:, 0, 0, 0] / 100
    assert torch.allclose(out, factor.view(-1, 1, 1, 1) * 100, atol=1e-3)
    assert factor.min() >= 1 / 1.5 - 1e-4 and factor.max() <= 1.5 + 1e-4
    assert 0.45 < (factor < 1).float().mean() < 0.55
    above = factor[factor >= 1]
    assert abs(above.mean() - 1.25) < 0.02      # uniform in [1, 1.5]


def test_the_hexcone_follows_darknets_hsv_on_a_hand_example():
    """(200, 100, 50): value 200, chroma 150 (saturation 0.75), hue (100 - 50) / 150 = 1/3 of
    a sixth. darknet's distort_image with hue + 0.1, saturation x 1.2, exposure x 0.8 gives
    h = 1/18 + 0.1, s = 0.9, v = 160, and hsv_to_rgb in the first sixth (f = 6h = 14/15):
    r = v = 160, g = v (1 - s (1 - f)) = 150.4, b = v (1 - s) = 16. A turn of the whole
    circle changes nothing."""
    sixths, chroma, value = hexcone(torch.tensor([[200.0, 100.0, 50.0]]))
    assert torch.allclose(torch.cat([sixths * 3, chroma, value]), torch.tensor([1.0, 150, 200]))
    for turns in (0, 1, -1):
        rgb = from_hexcone(sixths + 0.6 + 6 * turns, chroma * 1.2 * 0.8, value * 0.8)
        assert torch.allclose(rgb, torch.tensor([[160.0, 150.4, 16.0]]), atol=1e-3)


def test_resize_keeps_every_box_and_draws_nothing():
    images = torch.randint(0, 255, (2, 3, 30, 40), dtype=torch.uint8)
    boxes = torch.tensor([[[0.0, 0, 40, 30], [5, 5, 6, 6]], [[1, 2, 3, 4], [0, 0, 0, 0]]])
    labels = torch.tensor([[3, 4], [5, -1]])
    sizes = torch.tensor([[30, 40], [20, 10]])
    out = Resize(20)(images, sizes, boxes, labels)
    assert torch.allclose(out.boxes[0], torch.tensor([[0.0, 0, 20, 20], [2.5, 10 / 3, 3, 4]]))
    assert torch.allclose(out.boxes[1, 0], torch.tensor([2.0, 2, 6, 4]))
    assert out.labels.tolist() == [[3, 4], [5, -1]] and out.dropped.tolist() == [0, 0]
    assert out.origin.tolist() == [[0, 1], [0, -1]]
