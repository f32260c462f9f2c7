"""Report 000's PASCAL VOC 2007 tables (per-class AP of YOLOv1 and SSD on train and test),
filled from runs/voc2007/ for `make report`, beside the report's figures and the papers'."""
from common.report import Elsewhere, compare, comparable, markdown_table, reference
from common.runs import detection_figures, find_run
from voc2007.data import CLASSES, FULL_SIZES

SOURCES = ("Report: 000, section 5.3, tables 'Pascal VOC 2007 Performance (YOLOv1)' (600 "
           "epochs of the tutorial's recipe) and 'Pascal VOC 2007 Performance 1 and 2 (SSD)' "
           "(76 and 383 epochs), its own mAP helper. Papers: YOLOv1, Redmon et al. (2016), "
           "Table 3: 63.4 mAP on VOC 2007 test, trained on VOC 2007+2012 (no per-class figures "
           "for 2007); SSD300, Liu et al. (2016), Table 1: 68.0 mAP, trained on VOC 2007 "
           "trainval alone. Each row is set against the figure of its own recipe; a figure in "
           "parentheses is of another recipe and not compared. Ours: the VOC 2007 devkit's "
           "11-point AP, difficult objects ignored.")
FIGURES = detection_figures(len(CLASSES))

# The report's per-class AP (%), VOC's class order, then the mAP
REPORT_YOLO = {
    "train": [85.49, 99.12, 97.98, 89.67, 97.63, 99.55, 93.42, 99.46, 98.81, 99.59, 97.19,
              98.77, 97.73, 96.12, 98.14, 96.79, 92.17, 99.99, 96.96, 91.95, 96.33],
    "test": [9.26, 3.64, 1.19, 0.04, 0.00, 0.07, 7.96, 2.31, 0.00, 0.03, 0.53, 0.91, 17.19, 2.63,
             2.13, 0.00, 0.00, 0.81, 0.45, 0.00, 2.61],
}
REPORT_SSD_76 = {
    "train": [79.93, 81.06, 75.75, 67.14, 40.74, 78.97, 76.17, 86.65, 48.39, 78.22, 69.68,
              83.96, 83.56, 81.71, 70.50, 50.84, 65.20, 75.44, 85.93, 73.33, 72.70],
    "test": [71.76, 78.44, 59.92, 58.25, 32.55, 74.14, 78.65, 77.20, 38.23, 69.82, 61.55, 74.31,
             78.27, 74.24, 70.06, 38.84, 63.62, 68.49, 77.97, 66.96, 65.70],
}
REPORT_SSD_383 = {
    "train": [89.63, 85.14, 88.69, 79.96, 57.41, 87.15, 83.71, 90.35, 76.36, 86.46, 85.97,
              89.82, 89.55, 89.57, 78.26, 73.77, 75.57, 88.91, 90.58, 86.38, 83.70],
    "test": [73.63, 79.53, 66.76, 55.68, 39.07, 76.91, 81.05, 78.69, 43.96, 72.42, 70.01, 75.76,
             82.65, 77.55, 73.71, 42.40, 72.27, 68.03, 79.00, 69.11, 68.90],
}
# (title, run under runs/voc2007, the report's tables of this recipe with their labels (the
# last is the one ours is compared with), the paper's mAP (Elsewhere: of another recipe), the
# label in the overview figure)
ROWS = [
    ("YOLOv1, the paper's recipe (ResNet-50 from ImageNet, 600 epochs of VOC 2007 trainval at "
     "batch 64: about 46,800 iterations; `python voc2007/train_yolo.py` and its `--epochs 600` "
     "are this run)", "yolo", [], 63.4, "YOLOv1, paper recipe · Redmon et al. (2016)"),
    ("YOLOv1, the report's recipe (the tutorial's: Darknet from scratch, Adam 2e-5, no "
     "augmentation, 600 epochs)", "yolo-report", [("report, 600 epochs", REPORT_YOLO)],
     Elsewhere(63.4), "YOLOv1, tutorial recipe · report 000"),
    ("SSD300, the report's recipe (batch 8, lr 3e-3, 383 epochs)", "ssd",
     [("report, 76 epochs", REPORT_SSD_76), ("report, 383 epochs", REPORT_SSD_383)],
     Elsewhere(68.0), "SSD300, report recipe · report 000"),
    ("SSD300, the paper's recipe (batch 32, lr 1e-3, 383 epochs of VOC 2007 trainval: about "
     "60,000 iterations)", "ssd-paper", [], 68.0, "SSD300, paper recipe · Liu et al. (2016)"),
]


