"""Layer tables in the reports' format (report 002's "output dimension calculation"): one row
per layer with its type, input dimension and specification, from one forward pass with hooks on
the model's leaf modules, in the order they run.

Only modules have rows: what forward does with a function (F.relu, torch.flatten, a residual
addition) is not seen. The scene networks use nn.ReLU modules, so their tables list the
activations as the report does; the MNIST and CIFAR-10 networks call F.relu and show none. As in
the report, a flatten has no row: a fully connected layer's input dimension is the feature map
it flattens ("512 x 3 x 3"). The last row is the output.

`python -m common.summary` (`make summaries`) writes the table and parameter count of every
network of every dataset into runs/SUMMARIES.md.
"""
import argparse
import importlib
import math
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from common import cli
from common.files import write_text
from common.nets import LocalContrastNorm

# (dataset, module holding its MODELS registry, input size (C, H, W) given that module and a
# model name). A dataset is one more line.
DATASETS = [
    ("mnist", "mnist.models", lambda models, name: (1,) + (models.INPUT_SIZE.get(name, 28),) * 2),
    ("cifar10", "cifar10.models", lambda models, name: (3, 32, 32)),
    ("scenes", "scenes.models", lambda models, name: (3, 64, 64)),
    ("voc2007", "voc2007.models", lambda models, name: (3,) + (models.INPUT_SIZE[name],) * 2),
]
# Leaf modules that do nothing to the shape worth a row.
SKIPPED = (nn.Flatten, nn.Identity)


@dataclass
class Row:
    """One line of a layer table, in the report's columns."""
    layer: int
    kind: str
    input_dimension: str
    specification: str


def layer_table(model, input_size):
    """The rows of `model`'s layer table for one input of `input_size` (C, H, W): 1 is the
    Input, then every leaf module call in execution order, and last the Output."""
    calls = []   # (module, input shape, output shape), batch dimension left out

    def record(module, inputs, output):
        if inputs and torch.is_tensor(inputs[0]) and torch.is_tensor(output):   # not a
            calls.append((module, tuple(inputs[0].shape[1:]), tuple(output.shape[1:])))  # wrapper

    handles = [module.register_forward_hook(record) for module in model.modules()
               if not any(module.children()) and not isinstance(module, SKIPPED)]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            output = model(torch.zeros(1, *input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)

    rows = [Row(1, "Input", "", f"image size: {dimension(input_size, ' X ')}")]
    previous = tuple(input_size)
    for module, input_shape, output_shape in calls:
        if isinstance(module, nn.Linear) and len(input_shape) == 1 and len(previous) > 1 \
                and math.prod(previous) == input_shape[0]:
            input_shape = previous   # the feature map flattened on the way in
        kind, specification = describe(module)
        rows.append(Row(len(rows) + 1, kind, dimension(input_shape), specification))
        previous = output_shape
    rows.append(Row(len(rows) + 1, "Output", dimension(output.shape[1:])
                    if torch.is_tensor(output) else "detections: boxes, scores, labels", ""))
    return rows


def dimension(shape, separator=" x "):
    """(128, 57, 57) -> '128 x 57 x 57'; (4096,) -> '4096'."""
    return separator.join(str(size) for size in shape)


def square(value):
    """A kernel size as the report writes it: 8 or (8, 8) -> '8 X 8'."""
    height, width = value if isinstance(value, tuple) else (value, value)
    return f"{height} X {width}"


def single(value):
    """A stride or padding: 2 or (2, 2) -> '2'; (2, 1) -> '2 X 1'; 'same' stays."""
    if isinstance(value, tuple):
        return str(value[0]) if len(set(value)) == 1 else " X ".join(map(str, value))
    return str(value)


def describe(module):
    """(Type, Specification) of one layer, in the report's words."""
    if isinstance(module, nn.Conv2d):
        text = (f"# of kernel: {module.out_channels}, kernel size: {square(module.kernel_size)}, "
                f"stride: {single(module.stride)}, zero padding: {single(module.padding)}")
        if module.dilation != (1, 1):
            text += f", dilation: {single(module.dilation)}"
        if module.groups != 1:
            text += f", groups: {module.groups}"
        return "Convolution", text
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "max" if isinstance(module, nn.MaxPool2d) else "average"
        text = (f"{kind} pooling, kernel size: {square(module.kernel_size)}, "
                f"stride: {single(module.stride)}")
        if module.padding not in (0, (0, 0)):
            text += f", zero padding: {single(module.padding)}"
        return "Pooling", text
    if isinstance(module, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)):
        kind = "max" if isinstance(module, nn.AdaptiveMaxPool2d) else "average"
        return "Pooling", f"adaptive {kind} pooling, output size: {square(module.output_size)}"
    if isinstance(module, nn.Linear):
        return "Fully Connected", f"# of neuron: {module.out_features}"
    if isinstance(module, nn.Dropout):
        return "Dropout", f"Probability: {module.p:g}"
    if isinstance(module, nn.LocalResponseNorm):
        return "Normalization", f"LRN (Local Response Normalization), size: {module.size}"
    if isinstance(module, LocalContrastNorm):
        return "Normalization", f"LCN (Local Contrast Normalization), radius: {module.radius}"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "Normalization", "BN (Batch Normalization)"
    if isinstance(module, nn.LeakyReLU):
        return "Activation", f"LeakyReLU, negative slope: {module.negative_slope:g}"
    if type(module).__module__ == nn.ReLU.__module__:   # torch.nn.modules.activation
        return "Activation", type(module).__name__
    return type(module).__name__, module.extra_repr()


