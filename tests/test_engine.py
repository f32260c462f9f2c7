"""Schedules, the divergence check, metrics and atomic files."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from common import runtime
from common.errors import Diverged, UserError
from common.engine import LossWatch, chance_limit, lr_factor, mixup_loss
from common.files import atomic_path, load_torch, save_torch
from common.metrics import (average_precision, most_confident_mistakes, most_confused_pair,
                            per_class_accuracy, precision_recall_curve)


def schedule(**overrides):
    args = dict(lr=0.1, epochs=10, scheduler="none", step_size=3, milestones=[], gamma=0.1,
                warmup_iters=0, warmup_lr=0.01, warmup_shape="constant")
    return SimpleNamespace(**{**args, **overrides})


def test_step_and_multistep_decay_at_epoch_boundaries():
    step = schedule(scheduler="step", step_size=3)
    assert lr_factor(29, steps_per_epoch=10, args=step) == 1.0
    assert lr_factor(30, steps_per_epoch=10, args=step) == pytest.approx(0.1)
    multi = schedule(scheduler="multistep", milestones=[2, 5])
    factors = [lr_factor(epoch * 10, steps_per_epoch=10, args=multi) for epoch in range(7)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_runs_from_one_to_zero_over_the_epochs():
    cosine = schedule(scheduler="cosine", epochs=4)
    assert lr_factor(0, steps_per_epoch=5, args=cosine) == 1.0
    assert lr_factor(10, steps_per_epoch=5, args=cosine) == pytest.approx(0.5)
    assert lr_factor(20, steps_per_epoch=5, args=cosine) == pytest.approx(0.0, abs=1e-12)


def test_warmup_holds_its_lr_for_the_first_iterations():
    warm = schedule(warmup_iters=400, warmup_lr=0.01, lr=0.1)
    assert lr_factor(399, steps_per_epoch=100, args=warm) * 0.1 == pytest.approx(0.01)
    assert lr_factor(400, steps_per_epoch=100, args=warm) == 1.0


def test_linear_warmup_ramps_from_its_lr_to_the_base_rate():
    warm = schedule(warmup_iters=100, warmup_lr=0.001, lr=0.01, warmup_shape="linear")
    rates = [0.01 * lr_factor(step, steps_per_epoch=10, args=warm) for step in (0, 50, 99, 100)]
    assert rates == pytest.approx([0.001, 0.0055, 0.001 + 0.009 * 0.99, 0.01])


def watch_losses(losses, lrs, limit=None, steps=None):
    """Feed `losses` to a LossWatch of `steps` steps (default: as many as losses)."""
    watch = LossWatch(steps or len(losses), epoch=3, device=torch.device("cpu"),
                      dist=runtime.Distributed(), limit=limit, log=lambda *_: None)
    for step, (loss, lr) in enumerate(zip(losses, lrs)):
        watch.record(step, torch.tensor(loss), lr)
    return watch


def test_loss_watch_names_the_first_non_finite_step_and_its_lr():
    with pytest.raises(Diverged, match=r"NaN or infinite at epoch 3, step 3 of 4 "
                                       r"\(learning rate 0.7\)"):
        watch_losses([2.0, 1.5, math.inf, math.nan], [0.1, 0.1, 0.7, 0.7])
    assert watch_losses([2.0, 1.5], [0.1, 0.1]).mean() == pytest.approx(1.75)


def test_loss_watch_stops_a_loss_that_explodes_far_above_chance():
    limit = chance_limit(10)   # 100 ln 10 = 230.3
    assert limit[0] == pytest.approx(100 * math.log(10))
    losses = [2.3] * 60 + [5.0, 300.0, 9.5e10] + [1e12] * 37
    with pytest.raises(Diverged, match=r"exploded at epoch 3, step 62 of 100 \(learning rate "
                                       r"50\): 300, above 100 x ln\(10\) = 230.3"):
        watch_losses(losses, [0.1] * 61 + [50.0] * 39, limit=limit)
    # a spike above the limit in a window whose mean stays below it is not divergence
    watch_losses([2.3] * 49 + [1000.0] + [2.3] * 50, [0.1] * 100, limit=limit)


def test_mixup_loss_mixes_images_and_both_labels_with_the_weight():
    class Probe(torch.nn.Module):   # records its input; logits favour class 0 of 3
        def forward(self, images):
            self.seen = images
            return torch.tensor([[2.0, 0.0, 0.0]]).expand(len(images), 3)
    images = torch.arange(4.0).view(4, 1, 1, 1)
    labels = torch.tensor([0, 1, 2, 0])
    partner = torch.tensor([2, 3, 1, 0])
    model = Probe()
    loss, _, counted = mixup_loss(model, images, labels, torch.tensor(0.3), partner)
    assert torch.allclose(model.seen, 0.3 * images + 0.7 * images[partner])
    ce = -torch.log_softmax(torch.tensor([2.0, 0.0, 0.0]), 0)   # per-class loss of one image
    expected = 0.3 * ce[labels].mean() + 0.7 * ce[labels[partner]].mean()
    assert loss.item() == pytest.approx(expected.item())
    assert torch.equal(counted, labels[partner])   # the label of the larger weight, 0.7
    _, _, counted = mixup_loss(model, images, labels, torch.tensor(0.6), partner)
    assert torch.equal(counted, labels)


def test_precision_recall_and_average_precision():
    precision, recall = precision_recall_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    assert precision.tolist() == pytest.approx([1, 0.5, 2 / 3, 0.5])
    assert recall.tolist() == pytest.approx([0.5, 0.5, 1, 1])
    # all-point AP: recall 0->0.5 at precision 1, 0.5->1 at precision 2/3
    assert average_precision(precision, recall) == pytest.approx(0.5 + 0.5 * 2 / 3)
    perfect = precision_recall_curve([0.9, 0.8, 0.1], [1, 1, 0])
    assert average_precision(*perfect) == pytest.approx(1.0)


def test_confusion_figures():
    confusion = torch.tensor([[8, 2, 0], [0, 10, 0], [5, 0, 5]])
    assert per_class_accuracy(confusion) == pytest.approx([0.8, 1.0, 0.5])
    assert most_confused_pair(confusion) == (2, 0, 5)
    probabilities = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    assert most_confident_mistakes(probabilities, torch.tensor([1, 1, 1, 0]), 5) == [0, 2]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_torch_files_round_trip_and_damaged_ones_are_user_errors(tmp_path):
    save_torch({"weights": torch.arange(3)}, tmp_path / "model.pt")
    assert torch.equal(load_torch(tmp_path / "model.pt", "weights")["weights"], torch.arange(3))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        load_torch(tmp_path / "bad.pt", "checkpoint")
    with pytest.raises(UserError, match="does not exist"):
        load_torch(tmp_path / "missing.pt", "checkpoint")


def test_average_precision_of_random_scores_is_near_the_positive_rate():
    rng = np.random.default_rng(0)
    labels = rng.random(20000) < 0.3
    ap = average_precision(*precision_recall_curve(rng.random(20000), labels))
    assert abs(ap - 0.3) < 0.02


def test_confusion_counts_pairs_of_true_and_predicted():
    from common.engine import count_confusion
    confusion = torch.zeros(9, dtype=torch.long)
    count_confusion(confusion, torch.tensor([0, 0, 2, 2, 2]), torch.tensor([0, 1, 2, 2, 0]), 3)
    count_confusion(confusion, torch.tensor([1]), torch.tensor([1]), 3)
    assert confusion.view(3, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
