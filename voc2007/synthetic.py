"""Small synthetic datasets in PASCAL VOC 2007's exact layout, for tests and quick runs:
<root>/VOCdevkit/VOC2007/{JPEGImages/*.jpg, Annotations/*.xml, ImageSets/Main/*.txt}.

Each image (a noisy grey background of random size) holds 1-4 filled shapes; every class has
its own shape and colour, so a small detector can learn them. About 10% of the objects are
flagged difficult and drawn faint (hard to see, like VOC's difficult ones); objects cut by the
image border are flagged truncated. Everything follows from the seed.

    python voc2007/synthetic.py --out DIR --trainval 200 --test 100
"""
import argparse
import json
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.errors import UserError  # noqa: E402
from voc2007.data import CLASSES  # noqa: E402

DEFAULT_CLASSES = CLASSES[:5]   # aeroplane, bicycle, bird, boat, bottle: labels 0-4
SHAPES = ("rectangle", "ellipse", "triangle")
# 20 well-separated colours (Sasha Trubetskoy's list), one per class in CLASSES' order
COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
           (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
           (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128))
DIFFICULT_FRACTION = 0.1
ANYWHERE_FRACTION = 0.25   # shapes free to cross the border (about half of them do)
FAINT = 0.35   # a difficult object's colour: 35% of the way from the background to its own
MARKER = "synthetic.json"   # the parameters of a generated set, so a rerun can recognise it


def style(name):
    """(shape, RGB colour) of a class: shapes cycle, colours are all different."""
    index = CLASSES.index(name)
    return SHAPES[index % len(SHAPES)], COLOURS[index]


def write_synthetic_voc(root, trainval=40, test=20, seed=0, min_size=120, max_size=260,
                        classes=DEFAULT_CLASSES, log=None):
    """Write `trainval` + `test` images into root/VOCdevkit/VOC2007 (train and val: the even and
    odd places of trainval) and return that folder.

    The set is built in a scratch folder and moved into place whole. A set already there that
    was generated with the same parameters is kept; one generated with others is replaced; a
    VOC2007 folder that this function did not write is never touched (UserError).
    """
    classes = tuple(classes)
    unknown = [name for name in classes if name not in CLASSES]
    if unknown or not classes or not 0 < min_size <= max_size:
        raise UserError(f"synthetic VOC: classes must be VOC class names (got {unknown or 'none'})"
                        f" and 0 < min_size <= max_size (got {min_size}, {max_size})")
    params = {"trainval": trainval, "test": test, "seed": seed, "min_size": min_size,
              "max_size": max_size, "classes": list(classes)}
    folder = Path(root) / "VOCdevkit" / "VOC2007"
    if folder.exists():
        if not (folder / MARKER).is_file():
            raise UserError(f"{folder} exists and was not written by voc2007/synthetic.py; "
                            "choose another --out or move it away.")
        if json.loads((folder / MARKER).read_text()) == params:
            if log:
                log(f"{folder} already holds this synthetic set")
            return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=folder.parent))
    scratch.chmod(0o755)   # mkdtemp's folders are private; the data set is not
    try:
        write_set(scratch, params, np.random.default_rng(seed))
        if folder.exists():
            shutil.rmtree(folder)
        scratch.replace(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)   # gone already unless something failed
    if log:
        log(f"wrote {trainval} trainval and {test} test synthetic images to {folder}")
    return folder


def write_rectangles_voc(root, images, background=(40, 40, 40)):
    """A VOC2007 folder under root for tests that measure boxes on the pixels, and its path:
    image k of `images` (ids 000001, ...) is (width, height, objects), each object (name,
    xmin, ymin, xmax, ymax, difficult) in VOC's 1-based inclusive pixels, drawn as a filled
    rectangle of its class' colour (style(name)) on a uniform `background`. The JPEGs are
    saved at quality 100 without chroma subsampling, so edges stay within a few levels.
    trainval, train and test list every image."""
    folder = Path(root) / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True)
    ids = [f"{number:06d}" for number in range(1, len(images) + 1)]
    for image_id, (width, height, objects) in zip(ids, images):
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        for name, x0, y0, x1, y1, _ in objects:
            draw.rectangle((x0 - 1, y0 - 1, x1 - 1, y1 - 1), fill=style(name)[1])
        image.save(folder / "JPEGImages" / f"{image_id}.jpg", quality=100, subsampling=0)
        write_annotation(folder / "Annotations" / f"{image_id}.xml", image_id, (width, height),
                         [{"name": name, "truncated": False, "difficult": difficult,
                           "box": (x0, y0, x1, y1)}
                          for name, x0, y0, x1, y1, difficult in objects])
    for split in ("trainval", "train", "test"):
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text(
            "".join(f"{image_id}\n" for image_id in ids))
    return folder


