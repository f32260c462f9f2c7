"""The training step (common/step.py) and what the loops around it share (common/engine.py):
the step against a plain PyTorch loop, the choice of CUDA graphs, optimizer groups, the
schedule's state, the asynchronous divergence check and the run's clock. The tests marked cuda
run where a GPU is: the graphed step against the eager one, and no host sync inside a step."""
import math
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import engine, runtime
from common.data import ToNetworkInput
from common.engine import (LossWatch, RunClock, Schedule, build_optimizer, classifier_step,
                           duration, parameter_groups)
from common.errors import Diverged, UserError
from common.step import grad_scaler, graphs_refusal, use_graphs

CPU = torch.device("cpu")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def recipe(**overrides):
    values = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=2,
                  scheduler="cosine", warmup_iters=2, warmup_lr=0.01, warmup_shape="linear",
                  step_size=None, milestones=None, gamma=None)
    return SimpleNamespace(**{**values, **overrides})


class SmallNet(nn.Module):
    def __init__(self, dropout=0.2):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.norm(self.conv(x))), 2)
        return self.fc(self.dropout(torch.flatten(x, 1)))


def batches(count, size=16, device=CPU):
    generator = torch.Generator().manual_seed(1)
    return [(torch.randint(0, 256, (size, 3, 8, 8), generator=generator, dtype=torch.uint8)
             .to(device), torch.randint(0, 10, (size,), generator=generator).to(device))
            for _ in range(count)]


def plain_loop(data, args, rates, device=CPU):
    """pytorch/examples' loop: the reference our step must equal."""
    torch.manual_seed(0)
    model = SmallNet().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    to_input = ToNetworkInput((0.5,) * 3, (0.25,) * 3, device=device)
    model.train()
    losses = []
    for (images, labels), rate in zip(data, rates):
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = F.cross_entropy(model(to_input(images)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, model


def our_loop(data, args, rates, device=CPU, graphs=False, dropout=0.2):
    torch.manual_seed(0)
    model = SmallNet(dropout).to(device)
    optimizer = build_optimizer(args, model, device, graphs)
    to_input = ToNetworkInput((0.5,) * 3, (0.25,) * 3, device=device)
    step = classifier_step(model, to_input, optimizer, device=device, precision="fp32",
                           scaler=grad_scaler(device, "fp32"), graphs=graphs)
    model.train()
    losses = [step(rate, images, labels)["loss"].item() for (images, labels), rate
              in zip(data, rates)]
    return losses, model


def test_our_step_equals_a_plain_loop_step_for_step():
    args = recipe()
    data = batches(6)
    rates = [0.1, 0.05, 0.02, 0.1, 0.2, 0.01]
    plain_losses, plain = plain_loop(data, args, rates)
    our_losses, ours = our_loop(data, args, rates)
    assert our_losses == plain_losses   # the same operations in the same order: bit for bit
    for name, tensor in plain.state_dict().items():
        assert torch.equal(tensor, ours.state_dict()[name]), name


def test_the_schedule_gives_every_step_its_rate_and_resumes_from_its_count():
    args = recipe(epochs=2, warmup_iters=2)
    schedule = Schedule(args, steps_per_epoch=4)
    rates = []
    for _ in range(8):
        rates.append(schedule.rate())
        schedule.advance()
    assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.055)
    assert rates[2] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 2 / 8)))
    resumed = Schedule(args, steps_per_epoch=4)
    resumed.load_state_dict(Schedule(args, 4).state_dict() | {"steps_taken": 5})
    assert resumed.rate() == pytest.approx(rates[5])
    # a checkpoint written while torch's LambdaLR held the schedule: its count is last_epoch
    resumed.load_state_dict({"last_epoch": 3, "base_lrs": [0.1], "_last_lr": [0.05]})
    assert resumed.rate() == pytest.approx(rates[3])


