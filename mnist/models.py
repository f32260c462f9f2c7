"""The MNIST networks of reports 000, 001 and 004, layer for layer as the reports print them.

MODELS maps a --model name to a constructor; INPUT_SIZE says which ones take the digits
zero-padded to 32x32 (the others take 28x28).
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.nets import AlexNet, LeNet, Report001Net, torchvision_classifier


class MNISTNet(nn.Module):
    """Report 004, Problem 1 (MNIST_Net): LeNet-5 with batch norm, 28x28 input, 44,470
    parameters; trained with Adam."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.conv1_bn = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.conv2_bn = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(256, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1_bn(self.conv1(x))))   # 6 x 12 x 12
        x = self.pool(F.relu(self.conv2_bn(self.conv2(x))))   # 16 x 4 x 4
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


ACTIVATIONS = {"relu": F.relu, "sigmoid": torch.sigmoid, "none": lambda x: x}


class MLP(nn.Module):
    """Report 004, Problem 2 (g): fc0 784-50, bn0, fc1 50-30, bn1, fc2 30-10; 41,250 parameters.

    The options are the ablations of Problem 2: `fc_layers=2` drops the 30-wide layer
    (784-50-10), `activation` is relu, sigmoid or none, `batch_norm=False` drops bn0/bn1.
    """

    def __init__(self, fc_layers=3, activation="relu", batch_norm=True):
        super().__init__()
        widths = [784, 50, 30][:fc_layers] + [10]
        self.activation = ACTIVATIONS[activation]
        self.hidden = len(widths) - 2
        for index in range(len(widths) - 1):
            self.add_module(f"fc{index}", nn.Linear(widths[index], widths[index + 1]))
            if batch_norm and index < self.hidden:
                self.add_module(f"bn{index}", nn.BatchNorm1d(widths[index + 1]))

    def forward(self, x):
        x = torch.flatten(x, 1)
        for index in range(self.hidden):
            x = getattr(self, f"fc{index}")(x)
            if hasattr(self, f"bn{index}"):
                x = getattr(self, f"bn{index}")(x)
            x = self.activation(x)
        return getattr(self, f"fc{self.hidden}")(x)


class SmallConvNet(nn.Module):
    """Report 004, Problem 2 (i, j): one 6x6 stride-2 convolution with batch norm, then a
    linear layer; without pooling 11,842 parameters, with 2x2 max pooling 3,202."""

    def __init__(self, pool):
        super().__init__()
        self.conv0 = nn.Conv2d(1, 8, kernel_size=6, stride=2)
        self.conv0_bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2) if pool else nn.Identity()
        self.fc = nn.Linear(8 * 6 * 6 if pool else 8 * 12 * 12, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv0_bn(self.conv0(x))))   # 8 x 12 x 12, pooled 8 x 6 x 6
        return self.fc(torch.flatten(x, 1))


MODELS = {
    "lenet": partial(LeNet, in_channels=1),                               # 000
    "alexnet": partial(AlexNet, in_channels=1),                           # 000
    "resnet18": partial(torchvision_classifier, "resnet18", 10, in_channels=1),  # 000
    "model1": partial(Report001Net, 1, (32, 32), (128,), 28),            # 001 Figure 1
    "model2": partial(Report001Net, 1, (16, 16), (128,), 28, first_dropout=False),  # Figure 3
    "bn_net": MNISTNet,                                                   # 004 Problem 1
    "mlp": MLP,                                                           # 004 Problem 2 (g)
    "conv_nopool": partial(SmallConvNet, pool=False),                     # 004 Problem 2 (i)
    "conv_pool": partial(SmallConvNet, pool=True),                        # 004 Problem 2 (j)
}

# Report 000's LeNet and AlexNet are built for 32x32 inputs (AlexNet flattens 3*3*256 only
# then): the digits are zero-padded from 28x28, which is what LeNet-5 itself was fed.
INPUT_SIZE = {"lenet": 32, "alexnet": 32}


def model_options(args):
    """The MLP ablation options set in a run's arguments (a dict), to rebuild its network."""
    return {key: args[key] for key in ("fc_layers", "activation", "batch_norm")
            if args.get(key) is not None}