def write_set(folder, params, rng):
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True)
    count = params["trainval"] + params["test"]
    ids = [f"{number:06d}" for number in range(1, count + 1)]   # VOC's ids: 000001, ...
    for image_id in ids:
        width, height = rng.integers(params["min_size"], params["max_size"] + 1, size=2)
        image, objects = draw_image(rng, int(width), int(height), params["classes"])
        image.save(folder / "JPEGImages" / f"{image_id}.jpg", quality=90)
        write_annotation(folder / "Annotations" / f"{image_id}.xml", image_id, image.size,
                         objects)
    trainval, test = ids[:params["trainval"]], ids[params["trainval"]:]
    lists = {"trainval": trainval, "test": test, "train": trainval[0::2], "val": trainval[1::2]}
    for split, names in lists.items():
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text(
            "".join(f"{name}\n" for name in names))
    (folder / MARKER).write_text(json.dumps(params, indent=1) + "\n")


def draw_image(rng, width, height, classes):
    """A noisy grey image with 1-4 shapes; returns it and the objects' annotations."""
    grey = int(rng.integers(70, 180))
    pixels = grey + rng.integers(-25, 26, size=(height, width, 3))
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    objects, placed = [], []
    for _ in range(int(rng.integers(1, 5))):
        name = classes[int(rng.integers(len(classes)))]
        difficult = bool(rng.random() < DIFFICULT_FRACTION)
        box, truncated = place(rng, width, height, placed)
        if box is None:
            continue
        shape, colour = style(name)
        if difficult:
            colour = tuple(round(grey + FAINT * (channel - grey)) for channel in colour)
        draw_shape(draw, shape, box, colour)
        placed.append(box)
        x0, y0, x1, y1 = (min(max(value, 0), limit - 1)   # the visible part, in the image
                          for value, limit in zip(box, (width, height, width, height)))
        objects.append({"name": name, "truncated": truncated, "difficult": difficult,
                        "box": (x0 + 1, y0 + 1, x1 + 1, y1 + 1)})   # VOC's 1-based pixels
    return image, objects


def place(rng, width, height, placed, tries=10):
    """A shape's box (x0, y0, x1, y1: 0-based inclusive pixels, beyond the border when the
    shape is cut by it) that overlaps the earlier ones little, and whether it is cut;
    (None, False) when none fits."""
    for _ in range(tries):
        box_width = max(2, int(rng.uniform(0.2, 0.55) * width))
        box_height = max(2, int(rng.uniform(0.2, 0.55) * height))
        # most shapes lie inside the image; the others have their centre anywhere in it
        inside = rng.random() >= ANYWHERE_FRACTION
        margin_x, margin_y = (box_width / 2, box_height / 2) if inside else (0, 0)
        x0 = int(rng.uniform(margin_x, width - margin_x) - box_width / 2)
        y0 = int(rng.uniform(margin_y, height - margin_y) - box_height / 2)
        box = (x0, y0, x0 + box_width - 1, y0 + box_height - 1)
        if all(iou(box, other) < 0.3 for other in placed):
            return box, x0 < 0 or y0 < 0 or box[2] >= width or box[3] >= height
    return None, False


def iou(a, b):
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (area - inter)


def draw_shape(draw, shape, box, colour):
    x0, y0, x1, y1 = box
    if shape == "rectangle":
        draw.rectangle(box, fill=colour)
    elif shape == "ellipse":
        draw.ellipse(box, fill=colour)
    else:   # a triangle standing on the box's bottom edge
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=colour)


def write_annotation(path, image_id, size, objects):
    """An XML in VOC 2007's format."""
    annotation = ET.Element("annotation")
    add(annotation, "folder", "VOC2007")
    add(annotation, "filename", f"{image_id}.jpg")
    source = add(annotation, "source")
    add(source, "database", "synthetic (voc2007/synthetic.py)")
    size_node = add(annotation, "size")
    for key, value in zip(("width", "height", "depth"), (*size, 3)):
        add(size_node, key, value)
    add(annotation, "segmented", 0)
    for obj in objects:
        node = add(annotation, "object")
        add(node, "name", obj["name"])
        add(node, "pose", "Unspecified")
        add(node, "truncated", int(obj["truncated"]))
        add(node, "difficult", int(obj["difficult"]))
        box = add(node, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), obj["box"]):
            add(box, key, value)
    tree = ET.ElementTree(annotation)
    ET.indent(tree, "\t")
    tree.write(path)


def add(parent, tag, text=None):
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = str(text)
    return node


def main(argv=None):
    """Write a synthetic VOC 2007 set into <out>/VOCdevkit/VOC2007."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", required=True, help="data dir to write VOCdevkit/ into")
    parser.add_argument("--trainval", type=cli.nonnegative_int, default=40)
    parser.add_argument("--test", type=cli.nonnegative_int, default=20)
    parser.add_argument("--seed", type=cli.nonnegative_int, default=0)
    parser.add_argument("--min-size", type=cli.positive_int, default=120,
                        help="smallest image side in pixels (%(default)s)")
    parser.add_argument("--max-size", type=cli.positive_int, default=260,
                        help="largest image side in pixels (%(default)s)")
    parser.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES),
                        help="VOC class names to draw (default: %(default)s)")
    args = parser.parse_args(argv)
    write_synthetic_voc(args.out, trainval=args.trainval, test=args.test, seed=args.seed,
                        min_size=args.min_size, max_size=args.max_size, classes=args.classes,
                        log=print)


if __name__ == "__main__":
    sys.exit(cli.run(main))