def test_a_model_that_decays_weights_only_gets_two_groups():
    model = SmallNet()
    assert len(parameter_groups(model, 5e-4)) == 1
    model.decays_weights_only = True
    decayed, kept = parameter_groups(model, 5e-4)
    assert decayed["weight_decay"] == 5e-4 and kept["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model.conv.weight), id(model.fc.weight)}
    assert len(kept["params"]) == 4   # conv and fc biases, batch norm's weight and bias
    optimizer = build_optimizer(recipe(), model, CPU)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [5e-4, 0.0]


def test_graphs_are_used_where_they_can_run_and_refused_where_asked_and_cannot():
    gpu = torch.device("cuda", 0)
    run = dict(distributed=False, precision="fp32", optimizer="sgd", compiled=False)
    assert graphs_refusal(device=gpu, **run) is None
    assert use_graphs(None, device=gpu, **run) and not use_graphs(False, device=gpu, **run)
    assert not use_graphs(None, device=CPU, **run)
    for change, reason in [(dict(device=CPU), "CUDA device"),
                           (dict(distributed=True), "torchrun"),
                           (dict(precision="fp16"), "loss scaler"),
                           (dict(optimizer="asgd"), "asgd"),
                           (dict(compiled=True), "--compile")]:
        options = {"device": gpu, **run, **change}
        assert reason in graphs_refusal(**options)
        assert not use_graphs(None, **options)
        with pytest.raises(UserError, match=f"--cuda-graphs: .*{reason}"):
            use_graphs(True, **options)


def watch(steps, losses, lrs=None):
    recorder = LossWatch(steps, epoch=2, device=CPU, dist=runtime.Distributed(),
                         log=lambda *_: None)
    for step, loss in enumerate(losses):
        recorder.record(step, torch.tensor(loss), (lrs or [0.1] * steps)[step])
    return recorder


def test_the_divergence_check_is_read_one_window_late_and_names_the_first_bad_step():
    losses = [1.0] * 10 + [math.nan] + [1.0] * 189
    watch(200, losses[:99])   # the first window's verdict is only read at step 100
    with pytest.raises(Diverged, match="epoch 2, step 11 of 200"):
        watch(200, losses[:100])
    with pytest.raises(Diverged, match="step 30 of 30"):   # the last window: read at once
        watch(30, [1.0] * 29 + [math.inf])


def test_the_clock_estimates_what_is_left_from_this_processs_pace(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(engine.time, "time", lambda: now[0])
    clock = RunClock(10, first_epoch=5)   # resumed: epochs 5 to 10 left
    assert clock.left(5, 0.0) is None
    now[0] += 60   # half of epoch 5 in a minute
    assert clock.left(5, 0.5) == pytest.approx(60 / 0.5 * 5.5)
    now[0] += 60
    assert clock.left(5) == pytest.approx(600)
    assert clock.status(5).startswith("2m00s elapsed, 10m00s left (until ")
    assert clock.status(10) == "2m00s elapsed"   # nothing left after the last epoch
    assert [duration(s) for s in (42, 125, 3 * 3600 + 420, 2 * 86400 + 3 * 3600)] \
        == ["42s", "2m05s", "3h07m", "2d03h"]


@cuda
def test_the_graphed_step_follows_the_eager_step():
    device = torch.device("cuda")
    args = recipe()
    data = batches(12, device=device) + batches(3, size=5, device=device)   # a second shape
    rates = [0.1 * 0.9 ** k for k in range(len(data))]
    # no dropout: a graph draws its masks at other generator offsets; cuDNN may also pick
    # other algorithms for the captured step, hence a tolerance
    eager, eager_model = our_loop(data, args, rates, device, graphs=False, dropout=0.0)
    graphed, graphed_model = our_loop(data, args, rates, device, graphs=True, dropout=0.0)
    assert graphed == pytest.approx(eager, rel=1e-3)
    for name, tensor in eager_model.state_dict().items():
        assert torch.allclose(tensor.float(), graphed_model.state_dict()[name].float(),
                              rtol=1e-3, atol=1e-4), name


@cuda
def test_a_graphed_step_does_not_sync_with_the_host():
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = SmallNet().to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(recipe(), model, device, graphs=True)
    to_input = ToNetworkInput((0.5,) * 3, (0.25,) * 3, device=device, channels_last=True)
    step = classifier_step(model, to_input, optimizer, device=device, precision="fp32",
                           scaler=grad_scaler(device, "fp32"), graphs=True)
    data = batches(4, device=device)
    for images, labels in data[:2]:   # eager on the capture stream, then the capture
        step(0.1, images, labels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for images, labels in data[2:]:
            outputs = step(0.1, images, labels)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(outputs["loss"]).item()


def detection_batches(count, size, device=CPU):
    """uint8 images and padded targets, some images without boxes."""
    generator = torch.Generator().manual_seed(2)
    data = []
    for _ in range(count):
        corners = torch.rand(4, 3, 2, generator=generator) * size * 0.6
        extents = torch.rand(4, 3, 2, generator=generator) * size * 0.3 + 4
        labels = torch.randint(0, 20, (4, 3), generator=generator)
        labels[0] = -1   # an image with no box
        labels[1, 2] = -1
        data.append((torch.randint(0, 256, (4, 3, size, size), generator=generator,
                                   dtype=torch.uint8).to(device),
                     torch.cat([corners, corners + extents], -1).to(device), labels.to(device)))
    return data


def detector_losses(build, data, rates, device=CPU, graphs=False, plain=False):
    from voc2007.detection import detector_step, to_device
    torch.manual_seed(0)
    model = build().to(device)
    optimizer = build_optimizer(recipe(weight_decay=5e-4), model, device, graphs)
    model.train()
    if plain:   # pytorch/examples' loop around the model's loss
        losses = []
        for (images, boxes, labels), rate in zip(data, rates):
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss = sum(model(to_device(images, device), boxes, labels).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses
    step = detector_step(model, optimizer, device=device, precision="fp32",
                         scaler=grad_scaler(device, "fp32"), graphs=graphs)
    return [step(rate, *batch)["loss"].item() for batch, rate in zip(data, rates)]


@pytest.mark.parametrize("detector", ["yolo", "ssd"])
def test_the_detector_step_equals_a_plain_loop(detector):
    from voc2007.ssd import build_ssd
    from voc2007.yolo import build_yolo
    build, size = {"yolo": (lambda: build_yolo("tiny"), 112),
                   "ssd": (lambda: build_ssd("tiny"), 64)}[detector]
    data = detection_batches(3, size)
    rates = [0.01, 0.02, 0.005]
    assert detector_losses(build, data, rates) == detector_losses(build, data, rates, plain=True)


@cuda
@pytest.mark.parametrize("detector", ["yolo", "ssd"])
def test_the_graphed_detector_step_follows_the_eager_one(detector):
    from voc2007.ssd import build_ssd
    from voc2007.yolo import build_yolo
    device = torch.device("cuda")
    build, size = {"yolo": (lambda: build_yolo("tiny", dropout=0.0), 112),
                   "ssd": (lambda: build_ssd("tiny"), 64)}[detector]
    data = detection_batches(8, size, device)
    rates = [0.01] * len(data)
    eager = detector_losses(build, data, rates, device)
    graphed = detector_losses(build, data, rates, device, graphs=True)
    assert graphed == pytest.approx(eager, rel=1e-3)


def test_progress_within_an_epoch_says_the_loss_and_when_the_epoch_and_run_end(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(engine.time, "time", lambda: now[0])
    lines = []
    clock = RunClock(4, first_epoch=2)
    recorder = LossWatch(200, epoch=2, device=CPU, dist=runtime.Distributed(), clock=clock,
                         log=lines.append)
    for step in range(150):
        now[0] += 1.0   # a second a step
        recorder.record(step, torch.tensor(2.0 if step < 50 else 1.0), 0.1)
    # a line at most every PROGRESS_SECONDS, with the loss of the last window read back
    until = time.strftime("%H:%M", time.localtime(600))   # every estimate ends at 600 s
    assert lines == [
        "  epoch 2 step 50/200  loss 2.0000  50s, epoch done in 2m30s | run: 50s "
        f"elapsed, 9m10s left (until {until})",
        "  epoch 2 step 100/200  loss 2.0000  1m40s, epoch done in 1m40s | run: 1m40s "
        f"elapsed, 8m20s left (until {until})",
        "  epoch 2 step 150/200  loss 1.0000  2m30s, epoch done in 50s | run: 2m30s "
        f"elapsed, 7m30s left (until {until})"]
