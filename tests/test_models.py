"""Every network has the reports' parameter count and produces one logit per class."""
import pytest
import torch

from cifar10.models import MODELS as CIFAR_MODELS
from mnist.models import INPUT_SIZE, MODELS as MNIST_MODELS

MNIST_PARAMETERS = {
    "lenet": 61_706,          # pytorch.org LeNet, 1 channel (report 000 names no count)
    "alexnet": 13_197_002,    # report 000's AlexNet with a 1-channel first convolution
    "resnet18": 11_175_370,   # torchvision ResNet-18, 1-channel conv1, 10-way head
    "model1": 813_802,        # report 001, Figure 1
    "model2": 405_306,        # report 001, Figure 3
    "bn_net": 44_470,         # report 004, MNIST_Net
    "mlp": 41_250,            # report 004, Problem 2 (g)
    "conv_nopool": 11_842,    # report 004, Problem 2 (i)
    "conv_pool": 3_202,       # report 004, Problem 2 (j)
}


CIFAR_PARAMETERS = {
    "lenet": 62_006,                  # report 003, Figure 1
    "alexnet": 13_201_802,            # report 000's code
    "model1": 528_474,                # report 001, Figure 7
    "model2": 2_141_738,              # report 001, Figure 9
    "model3": 530_090,                # report 001, Figure 11
    "mlp": 1_707_274,                 # stand-in for report 001's unprinted "Best Model-3.3"
    "vgg16": 10_195_786,              # report 003, Figure 8
    "vgg19": 15_044_298,              # report 004, Problem 3
    "resnet20": 269_722,              # He et al. 2016, option A shortcuts
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet18": 11_181_642,           # torchvision, 10-way head
    "resnet50": 23_528_522,
    "resnet101": 42_520_650,
    "vgg19_torchvision": 139_611_210,
}


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_every_mnist_model_is_counted():
    assert set(MNIST_PARAMETERS) == set(MNIST_MODELS)


@pytest.mark.parametrize("name", sorted(MNIST_PARAMETERS))
def test_mnist_parameter_counts_and_output(name):
    model = MNIST_MODELS[name]()
    assert count(model) == MNIST_PARAMETERS[name]
    size = INPUT_SIZE.get(name, 28)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, size, size)).shape == (2, 10)


@pytest.mark.parametrize("options, parameters", [
    (dict(fc_layers=2, batch_norm=False), 784 * 50 + 50 + 50 * 10 + 10),
    (dict(fc_layers=3, batch_norm=False), 41_250 - 2 * (50 + 30)),
    (dict(fc_layers=2, batch_norm=True), 784 * 50 + 50 + 100 + 50 * 10 + 10),
])
def test_mlp_ablation_variants(options, parameters):
    assert count(MNIST_MODELS["mlp"](**options)) == parameters


def test_mlp_activations_differ():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 28, 28)
    outputs = {}
    for activation in ("relu", "sigmoid", "none"):
        torch.manual_seed(1)
        model = MNIST_MODELS["mlp"](activation=activation, batch_norm=False).eval()
        outputs[activation] = model(x)
    assert not torch.allclose(outputs["relu"], outputs["sigmoid"])
    assert not torch.allclose(outputs["relu"], outputs["none"])


def test_alexnet_returns_logits_not_probabilities():
    """The report's softmax-before-loss bug is fixed: rows need not sum to 1."""
    model = MNIST_MODELS["alexnet"]().eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 1, 32, 32))
    assert not torch.allclose(logits.sum(1), torch.ones(3))
    assert not any(isinstance(m, torch.nn.Softmax) for m in model.modules())


def test_every_cifar_model_is_counted():
    assert set(CIFAR_PARAMETERS) == set(CIFAR_MODELS)


@pytest.mark.parametrize("name", sorted(set(CIFAR_PARAMETERS) - {"vgg19_torchvision"}))
def test_cifar_parameter_counts_and_output(name):
    model = CIFAR_MODELS[name]().eval()
    assert count(model) == CIFAR_PARAMETERS[name]
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_torchvision_vgg19_parameter_count():
    assert count(CIFAR_MODELS["vgg19_torchvision"]()) == CIFAR_PARAMETERS["vgg19_torchvision"]


def test_option_a_shortcut_pads_channels_with_zeros():
    from cifar10.models import BasicBlock
    block = BasicBlock(16, 32, stride=2).eval()
    torch.nn.init.zeros_(block.bn2.weight)   # the residual branch outputs bn2's bias only
    x = torch.rand(1, 16, 8, 8)
    out = block(x)
    assert out.shape == (1, 32, 4, 4)
    shortcut = x[:, :, ::2, ::2]   # subsampled, placed between 8 zero channels on each side
    assert torch.allclose(out[:, 8:24], torch.relu(shortcut + block.bn2.bias[8:24, None, None]))
    assert torch.allclose(out[:, :8], torch.relu(block.bn2.bias[:8, None, None].expand(1, 8, 4, 4)))
