"""Which precision trains each network fastest on this GPU: the training step (common/step.py,
captured as a CUDA graph where it can be) of every network family on one fixed batch at its
recipe's batch size, in fp32 (TF32 convolutions and matrix products), in bf16 autocast, and with
the weights cast to bf16 but batch norm kept in float32. runtime.resolve_precision's choice
(`--precision auto`, a network's `cuda_precision`) is printed beside the fastest: where they
differ, the network's attribute is the one to change. Random inputs: a step's time does not
depend on the pixels.

    python common/precision_bench.py --device cuda
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import cli, runtime  # noqa: E402
from common.bench import synchronize  # noqa: E402
from common.engine import build_optimizer  # noqa: E402
from common.step import TrainingStep, grad_scaler, use_graphs  # noqa: E402

WARMUP_STEPS = 5
TIMED_STEPS = 20
PRECISIONS = ("fp32", "bf16", "bf16 weights")


def networks():
    """(name, build the model, batch size, input side, detector) of each network family."""
    from cifar10.models import MODELS as CIFAR
    from scenes.models import MODELS as SCENES
    from voc2007.ssd import build_ssd
    from voc2007.yolo import build_yolo
    return [
        ("CIFAR LeNet (report 003)", CIFAR["lenet"], 128, 32, False),
        ("CIFAR AlexNet (report 000)", CIFAR["alexnet"], 128, 32, False),
        ("CIFAR VGG-19 (report 004)", CIFAR["vgg19"], 128, 32, False),
        ("CIFAR ResNet-20", CIFAR["resnet20"], 128, 32, False),
        ("CIFAR ResNet-110", CIFAR["resnet110"], 128, 32, False),
        ("ImageNet ResNet-50 at 224 (CIFAR)", CIFAR["resnet50"], 128, 224, False),
        ("ImageNet ResNet-18 at 64 (scenes)", SCENES["resnet18"], 64, 64, False),
        ("YOLOv1 ResNet-50, 448", lambda: build_yolo("resnet50"), 64, 448, True),
        ("SSD300 (report recipe)", build_ssd, 8, 300, True),
        ("SSD300 (paper recipe)", build_ssd, 32, 300, True),
    ]


def with_bf16_weights(model):
    """The model in bf16, batch norm kept in float32 (its statistics need the range)."""
    model.to(torch.bfloat16)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.float()
    return model


def random_batch(batch_size, side, detector, device, generator):
    images = torch.randint(0, 256, (batch_size, 3, side, side), dtype=torch.uint8,
                           generator=generator).to(device)
    if not detector:
        return images, torch.randint(0, 10, (batch_size,), generator=generator).to(device)
    corners = torch.rand(batch_size, 3, 2, generator=generator) * side * 0.6
    extents = torch.rand(batch_size, 3, 2, generator=generator) * side * 0.3 + side * 0.1
    boxes = torch.cat([corners, corners + extents], -1).to(device)
    return images, boxes, torch.randint(0, 20, (batch_size, 3), generator=generator).to(device)


def step_seconds(build, batch_size, side, detector, precision, device):
    """Seconds per captured training step of a fresh `build()` in `precision`."""
    torch.manual_seed(0)
    model = build()
    bf16_weights = precision == "bf16 weights"
    if bf16_weights:
        with_bf16_weights(model)
    model.to(device, memory_format=torch.channels_last).train()
    autocast_precision = "bf16" if precision == "bf16" else "fp32"
    graphs = use_graphs(None, device=device, distributed=False, precision=autocast_precision,
                        optimizer="sgd", compiled=False)
    recipe = argparse.Namespace(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4)
    optimizer = build_optimizer(recipe, model, device, graphs)
    dtype = torch.bfloat16 if bf16_weights else torch.float32
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255

    def to_input(images):
        return ((images.to(dtype) - mean.to(dtype)) / 64).contiguous(
            memory_format=torch.channels_last)

    def loss_of(images, *targets):
        if detector:
            terms = model.loss(to_input(images), *targets)
            return sum(terms.values()), {}
        return F.cross_entropy(model(to_input(images)).float(), targets[0]), {}

    step = TrainingStep(loss_of, optimizer, device=device, precision=autocast_precision,
                        scaler=grad_scaler(device, autocast_precision), graphs=graphs)
    batch = random_batch(batch_size, side, detector, device, torch.Generator().manual_seed(0))
    for _ in range(WARMUP_STEPS):
        step(1e-3, *batch)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(TIMED_STEPS):
        step(1e-3, *batch)
    synchronize(device)
    return (time.perf_counter() - started) / TIMED_STEPS, model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    device, _ = runtime.setup(args.device)
    print(f"ms per training step on {runtime.describe_device(device)} (captured where graphs "
          f"run); img/s of the fastest")
    print(f"  {'network':<34} {'batch':>5} " + " ".join(f"{name:>13}" for name in PRECISIONS)
          + f" {'fastest':>13} {'auto':>6} {'img/s':>8}")
    for name, build, batch_size, side, detector in networks():
        seconds = {}
        for precision in PRECISIONS:
            seconds[precision], model = step_seconds(build, batch_size, side, detector,
                                                     precision, device)
            auto = runtime.resolve_precision("auto", device, model)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        fastest = min(seconds, key=seconds.get)
        print(f"  {name:<34} {batch_size:>5} "
              + " ".join(f"{1000 * seconds[precision]:>13.2f}" for precision in PRECISIONS)
              + f" {fastest:>13} {auto:>6} {batch_size / seconds[fastest]:>8,.0f}", flush=True)


if __name__ == "__main__":
    sys.exit(cli.run(main))
