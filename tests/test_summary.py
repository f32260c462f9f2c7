"""Layer tables: report 002's CustomLeNet and AlexNet tables row for row, the specification of
each layer type, and `make summaries`' file."""
import torch.nn as nn

from cifar10.models import MODELS as CIFAR_MODELS
from common import summary
from common.summary import Row, count_parameters, describe, format_table, layer_table
from scenes.models import MODELS

# Report 002, "CustomLeNet 구조": Type and Input dimension of rows 1-10; row 11 is the
# report's Softmax, here the logits.
CUSTOM_LENET = [
    ("Input", ""),
    ("Convolution", "3 x 64 x 64"),
    ("Pooling", "128 x 57 x 57"),
    ("Convolution", "128 x 28 x 28"),
    ("Pooling", "256 x 21 x 21"),
    ("Convolution", "256 x 10 x 10"),
    ("Pooling", "512 x 7 x 7"),
    ("Fully Connected", "512 x 3 x 3"),
    ("Activation", "4096"),
    ("Fully Connected", "4096"),
    ("Output", "6"),
]

# Report 002, "AlexNet 구조" rows 1-20; its rows 21 (Dropout) and 22 (Softmax) are the fixed
# bugs, so row 21 is the output.
ALEXNET = [
    ("Input", ""),
    ("Convolution", "3 x 64 x 64"),
    ("Activation", "96 x 64 x 64"),
    ("Normalization", "96 x 64 x 64"),
    ("Pooling", "96 x 64 x 64"),
    ("Convolution", "96 x 31 x 31"),
    ("Activation", "256 x 31 x 31"),
    ("Normalization", "256 x 31 x 31"),
    ("Pooling", "256 x 31 x 31"),
    ("Convolution", "256 x 15 x 15"),
    ("Activation", "384 x 15 x 15"),
    ("Convolution", "384 x 15 x 15"),
    ("Activation", "384 x 15 x 15"),
    ("Convolution", "384 x 15 x 15"),
    ("Activation", "256 x 15 x 15"),
    ("Pooling", "256 x 15 x 15"),
    ("Fully Connected", "256 x 7 x 7"),
    ("Activation", "4096"),
    ("Dropout", "4096"),
    ("Fully Connected", "4096"),
    ("Output", "6"),
]


def test_custom_lenet_table_is_the_report_s():
    model = MODELS["custom_lenet"]()
    rows = layer_table(model, (3, 64, 64))
    assert [row.layer for row in rows] == list(range(1, 12))
    assert [(row.kind, row.input_dimension) for row in rows] == CUSTOM_LENET
    specifications = {row.layer: row.specification for row in rows}
    assert specifications[1] == "image size: 3 X 64 X 64"
    assert specifications[2] == "# of kernel: 128, kernel size: 8 X 8, stride: 1, zero padding: 0"
    assert specifications[3] == "max pooling, kernel size: 2 X 2, stride: 2"
    assert specifications[6] == "# of kernel: 512, kernel size: 4 X 4, stride: 1, zero padding: 0"
    assert specifications[8] == "# of neuron: 4096"
    assert specifications[9] == "ReLU"
    assert specifications[10] == "# of neuron: 6"
    assert count_parameters(model) == 23_122_822


def test_alexnet_table_is_the_report_s_without_the_last_dropout():
    model = MODELS["alexnet"]()
    rows = layer_table(model, (3, 64, 64))
    assert [(row.kind, row.input_dimension) for row in rows] == ALEXNET
    specifications = {row.layer: row.specification for row in rows}
    assert specifications[2] == "# of kernel: 96, kernel size: 5 X 5, stride: 1, zero padding: 2"
    assert specifications[4] == "LRN (Local Response Normalization), size: 5"
    assert specifications[5] == "max pooling, kernel size: 3 X 3, stride: 2"
    assert specifications[10] == "# of kernel: 384, kernel size: 3 X 3, stride: 1, zero padding: 1"
    assert specifications[19] == "Probability: 0.5"
    assert count_parameters(model) == 55_128_454


def test_the_table_leaves_the_model_as_it_was():
    model = MODELS["alexnet"]().train()
    layer_table(model, (3, 64, 64))
    assert model.training and not any(module._forward_hooks for module in model.modules())