def format_table(rows):
    """The rows as a markdown table with the report's columns."""
    lines = ["| Layer | Type | Input dimension | Specification |", "| ---: | --- | --- | --- |"]
    lines += [f"| {row.layer} | {row.kind} | {row.input_dimension} | {row.specification} |"
              for row in rows]
    return "\n".join(lines) + "\n"


def count_parameters(model):
    return sum(parameter.numel() for parameter in model.parameters())


def dataset_section(dataset, module_name, input_size):
    """The markdown of one dataset: an overview of its networks, then each one's table."""
    models = importlib.import_module(module_name)
    overview = ["| network | input | parameters |", "| --- | --- | ---: |"]
    tables = []
    for name, build in models.MODELS.items():
        size = input_size(models, name)
        model = build()   # one at a time: vgg19_torchvision alone holds 139M parameters
        rows, parameters = layer_table(model, size), count_parameters(model)
        del model
        overview.append(f"| {name} | {dimension(size)} | {parameters:,} |")
        tables.append(f"### {dataset} {name}: {dimension(size)} input, {parameters:,} "
                      f"parameters\n\n{format_table(rows)}")
    return (f"## {dataset} (`{module_name}`)\n\n" + "\n".join(overview) + "\n\n"
            + "\n".join(tables), len(tables))


def main(argv=None):
    """`make summaries`: the layer table and parameter count of every network of every
    dataset, written to one markdown file."""
    names = [dataset for dataset, _, _ in DATASETS]
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", default="runs/SUMMARIES.md", help="(default: %(default)s)")
    parser.add_argument("--datasets", nargs="+", choices=names, default=names,
                        help="datasets to include (default: all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sections, networks = [], 0
    for dataset, module_name, input_size in DATASETS:
        if dataset in args.datasets:
            section, count = dataset_section(dataset, module_name, input_size)
            sections.append(section)
            networks += count
    header = ("# Layer tables\n\n"
              "Every network of every dataset's MODELS registry, one row per layer module in "
              "the order forward runs them, in the columns of report 002's tables. Functions "
              "called in forward (F.relu, torch.flatten, residual additions) have no row. "
              "Written by `make summaries` (`python -m common.summary`).\n\n")
    write_text(header + "\n".join(sections), args.out)
    print(f"wrote {args.out}: {networks} networks of {len(sections)} datasets in "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    sys.exit(cli.run(main))