def ours(run):
    """Our per-class AP (%) and mAP per split, as the report's rows."""
    final, per_class = run.metrics["final"], run.metrics["per_class"]
    return {split: [None if ap is None else 100 * ap
                    for ap in per_class[f"{key}_ap"] + [final[f"{key}_map"]]]
            for split, key in (("train", "trainval"), ("test", "test"))}


def ap_rows(reported, run):
    """The report's train and test rows of each table, ours, and our test minus the last
    table's test; ours are labelled with the run's state when it is not the row."""
    rows = [[f"{label}, {split}", *table[split]] for label, table in reported
            for split in ("train", "test")]
    if run.finished:
        our = ours(run)
        epochs = len(run.metrics["history"])
        state = "" if run.is_row else f" ({run.state})"
        rows += [[f"ours, {epochs} epochs, trainval{state}", *our["train"]],
                 [f"ours, {epochs} epochs, test{state}", *our["test"]]]
        if reported:
            label, table = reported[-1]
            rows.append([f"ours - {label}, test{state}",
                         *[None if mine is None else mine - theirs
                           for mine, theirs in zip(our["test"], table["test"])]])
    return rows


def halves(rows):
    """The report's layout: the 20 classes in two tables of ten, mAP in the second."""
    def cell(value):
        return value if isinstance(value, str) else ("-" if value is None else f"{value:.2f}")
    first = markdown_table(["AP (%)", *CLASSES[:10]], [[cell(value) for value in row[:11]]
                                                        for row in rows])
    second = markdown_table(["AP (%)", *CLASSES[10:], "mAP"],
                            [[row[0]] + [cell(value) for value in row[11:]] for row in rows])
    return f"{first}\n\n{second}"


def section(runs):
    """Markdown of the VOC 2007 tables, and the rows of the report's overview figure."""
    parts = ["## PASCAL VOC 2007", SOURCES]
    comparisons = []
    for title, name, reported, paper, label in ROWS:
        run = find_run(runs, "voc2007", name, full_sizes=FULL_SIZES, figures=FIGURES)
        reported_map = reported[-1][1]["test"][-1] if reported else None
        parts.append(f"### {title}: `make voc2007-{name}`")
        our_map = None
        if not run.finished:
            parts.append(f"{run.status()}; " + map_line(run, None, reported_map, paper))
        else:
            our_map = run.metrics["final"]["test_map"]
            our_map = None if our_map is None else 100 * our_map
            lines = [map_line(run, our_map, reported_map, paper),
                     f"[curves](voc2007/{name}/curves.png), "
                     f"[detections](voc2007/{name}/detections.png), "
                     f"[precision-recall](voc2007/{name}/pr_curves.png)"]
            if run.notes:
                lines.append(f"**{run.state}:** {run.note_text()}")
            parts.append("  \n".join(lines))
        if reported or run.finished:
            parts.append(halves(ap_rows(reported, run)))
        comparisons.append(compare("voc2007", label, run, our_map, reported_map, paper))
    return "\n\n".join(parts), comparisons


def map_line(run, our_map, reported_map, paper):
    """'test mAP 12.34 (partial): report 2.61 (ours - report: (+9.73)), paper (63.4)'; only the
    references for a run without figures."""
    def against(name, figure):
        if figure is None:
            return None
        text = f"{name} {reference(figure)}"
        if our_map is not None and comparable(figure) is not None:
            gap = f"{our_map - comparable(figure):+.2f}"
            text += f" (ours - {name}: {gap if run.is_row else f'({gap})'})"
        return text
    references = ", ".join(text for text in (against("report", reported_map),
                                             against("paper", paper)) if text)
    if not run.finished:
        return references
    return f"test mAP {'-' if our_map is None else run.mark(f'{our_map:.2f}')}: {references}"
