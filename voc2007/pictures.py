"""detections.png: test images with a model's best detections and their ground truth."""
import math

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from common.files import save_figure  # noqa: E402
from voc2007.data import CLASSES  # noqa: E402

DRAWN_IMAGES = 8       # test images in detections.png
DRAWN_TOP = 5          # the best detections drawn per image...
DRAWN_MIN_SCORE = 0.01  # ...that score at least this: a weak model shows its best guesses too


def plot_detections(dataset, detections, path, title, count=DRAWN_IMAGES):
    """The first `count` images of `dataset` with their top DRAWN_TOP detections (solid, class
    and score; an image without any scoring DRAWN_MIN_SCORE says so) and their ground truth
    (dashed, labelled with the class; difficult objects in grey)."""
    count = min(count, len(dataset))
    columns = min(count, 4) or 1
    rows = max(1, math.ceil(count / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(4 * columns, 3.6 * rows), squeeze=False)
    colours = plt.get_cmap("tab20")
    for axes in grid.flat:
        axes.axis("off")
    for index, axes in zip(range(count), grid.flat):
        with Image.open(dataset.annotations[index].image_path) as image:
            axes.imshow(image.convert("RGB"))
            width, height = image.size
        truth = dataset.ground_truth(index)
        for box, label, difficult in zip(truth["boxes"].tolist(), truth["labels"].tolist(),
                                         truth["difficult"].tolist()):
            colour = "grey" if difficult else colours(label)
            axes.add_patch(plt.Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                         linestyle="--", linewidth=1.2, color=colour))
            name = CLASSES[label] + (" (difficult)" if difficult else "")
            axes.text(*inside(box[0] + 2, box[3] - 2, width, height), name, fontsize=6,
                      style="italic", va="bottom", clip_on=True,
                      bbox=dict(facecolor="white", edgecolor=colour, alpha=0.85, pad=0.8))
        drawn = top_detections(detections[index])
        for box, label, score in drawn:
            colour = colours(label)
            axes.add_patch(plt.Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                         linewidth=2, color=colour))
            x, y = inside(box[0], box[1], width, height)
            axes.text(x, y, f"{CLASSES[label]} {score:.2f}", fontsize=6.5, clip_on=True,
                      va="top" if y < 0.06 * height else "bottom", color=text_colour(colour),
                      bbox=dict(facecolor=colour, edgecolor="none", pad=0.8))
        if not drawn:
            axes.text(0.5, 0.5, f"no detection scores\n{DRAWN_MIN_SCORE} or more", ha="center",
                      va="center", transform=axes.transAxes, fontsize=8,
                      bbox=dict(facecolor="white", edgecolor="grey", alpha=0.85))
        axes.set_xlim(0, width)   # boxes that reach out of the image are cut at its edge
        axes.set_ylim(height, 0)
        axes.set_title(dataset.annotations[index].image_id, fontsize=8)
    figure.suptitle(f"{title}: each image's top {DRAWN_TOP} detections scoring "
                    f"{DRAWN_MIN_SCORE} or more (solid, class and score); ground truth "
                    "(dashed, class in italics)", fontsize=10)
    save_figure(figure, path)
    plt.close(figure)


def inside(x, y, width, height):
    """A label's anchor moved into the image."""
    return min(max(x, 0), width * 0.8), min(max(y, 0), height)


def text_colour(background):
    """Black on a light colour, white on a dark one."""
    red, green, blue = background[:3]
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.6 else "white"


def top_detections(found):
    """The (box, label, score) of the best DRAWN_TOP detections of `found` that score
    DRAWN_MIN_SCORE or more, best first."""
    ranked = sorted(zip(found["boxes"].tolist(), found["labels"].tolist(),
                        found["scores"].tolist()), key=lambda detection: -detection[2])
    return [detection for detection in ranked[:DRAWN_TOP] if detection[2] >= DRAWN_MIN_SCORE]
