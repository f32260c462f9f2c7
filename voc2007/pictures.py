"""detections.png: test images with the detections of a model and their ground truth."""
import math

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from common.files import save_figure  # noqa: E402
from voc2007.data import CLASSES  # noqa: E402

DRAWN_IMAGES = 8     # test images in detections.png
DRAWN_SCORE = 0.3    # the detections drawn there score at least this


def plot_detections(dataset, detections, path, title, count=DRAWN_IMAGES):
    """The first `count` images of `dataset` with their detections (solid, score >=
    DRAWN_SCORE) and ground truth (dashed; difficult in grey)."""
    count = min(count, len(dataset))
    columns = min(count, 4) or 1
    rows = max(1, math.ceil(count / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False)
    colours = plt.get_cmap("tab20")
    for axes in grid.flat:
        axes.axis("off")
    for index, axes in zip(range(count), grid.flat):
        truth = dataset.ground_truth(index)
        with Image.open(dataset.annotations[index].image_path) as image:
            axes.imshow(image.convert("RGB"))
        for box, label, difficult in zip(truth["boxes"].tolist(), truth["labels"].tolist(),
                                         truth["difficult"].tolist()):
            axes.add_patch(plt.Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                         linestyle="--", linewidth=1,
                                         color="grey" if difficult else colours(label)))
        found = detections[index]
        for box, label, score in zip(found["boxes"].tolist(), found["labels"].tolist(),
                                     found["scores"].tolist()):
            if score < DRAWN_SCORE:
                continue
            axes.add_patch(plt.Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                         linewidth=2, color=colours(label)))
            axes.text(box[0], box[1], f"{CLASSES[label]} {score:.2f}", fontsize=7,
                      color="white", backgroundcolor=colours(label), va="bottom")
        axes.set_title(dataset.annotations[index].image_id, fontsize=8)
    figure.suptitle(f"{title}: detections scoring {DRAWN_SCORE} or more (solid), ground truth "
                    "(dashed)")
    save_figure(figure, path)
    plt.close(figure)
