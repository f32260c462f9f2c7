"""The figures of a run directory: curves.png, confusion.png, worst.png, pr_curves.png."""
import math
from textwrap import wrap

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from common.files import save_figure  # noqa: E402


def plot_curves(history, panels, path, title):
    """Per-epoch curves side by side in one figure. `panels`: one (y label, lines) pair per
    panel, each line a (legend, history key, scale); an epoch without the key (an evaluation
    that did not run) is skipped. Epochs are whole numbers on the axis; a panel of one point
    (or a flat line) gets a range around it instead of matplotlib's +-0.04."""
    figure, grid = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    epochs = [record["epoch"] for record in history]
    for axes, (label, lines) in zip(grid[0], panels):
        values = []
        for legend, key, scale in lines:
            points = [(r["epoch"], r[key] * scale) for r in history if r.get(key) is not None]
            if points:
                axes.plot(*zip(*points), marker="o" if len(points) == 1 else ".", label=legend,
                          clip_on=False)   # a point on the axis (an mAP of 0) stays whole
                values += [value for _, value in points]
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if epochs and max(epochs) - min(epochs) < 2:   # a tick per epoch, not 0.96-1.04
            axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        if values:
            axes.legend()
            span = flat_range(values, percent=any(scale == 100 for *_, scale in lines))
            if span:
                axes.set_ylim(*span)
        else:
            axes.text(0.5, 0.5, "not evaluated", ha="center", va="center",
                      transform=axes.transAxes, color="dimgrey")
    figure.suptitle(title)
    save_figure(figure, path)
    plt.close(figure)


def flat_range(values, percent):
    """A y range around values that are all (nearly) one number, or None when they spread:
    10% of the value either side, at least 1 point of a percentage or 0.1 of a loss; never
    below 0 for values that are not, never above 100 for a percentage."""
    low, high = min(values), max(values)
    if high - low > 1e-6 * max(1.0, abs(high)):
        return None
    pad = max(0.1 * abs(high), 1.0 if percent else 0.1)
    bottom, top = low - pad, high + pad
    if low >= 0:
        bottom = max(bottom, 0.0)
    if percent:
        top = min(top, 100.0) if high < 100 else 100.0 + pad / 5
    return bottom, top


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
    """One precision-recall curve per class; `curves` holds (precision, recall, AP) each. The
    legend stands beside the plot, so that it covers no curve; the classes of AP 0, whose
    curves lie on the axes (or are empty), are named in the plot."""
    figure, axes = plt.subplots(figsize=(9, 6))
    if len(classes) > 10:   # the default cycle has ten colours: VOC's 20 classes need 20
        axes.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    zero = []
    for name, (precision, recall, ap) in zip(classes, curves):
        if ap == 0:
            zero.append(name)
        axes.plot(recall, precision, label=f"{name} (AP {ap * 100:.1f})")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    if classes:
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if zero:
        every = len(zero) == len(classes)
        text = ("every class has AP 0: not one prediction is correct" if every else
                "AP 0 (not one correct prediction): " + ", ".join(zero))
        axes.text(0.5, 0.5 if every else -0.12, "\n".join(wrap(text, 90)), ha="center",
                  va="center" if every else "top", transform=axes.transAxes, fontsize=8,
                  bbox=dict(facecolor="white", edgecolor="grey"))   # below the axes
    axes.set_title(title)
    save_figure(figure, path)
    plt.close(figure)


# The overview figure's look of our figure per run state (common.runs), and of the references
OURS_STYLES = {"finished": dict(color="tab:blue", label="ours: the row's recipe, full length"),
               "partial": dict(color="lightsteelblue", hatch="///", edgecolor="tab:blue",
                               label="ours, partial: shorter or on part of the data"),
               "other recipe": dict(color="thistle", hatch="xx", edgecolor="tab:purple",
                                    label="ours, another recipe than the row's")}
REFERENCES = (("report", "tab:orange", "the report's figure (same recipe)"),
              ("paper", "tab:green", "the paper's figure (same recipe)"))
BAR = 0.26   # height of one bar; a row has up to three


def plot_comparison(rows, path, title):
    """Horizontal bars per report row, one panel per section (dataset): ours, the report's and
    the paper's figure (%), from make report's Comparison rows. Ours is drawn by the run's
    state (the row, partial, another recipe); a row without our figure says why (not run,
    diverged, ...). Every bar carries its value, so that one near zero is seen."""
    sections = list(dict.fromkeys(row.section for row in rows))
    counts = [sum(row.section == section for row in rows) for section in sections]
    figure, panels = plt.subplots(
        len(sections), 1, figsize=(11, 0.34 * len(rows) + 1.2 * len(sections) + 1),
        gridspec_kw=dict(height_ratios=[count + 1.5 for count in counts]), squeeze=False)
    for axes, section in zip(panels[:, 0], sections):
        members = [row for row in rows if row.section == section]
        positions = np.arange(len(members))[::-1]
        bars = {}   # legend -> (style, [(y, value)])
        for y, row in zip(positions, members):
            if row.ours is None:
                axes.text(0.5, y + BAR, row.state, va="center", fontsize=6.5, style="italic",
                          color="dimgrey")
            else:
                style = OURS_STYLES.get(row.state, OURS_STYLES["other recipe"])
                bars.setdefault(style["label"], (style, []))[1].append((y + BAR, row.ours))
            for field, colour, legend in REFERENCES:
                if getattr(row, field) is not None:
                    bars.setdefault(legend, (dict(color=colour, label=legend), []))[1].append(
                        (y - BAR * (field == "paper"), getattr(row, field)))
        for style, points in bars.values():
            y, values = zip(*points)
            style = dict(style)
            axes.barh(y, values, height=BAR, linewidth=0.8,   # the outline shows a bar at 0
                      edgecolor=style.pop("edgecolor", style["color"]), **style)
            for bar_y, value in points:
                axes.text(value + 0.6, bar_y, f"{value:.2f}", va="center", fontsize=5.5)
        axes.set_yticks(positions, [row.label for row in members], fontsize=7)
        axes.set_ylim(-1.5 * BAR - 0.3, len(members) - 1 + 2 * BAR + 0.3)
        axes.set_xlim(0, 108)
        axes.set_xticks(range(0, 101, 10))
        axes.grid(axis="x", alpha=0.3)
        axes.set_title(section, fontsize=10, loc="left")
    panels[-1, 0].set_xlabel("test accuracy or mAP (%)")
    handles = {label: handle for axes in panels[:, 0]
               for handle, label in zip(*axes.get_legend_handles_labels())}
    order = [style["label"] for style in OURS_STYLES.values()] + [legend
                                                                  for *_, legend in REFERENCES]
    labels = [label for label in order if label in handles]
    height = figure.get_figheight()
    figure.suptitle(title, y=1 - 0.1 / height)
    figure.legend([handles[label] for label in labels], labels, loc="upper center", ncol=3,
                  fontsize=8, bbox_to_anchor=(0.5, 1 - 0.35 / height), frameon=False)
    figure.subplots_adjust(left=0.36, right=0.98, top=1 - 1.0 / height, bottom=0.6 / height,
                           hspace=1.2 / (height / len(sections)))   # labels need the left 36%
    save_figure(figure, path)
    plt.close(figure)
