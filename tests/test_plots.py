"""The pictures of a run and of the report: what each shows in the cases that used to show
nothing (one epoch, an mAP of 0, a weak detector, a bar near zero), and their TensorBoard
views (images, hparams, run names)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from common import plots
from common import tensorboard as tb
from common.report import Comparison
from voc2007 import pictures


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, kept for a look instead of written."""
    figures = []
    for module in (plots, pictures):
        monkeypatch.setattr(module, "save_figure", lambda figure, path: figures.append(figure))
    return figures


def texts(figure):
    return [text.get_text() for axes in figure.axes for text in axes.texts] + \
        [text.get_text() for text in figure.texts]


def test_curves_of_one_epoch_have_one_whole_epoch_tick_and_a_range_around_the_point(drawn):
    history = [{"epoch": 1, "train_loss": 2.5, "test_map": 0.0}]
    plots.plot_curves(history, [("loss", [("train", "train_loss", 1)]),
                                ("mAP (%)", [("test", "test_map", 100)])], "curves.png", "t")
    loss, mean_ap = drawn[0].axes
    for axes in (loss, mean_ap):
        low, high = axes.get_xlim()
        assert [tick for tick in axes.get_xticks() if low <= tick <= high] == [1]
    assert mean_ap.get_ylim() == (0.0, 1.0)        # not -0.04..0.04
    assert loss.get_ylim() == pytest.approx((2.25, 2.75))


def test_curves_of_many_epochs_tick_whole_epochs_only(drawn):
    history = [{"epoch": epoch, "train_loss": 1 / epoch} for epoch in range(1, 8)]
    plots.plot_curves(history, [("loss", [("train", "train_loss", 1)])], "curves.png", "t")
    ticks = drawn[0].axes[0].get_xticks()
    assert all(tick == int(tick) for tick in ticks)


def test_flat_range():
    assert plots.flat_range([0.0], percent=True) == (0.0, 1.0)
    assert plots.flat_range([100.0, 100.0], percent=True) == (90.0, 102.0)
    assert plots.flat_range([-3.0], percent=False) == pytest.approx((-3.3, -2.7))
    assert plots.flat_range([1.0, 2.0], percent=False) is None


def test_pr_legend_stands_beside_the_curves_and_an_ap_of_zero_is_named(drawn):
    curve = (np.array([1.0, 0.5]), np.array([0.2, 0.6]), 0.4)
    nothing = (np.zeros(0), np.zeros(0), 0.0)
    plots.plot_pr_curves([curve, nothing, nothing], ["cat", "dog", "cow"], "pr.png", "t")
    axes = drawn[0].axes[0]
    legend = axes.get_legend()
    drawn[0].canvas.draw()
    assert legend.get_window_extent().x0 > axes.get_window_extent().x1   # right of the axes
    assert "AP 0 (not one correct prediction): dog, cow" in texts(drawn[0])
    plots.plot_pr_curves([nothing], ["cat"], "pr.png", "t")
    assert "every class has AP 0: not one prediction is correct" in texts(drawn[1])


class TwoImages:
    """The part of a VOCDataset that detections.png reads."""
    def __init__(self, annotations, truth):
        self.annotations, self.truth = annotations, truth

    def __len__(self):
        return len(self.annotations)

    def ground_truth(self, index):
        return self.truth


def test_detections_show_each_images_best_with_class_and_score_or_say_there_is_none(tmp_path,
                                                                                  drawn):
    Image.new("RGB", (100, 80), "grey").save(tmp_path / "a.jpg")
    truth = {"boxes": torch.tensor([[10.0, 10, 50, 40]]), "labels": torch.tensor([7]),
             "difficult": torch.tensor([False])}
    dataset = TwoImages([SimpleNamespace(image_path=tmp_path / "a.jpg", image_id=name)
                         for name in ("000001", "000002")], truth)
    scores = torch.tensor([0.004, 0.02, 0.3, 0.05, 0.06, 0.07, 0.08])
    weak = {"boxes": torch.tensor([[5.0, 5, 30, 30]] * 7), "scores": scores,
            "labels": torch.arange(7)}
    none = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0),
            "labels": torch.zeros(0, dtype=torch.long)}
    pictures.plot_detections(dataset, [weak, none], "detections.png", "t")
    shown = texts(drawn[0])
    # the five best (0.3 down to 0.05), with class and score; ground truth labelled
    assert {"bird 0.30", "car 0.08", "bus 0.07", "bottle 0.06", "boat 0.05"} <= set(shown)
    assert "bicycle 0.02" not in shown and "cat" in shown   # the sixth; the ground truth
    assert "no detection scores\n0.01 or more" in shown


def test_report_png_shows_every_row_and_the_value_of_a_bar_near_zero(drawn):
    rows = [Comparison("VOC", "YOLOv1 · report", 0.04, 2.61, None, "partial"),
            Comparison("VOC", "SSD · paper", None, None, 68.0, "not run"),
            Comparison("MNIST", "LeNet · report 000", 99.2, 98.92, None, "finished")]
    plots.plot_comparison(rows, "report.png", "t")
    labels = [label.get_text() for axes in drawn[0].axes for label in axes.get_yticklabels()]
    assert labels == ["YOLOv1 · report", "SSD · paper", "LeNet · report 000"]
    shown = texts(drawn[0])
    assert {"0.04", "2.61", "68.00", "99.20", "98.92", "not run"} <= set(shown)


def test_tensorboard_images_hparams_as_text_and_runs_named_by_their_folder(tmp_path):
    run = tmp_path / "runs" / "mnist" / "lenet"
    Image.new("RGB", (30, 20), "red").save(tmp_path / "confusion.png")
    writer = tb.open_writer(run)
    tb.log_image_file(writer, "test/confusion", tmp_path / "confusion.png", 3)
    tb.log_hparams(writer, {"pretrained": False, "lr": 0.1, "milestones": [2, 3]},
                   {"test_accuracy": 0.5})
    writer.close()
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0}).Reload()
    image = events.Images("test/confusion")[0]
    assert (image.step, image.width, image.height) == (3, 30, 20)
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    started = HParamsPluginData.FromString(content).session_start_info
    hparams = {key: getattr(value, value.WhichOneof("kind"))
               for key, value in started.hparams.items()}
    assert hparams == {"pretrained": "False", "lr": 0.1, "milestones": "[2, 3]"}
    tree, count = tb.link_runs(tmp_path / "runs")
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(tree))
    assert count == 1 and list(multiplexer.Runs()) == ["mnist/lenet"]