def test_functional_relu_has_no_row():
    """CIFAR-10's LeNet (report 003) calls F.relu: only its modules are listed."""
    rows = layer_table(CIFAR_MODELS["lenet"](), (3, 32, 32))
    assert [row.kind for row in rows] == ["Input", "Convolution", "Pooling", "Convolution",
                                         "Pooling", "Fully Connected", "Fully Connected",
                                         "Fully Connected", "Output"]
    assert [row.input_dimension for row in rows][5:] == ["16 x 5 x 5", "120", "84", "10"]


def test_specifications_of_other_layers():
    assert describe(nn.Conv2d(8, 16, 3, stride=(2, 1), padding=1, groups=4)) == (
        "Convolution", "# of kernel: 16, kernel size: 3 X 3, stride: 2 X 1, zero padding: 1, "
        "groups: 4")
    assert describe(nn.AvgPool2d(2)) == ("Pooling", "average pooling, kernel size: 2 X 2, "
                                                    "stride: 2")
    assert describe(nn.MaxPool2d(3, 2, padding=1)) == (
        "Pooling", "max pooling, kernel size: 3 X 3, stride: 2, zero padding: 1")
    assert describe(nn.AdaptiveAvgPool2d((1, 1))) == (
        "Pooling", "adaptive average pooling, output size: 1 X 1")
    assert describe(nn.BatchNorm2d(64)) == ("Normalization", "BN (Batch Normalization)")
    assert describe(nn.LeakyReLU(0.2)) == ("Activation", "LeakyReLU, negative slope: 0.2")
    assert describe(nn.Sigmoid()) == ("Activation", "Sigmoid")
    assert describe(nn.Dropout(0.25)) == ("Dropout", "Probability: 0.25")


def test_format_table_is_markdown():
    rows = [Row(1, "Input", "", "image size: 3 X 64 X 64"), Row(2, "Output", "3 x 64 x 64", "")]
    assert format_table(rows) == (
        "| Layer | Type | Input dimension | Specification |\n"
        "| ---: | --- | --- | --- |\n"
        "| 1 | Input |  | image size: 3 X 64 X 64 |\n"
        "| 2 | Output | 3 x 64 x 64 |  |\n")


def test_main_writes_a_section_per_dataset(tmp_path, capsys):
    out = tmp_path / "SUMMARIES.md"
    # voc2007 left out: its three 270M-parameter YOLOv1s take most of a full run's 20 s
    summary.main(["--out", str(out), "--datasets", "mnist", "cifar10", "scenes"])
    text = out.read_text()
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## mnist (`mnist.models`)", "## cifar10 (`cifar10.models`)",
        "## scenes (`scenes.models`)"]
    assert "| lenet | 1 x 32 x 32 | 61,706 |" in text              # MNIST, padded to 32x32
    assert "| model1 | 1 x 28 x 28 | 813,802 |" in text
    assert "| vgg19_torchvision | 3 x 32 x 32 | 139,611,210 |" in text
    assert "| resnet152 | 3 x 64 x 64 | 58,156,102 |" in text
    custom = format_table(layer_table(MODELS["custom_lenet"](), (3, 64, 64)))
    assert ("### scenes custom_lenet: 3 x 64 x 64 input, 23,122,822 parameters\n\n"
            + custom) in text
    assert "wrote" in capsys.readouterr().out and list(tmp_path.iterdir()) == [out]


def test_main_can_leave_datasets_out(tmp_path):
    out = tmp_path / "SUMMARIES.md"
    summary.main(["--out", str(out), "--datasets", "mnist"])
    headings = [line for line in out.read_text().splitlines() if line.startswith("## ")]
    assert headings == ["## mnist (`mnist.models`)"]


def test_detectors_have_layer_tables_ending_in_detections():
    from voc2007.models import INPUT_SIZE, MODELS as DETECTORS
    for name in ("yolo-tiny", "ssd-tiny"):
        size = INPUT_SIZE[name]
        rows = layer_table(DETECTORS[name](), (3, size, size))
        assert rows[1].kind == "Convolution" and rows[1].input_dimension == f"3 x {size} x {size}"
        assert (rows[-1].kind, rows[-1].input_dimension) == ("Output",
                                                             "detections: boxes, scores, labels")
