"""The CIFAR-10 networks of reports 000, 001, 003 and 004, and the ResNets of He et al. (2016).

MODELS maps a --model name to a constructor. The torchvision ones (resnet18, resnet50,
resnet101, vgg19_torchvision) are ImageNet architectures meant for --pretrained fine-tuning.
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.nets import AlexNet, LeNet, Report001Net, torchvision_classifier


class VGG16(nn.Module):
    """Report 003, Figure 8 (`VGG16_torch`), layer for layer: VGG configuration C, whose third
    convolution of blocks 3-5 is 1x1, and a 512-256-256-10 head; 10,195,786 parameters.

    Fixed from the report, whose VGG-16 never trained: PyTorch's default initialisation
    shrinks the signal through thirteen un-normalised layers (conv1_1 gets a gradient 30,000
    times smaller than with He initialisation), so the convolutions start He-normal, as in
    torchvision's VGG. The narrow head keeps PyTorch's default: torchvision's N(0, 0.01),
    meant for 4096-wide layers, would shrink the logits a hundredfold here.
    """

    def __init__(self, num_classes=10):
        super().__init__()
        widths = {1: (3, 64), 2: (64, 128), 3: (128, 256), 4: (256, 512), 5: (512, 512)}
        for block, (inputs, outputs) in widths.items():
            self.add_module(f"conv{block}_1", nn.Conv2d(inputs, outputs, 3, padding=1))
            self.add_module(f"conv{block}_2", nn.Conv2d(outputs, outputs, 3, padding=1))
            if block >= 3:
                self.add_module(f"conv{block}_3", nn.Conv2d(outputs, outputs, 1))
            self.add_module(f"maxpool{block}", nn.MaxPool2d(kernel_size=2, stride=2))
        self.fc1 = nn.Linear(512, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x):
        # the convolutions (each followed by ReLU) and poolings, in the order registered above
        for module in self.children():
            if isinstance(module, nn.Linear):
                break
            x = module(x) if isinstance(module, nn.MaxPool2d) else F.relu(module(x))
        x = torch.flatten(x, 1)   # 512 x 1 x 1 after five poolings of 32x32
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ConvBlock(nn.Module):
    """Report 004's ConvBlock1 (two 3x3 convolutions) and ConvBlock2 (three), each followed
    by LeakyReLU(0.2), then a 2x2 max pool."""

    def __init__(self, inputs, outputs, convolutions):
        super().__init__()
        layers = []
        for index in range(convolutions):
            layers += [nn.Conv2d(inputs if index == 0 else outputs, outputs, 3, padding=1),
                       nn.LeakyReLU(0.2)]
        self.main = nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2, stride=2))

    def forward(self, x):
        return self.main(x)


class VGG19(nn.Module):
    """Report 004, Problem 3, as printed: five blocks of 2-2-3-3-3 convolutions (13, although
    the report calls it VGG-19) with LeakyReLU(0.2), and a 512-512-128-10 head; 15,044,298
    parameters."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.convlayer1 = ConvBlock(3, 64, 2)
        self.convlayer2 = ConvBlock(64, 128, 2)
        self.convlayer3 = ConvBlock(128, 256, 3)
        self.convlayer4 = ConvBlock(256, 512, 3)
        self.convlayer5 = ConvBlock(512, 512, 3)
        self.linear = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128), nn.ReLU(),
                                    nn.Linear(128, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.2, mode="fan_out",
                                        nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.convlayer5(self.convlayer4(self.convlayer3(self.convlayer2(self.convlayer1(x)))))
        return self.linear(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity shortcut; where the block halves
    the resolution and doubles the width, the shortcut subsamples and pads the new channels
    with zeros (option A of He et al., 2016: no parameters)."""

    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.stride = stride
        self.extra_channels = outputs - inputs

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.extra_channels:
            half = self.extra_channels // 2
            shortcut = F.pad(x[:, :, ::self.stride, ::self.stride],
                             (0, 0, 0, 0, half, self.extra_channels - half))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """He et al. (2016), section 4.2: a 3x3 convolution, three stages of n blocks at 16, 32
    and 64 channels (32x32, 16x16, 8x8), global average pooling and a 10-way layer; depth
    6n + 2 (20, 32, 44, 56, 110: 0.27M to 1.7M parameters)."""

    def __init__(self, depth, num_classes=10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2, got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, blocks, stride=1)
        self.layer2 = self._stage(16, 32, blocks, stride=2)
        self.layer3 = self._stage(32, 64, blocks, stride=2)
        self.fc = nn.Linear(64, num_classes)
        for module in self.modules():   # He initialisation, as torchvision's ResNets
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(inputs, outputs, blocks, stride):
        return nn.Sequential(BasicBlock(inputs, outputs, stride),
                             *[BasicBlock(outputs, outputs, 1) for _ in range(blocks - 1)])

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class MLP(nn.Module):
    """Report 001, Table 2 run 5, "Best Model-3.3": the report does not print that network
    (the best of an earlier lab, 97.81% on MNIST, 50.8% here). This fully connected
    3072-512-256-10 ReLU network stands in for it."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.fc1 = nn.Linear(3 * 32 * 32, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, num_classes)

    def forward(self, x):
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))


MODELS = {
    "lenet": partial(LeNet, in_channels=3),                                     # 003 Figure 1
    "alexnet": partial(AlexNet, in_channels=3),                                 # 000
    "model1": partial(Report001Net, 3, (16, 16), (128,), 32),                   # 001 Figure 7
    "model2": partial(Report001Net, 3, (32, 32), (256, 128), 32),               # 001 Figure 9
    "model3": partial(Report001Net, 3, (16, 32), (64,), 32),                    # 001 Figure 11
    "mlp": MLP,                                                                 # 001 run 5
    "vgg16": VGG16,                                                             # 003 Figure 8
    "vgg19": VGG19,                                                             # 004 Problem 3
    **{f"resnet{depth}": partial(CifarResNet, depth) for depth in (20, 32, 44, 56, 110)},  # 000
    "resnet18": partial(torchvision_classifier, "resnet18", 10),                # 000
    "resnet50": partial(torchvision_classifier, "resnet50", 10),                # 000, 001
    "resnet101": partial(torchvision_classifier, "resnet101", 10),              # 000
    "vgg19_torchvision": partial(torchvision_classifier, "vgg19", 10),          # 004 Problem 4
}
