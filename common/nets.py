"""Networks that two datasets share: report 000's LeNet and AlexNet and report 001's networks
(MNIST and CIFAR-10), torchvision's ImageNet models with a new head, and the loading of their
pretrained weights."""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from common.errors import UserError, describe_error
from common.files import load_torch


class LeNet(nn.Module):
    """LeNet-5 for 32x32 inputs: conv 6-16 (5x5) with max pooling, fc 400-120-84-10.

    Report 003 Figure 1 prints it for CIFAR-10 (3 channels: 62,006 parameters); report 000 uses
    pytorch.org's one-channel version for MNIST (61,706), fed MNIST padded to 32x32 as in LeNet-5.
    """

    def __init__(self, in_channels=3, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class Report001Net(nn.Module):
    """Report 001's `Neural_net` family: two 3x3 convolutions (padding 1), one 2x2 max pool,
    dropout, then fully connected layers; the report prints five of them (MNIST Figures 1 and
    3, CIFAR-10 Figures 7, 9 and 11), which differ in channels, hidden widths and dropouts.

    forward: conv1, ReLU, conv2, ReLU, pool, [dc1], flatten, fc1, ReLU, dc2, [fc2, ReLU, ...], fcN
    The linear layers are numbered in order (CIFAR-10 Model-3 prints its second one as fc3).
    """

    def __init__(self, in_channels, channels, hidden, image_size, first_dropout=True,
                 num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels[0], kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], kernel_size=3, stride=1, padding=1)
        if first_dropout:
            self.dc1 = nn.Dropout(0.25)
        self.dc2 = nn.Dropout(0.5)
        self.mp1 = nn.MaxPool2d(kernel_size=2, stride=2)
        widths = [channels[1] * (image_size // 2) ** 2, *hidden, num_classes]
        self.fcs = len(widths) - 1
        for index in range(self.fcs):
            self.add_module(f"fc{index + 1}", nn.Linear(widths[index], widths[index + 1]))

    def forward(self, x):
        x = self.mp1(F.relu(self.conv2(F.relu(self.conv1(x)))))
        if hasattr(self, "dc1"):
            x = self.dc1(x)
        x = self.dc2(F.relu(self.fc1(torch.flatten(x, 1))))
        for index in range(2, self.fcs + 1):
            x = getattr(self, f"fc{index}")(x)
            if index < self.fcs:
                x = F.relu(x)
        return x


class LocalContrastNorm(nn.Module):
    """Local contrast normalisation (Jarrett et al., 2009), report 000's `radius=5` layer.

    Subtract the mean over a (2r+1)x(2r+1) window across all channels, then divide by the local
    standard deviation, floored by its average over the image. No parameters.
    """

    def __init__(self, radius=5):
        super().__init__()
        self.radius = radius

    def local_mean(self, x):
        return F.avg_pool2d(x.mean(1, keepdim=True), 2 * self.radius + 1, stride=1,
                            padding=self.radius, count_include_pad=False)

    def forward(self, x):
        centred = x - self.local_mean(x)
        deviation = self.local_mean(centred.pow(2)).sqrt()
        floor = deviation.mean(dim=(2, 3), keepdim=True)
        return centred / torch.maximum(deviation, floor).clamp(min=1e-4)

    def extra_repr(self):
        return f"radius={self.radius}"


class AlexNet(nn.Module):
    """Report 000's AlexNet for 32x32 inputs: conv 96-256-384-384-256 with local contrast
    normalisation, fc 3*3*256 -> 4096 -> classes (13,201,802 parameters on CIFAR-10).

    Fixed from the report's code: it applied softmax before the cross-entropy loss (which
    applies its own) and dropout after the last layer; both are gone, the logits come out.
    """

    def __init__(self, in_channels=3, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 96, kernel_size=5, stride=1, padding=2)
        self.conv2 = nn.Conv2d(96, 256, kernel_size=5, stride=1, padding=2)
        self.conv3 = nn.Conv2d(256, 384, kernel_size=3, stride=1, padding=1)
        self.conv4 = nn.Conv2d(384, 384, kernel_size=3, stride=1, padding=1)
        self.conv5 = nn.Conv2d(384, 256, kernel_size=3, stride=1, padding=1)
        self.norm = LocalContrastNorm(radius=5)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        self.fc1 = nn.Linear(3 * 3 * 256, 4096)
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(4096, num_classes)

    def forward(self, x):
        x = self.pool(self.norm(F.relu(self.conv1(x))))   # 32 -> 15
        x = self.pool(self.norm(F.relu(self.conv2(x))))   # 15 -> 7
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = self.pool(F.relu(self.conv5(x)))              # 7 -> 3
        x = torch.flatten(x, 1)
        x = self.dropout(F.relu(self.fc1(x)))
        return self.fc2(x)


# torchvision architecture -> the name of its ImageNet weights in torchvision.models
IMAGENET_WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
    "resnet152": "ResNet152_Weights.IMAGENET1K_V1",
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
    # SSD's VGG-16: the Caffe-trained features (inputs in 0-255, BGR means subtracted)
    "vgg16_features": "VGG16_Weights.IMAGENET1K_FEATURES",
    "vgg19": "VGG19_Weights.IMAGENET1K_V1",
}


def torchvision_classifier(arch, num_classes, in_channels=3):
    """A torchvision ImageNet architecture with a `num_classes` head (and, for a ResNet, a
    first convolution for `in_channels`), randomly initialised; `load_initial_weights` fills
    in ImageNet's. On CUDA it trains in bf16 (cuda_precision, see runtime.resolve_precision):
    its wide convolutions are arithmetic, where bf16 runs twice TF32's rate."""
    model = getattr(torchvision.models, arch)(weights=None)
    if arch.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        if in_channels != 3:   # MNIST's grey digits
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    model.imagenet_arch = arch
    model.cuda_precision = "bf16"
    return model


def imagenet_state_dict(arch):
    """torchvision's ImageNet weights for `arch`, from the torch hub cache or downloaded."""
    weights = torchvision.models.get_weight(IMAGENET_WEIGHTS[arch])
    filename = weights.url.rsplit("/", 1)[-1]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return torch.hub.load_state_dict_from_url(weights.url, progress=False, weights_only=True)
    except Exception as error:  # offline: URLError, timeouts, proxies...
        raise UserError(
            f"--pretrained needs torchvision's ImageNet weights for {arch} ({filename}). They are "
            f"not in {cache} and downloading {weights.url} failed ({describe_error(error)}). "
            f"On a machine that is online, download that file, then either pass "
            f"--weights /path/to/{filename} or copy it into {cache}.") from None


def load_initial_weights(model, *, pretrained, weights_file, log=print):
    """Start `model` from ImageNet weights (--pretrained) or from a file (--weights).

    Every tensor whose name and shape match is copied; a 3-channel first convolution is summed
    into a 1-channel one (MNIST); the rest (the new head) keeps its random initialisation.
    A model that embeds an ImageNet network under other names (a detector's backbone) says
    where each ImageNet tensor goes with a method `imagenet_name(name) -> own name or None`;
    a file is read with whichever naming, its own or ImageNet's, fits more tensors.
    """
    if weights_file:
        state, source = load_torch(weights_file, "weights file"), weights_file
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]   # a checkpoint.pt holds the weights under "model"
    elif pretrained:
        arch = getattr(model, "imagenet_arch", None)
        if arch is None:
            raise UserError(f"--pretrained: {type(model).__name__} has no ImageNet weights; only "
                            f"the torchvision models ({', '.join(IMAGENET_WEIGHTS)}) have them.")
        state, source = imagenet_state_dict(arch), f"torchvision's ImageNet {arch}"
    else:
        return
    if not isinstance(state, dict):
        raise UserError(f"{source} does not hold a state dict of weights.")

    namings = [lambda name: name]
    if hasattr(model, "imagenet_name"):
        namings.append(model.imagenet_name)
    own, copied = max((fitting_tensors(model.state_dict(), state, rename) for rename in namings),
                      key=lambda result: len(result[1]))
    if not copied:
        raise UserError(f"no tensor of {source} fits {type(model).__name__}: wrong file or model.")
    model.load_state_dict(own)
    left = [name for name in own if name not in copied]
    shown = ", ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
    log(f"initialised {len(copied)} of {len(own)} tensors from {source}"
        + (f"; random: {shown}" if left else ""))


def fitting_tensors(own, state, rename):
    """(`own` with every tensor of `state` that fits put in, names of those copied); `rename`
    maps a name of `state` to one of `own` (None: no place for it)."""
    own = dict(own)
    copied = []
    for source_name, tensor in state.items():
        name = rename(source_name)
        target = own.get(name) if name else None
        if target is None or not isinstance(tensor, torch.Tensor):
            continue
        if tensor.shape == target.shape:
            own[name] = tensor
        elif tensor.dim() == 4 and tensor.shape[1] == 3 and target.shape[1] == 1 \
                and tensor.shape[0] == target.shape[0] and tensor.shape[2:] == target.shape[2:]:
            own[name] = tensor.sum(1, keepdim=True)   # RGB filters -> one grey channel
        else:
            continue
        copied.append(name)
    return own, copied
