"""The scene networks of report 002, for 3 x 64 x 64 images and six classes.

MODELS maps a --model name to a constructor. The activations are nn.ReLU modules, so that
`python -m common.summary` lists them as the report's layer tables do. The torchvision ResNets
(resnet18, resnet50, resnet101, resnet152) train from scratch, or from ImageNet's weights with
--pretrained (the report's "Transferred" rows).
"""
from functools import partial

import torch
import torch.nn as nn

from common.nets import torchvision_classifier

NUM_CLASSES = 6


class LeNet(nn.Module):
    """Report 002's LeNet (its first model, 0.7945), which the report trains but does not print:
    LeNet-5 sized for 3 x 64 x 64. conv 6 (5x5), ReLU, max-pool 2, conv 16 (5x5), ReLU, max-pool
    2, flatten 16 x 13 x 13 = 2,704, fc 120, ReLU, fc 84, ReLU, fc 6; 338,146 parameters."""

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(16 * 13 * 13, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))   # 6 x 30 x 30
        x = self.pool(self.relu(self.conv2(x)))   # 16 x 13 x 13
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class CustomLeNet(nn.Module):
    """Report 002's "CustomLeNet 구조" table and code, layer for layer: conv 128 (8x8), pool,
    conv 256 (8x8), pool, conv 512 (4x4), pool, fc 4,608 -> 4,096, ReLU, fc 6; 23,122,822
    parameters.

    As printed, there is no activation after the convolutions (the table and the code agree):
    the three convolutions and poolings are kept without one. The table's final Softmax is the
    cross-entropy loss's own; the network returns the logits.
    """

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 128, kernel_size=8, stride=1, padding=0)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(128, 256, kernel_size=8, stride=1, padding=0)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv3 = nn.Conv2d(256, 512, kernel_size=4, stride=1, padding=0)
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(512 * 3 * 3, 4096)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(4096, num_classes)

    def forward(self, x):
        x = self.pool1(self.conv1(x))   # 128 x 57 x 57 -> 128 x 28 x 28
        x = self.pool2(self.conv2(x))   # 256 x 21 x 21 -> 256 x 10 x 10
        x = self.pool3(self.conv3(x))   # 512 x 7 x 7 -> 512 x 3 x 3
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


class AlexNet(nn.Module):
    """Report 002's "AlexNet 구조" table (rows 1-20) and code: conv 96 (5x5, padding 2), ReLU,
    LRN 5, max-pool 3/2, conv 256 (5x5, padding 2), ReLU, LRN 5, max-pool 3/2, conv 384, 384,
    256 (3x3, padding 1) with ReLU, max-pool 3/2, fc 256 x 7 x 7 -> 4,096, ReLU, dropout 0.5,
    fc 6; 55,128,454 parameters.

    Fixed from the report: its code applies dropout after the last layer and its table ends in
    a Softmax (rows 21-22); both are gone, the logits of fc2 come out.
    """

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, kernel_size=5, stride=1, padding=2)
        self.lrn1 = nn.LocalResponseNorm(size=5)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(96, 256, kernel_size=5, stride=1, padding=2)
        self.lrn2 = nn.LocalResponseNorm(size=5)
        self.pool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.conv3 = nn.Conv2d(256, 384, kernel_size=3, stride=1, padding=1)
        self.conv4 = nn.Conv2d(384, 384, kernel_size=3, stride=1, padding=1)
        self.conv5 = nn.Conv2d(384, 256, kernel_size=3, stride=1, padding=1)
        self.pool3 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.fc1 = nn.Linear(256 * 7 * 7, 4096)
        self.dropout = nn.Dropout(p=0.5)
        self.fc2 = nn.Linear(4096, num_classes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.pool1(self.lrn1(self.relu(self.conv1(x))))   # 96 x 64 x 64 -> 96 x 31 x 31
        x = self.pool2(self.lrn2(self.relu(self.conv2(x))))   # 256 x 31 x 31 -> 256 x 15 x 15
        x = self.relu(self.conv3(x))
        x = self.relu(self.conv4(x))
        x = self.pool3(self.relu(self.conv5(x)))              # 256 x 15 x 15 -> 256 x 7 x 7
        x = torch.flatten(x, 1)
        x = self.dropout(self.relu(self.fc1(x)))
        return self.fc2(x)


def resnet(depth, num_classes=NUM_CLASSES):
    """Report 002's ResNet rows, which print no table: ResNet18 from scratch and transferred,
    and the transferred ResNet50/101/152 trained with mixup. torchvision's ImageNet ResNet-depth
    with a 6-way head, fed the 64 x 64 images as they are (its last stage runs at 2 x 2)."""
    return torchvision_classifier(f"resnet{depth}", num_classes)


MODELS = {
    "lenet": LeNet,                 # 002, LeNet (not printed)
    "custom_lenet": CustomLeNet,    # 002, CustomLeNet table
    "alexnet": AlexNet,             # 002, AlexNet table
    **{f"resnet{depth}": partial(resnet, depth) for depth in (18, 50, 101, 152)},   # 002
}
