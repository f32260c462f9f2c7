"""Every network has the reports' parameter count and produces one logit per class."""
import pytest
import torch

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
