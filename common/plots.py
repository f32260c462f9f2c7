"""The figures of a run directory: curves.png, confusion.png, worst.png, pr_curves.png."""
import math

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.files import save_figure  # noqa: E402


def plot_curves(history, panels, path, title):
    """Per-epoch curves side by side in one figure. `panels`: one (y label, lines) pair per
    panel, each line a (legend, history key, scale); an epoch without the key (an evaluation
    that did not run) is skipped."""
    figure, grid = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axes, (label, lines) in zip(grid[0], panels):
        for legend, key, scale in lines:
            points = [(r["epoch"], r[key] * scale) for r in history if r.get(key) is not None]
            if points:
                axes.plot(*zip(*points), marker=".", label=legend)
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    save_figure(figure, path)
    plt.close(figure)


def plot_confusion(confusion, classes, path, title):
    """Row-normalised confusion matrix: each row (true class) sums to 1."""
    confusion = np.asarray(confusion, dtype=np.float64)
    normalised = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    size = max(5.0, 0.55 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046)
    ticks = range(len(classes))
    axes.set_xticks(ticks, classes, rotation=45, ha="right")
    axes.set_yticks(ticks, classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for true in ticks:
        for predicted in ticks:
            value = normalised[true, predicted]
            axes.text(predicted, true, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.5 else "black")
    axes.set_title(title)
    save_figure(figure, path)
    plt.close(figure)


def plot_worst(images, labels, probabilities, classes, path, title):
    """The most confidently wrong images, captioned true -> predicted (probability)."""
    count = len(images)
    columns = min(count, 5) or 1
    rows = max(1, math.ceil(count / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.5 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, image, label, probability in zip(grid.flat, images, labels, probabilities):
        predicted = int(np.argmax(probability))
        picture = np.asarray(image).transpose(1, 2, 0)
        axes.imshow(picture.squeeze(2) if picture.shape[2] == 1 else picture, cmap="gray")
        axes.set_title(f"{classes[label]} -> {classes[predicted]}\n"
                       f"p={probability[predicted]:.2f}", fontsize=8)
    if count == 0:
        grid[0, 0].text(0.5, 0.5, "no mistakes", ha="center")
    figure.suptitle(title)
    save_figure(figure, path)
    plt.close(figure)


def plot_pr_curves(curves, classes, path, title):
    """One precision-recall curve per class; `curves` holds (precision, recall, AP) each."""
    figure, axes = plt.subplots(figsize=(7, 6))
    for name, (precision, recall, ap) in zip(classes, curves):
        axes.plot(recall, precision, label=f"{name} (AP {ap * 100:.1f})")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower left")
    axes.set_title(title)
    save_figure(figure, path)
    plt.close(figure)


def plot_comparison(rows, path, title):
    """Horizontal bars per report row: ours, the report's and the paper's figure (%), from
    make report's Comparison rows; ours is hatched where the run is not the row's recipe."""
    height = 0.3 * len(rows) + 1.5
    figure, axes = plt.subplots(figsize=(9, height))
    positions = np.arange(len(rows))[::-1]
    bars = [("ours", "ours", "tab:blue", 0.27), ("report", "report", "tab:orange", 0.0),
            ("paper", "paper", "tab:green", -0.27)]
    for legend, field, colour, offset in bars:
        shown = [(position, float(getattr(row, field)), row.partial and field == "ours")
                 for position, row in zip(positions, rows) if getattr(row, field) is not None]
        for partial in (False, True):
            part = [(y, width) for y, width, marked in shown if marked == partial]
            if part:
                y, width = zip(*part)
                axes.barh(np.array(y) + offset, width, height=0.27, color=colour,
                          hatch="//" if partial else None, alpha=0.5 if partial else 1.0,
                          label=f"{legend}, not the row's recipe" if partial else legend)
    axes.set_yticks(positions, [row.label for row in rows], fontsize=7)
    axes.set_xlabel("test accuracy or mAP (%)")
    axes.set_xlim(0, 100)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title(title)
    save_figure(figure, path)
    plt.close(figure)
