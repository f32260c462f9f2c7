"""Small image datasets held on the device as uint8, and a loader that batches, shuffles and
augments them there.

MNIST, CIFAR-10 and the scene subset fit in a few hundred MB, so there is nothing to gain from
worker processes: every epoch is a permutation, a gather and a few batched tensor ops when it
starts, then slices; the same code on the CPU and on CUDA.
"""
import contextlib
import functools
import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from common.errors import UserError, describe_error
from common.files import missing_folders, remove_if_empty

AUGMENT_CHUNK = 8192   # images augmented at once: bounds the float temporaries of a chunk


@dataclass
class ImageSet:
    """Images as uint8 (N, C, H, W) on the CPU, labels as int64 (N,), and the class names."""
    images: torch.Tensor
    labels: torch.Tensor
    classes: list

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise UserError(f"expected uint8 images of shape (N, C, H, W), got "
                            f"{self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise UserError(f"{len(self.images)} images but {len(self.labels)} labels")
        low, high = (int(self.labels.min()), int(self.labels.max())) if len(self.labels) else (0, 0)
        if not 0 <= low <= high < len(self.classes):
            raise UserError(f"labels must lie in 0..{len(self.classes) - 1}, found {low}..{high}")

    def __len__(self):
        return len(self.labels)

    def take(self, indices):
        return ImageSet(self.images[indices], self.labels[indices], self.classes)

    def random_subset(self, count, seed=0):
        """A fixed random `count` images (all of them if there are fewer)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.take(order[:count])

    def split(self, holdout, seed=0):
        """(rest, held out): `holdout` random images set aside, for validation."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.take(order[holdout:]), self.take(order[:holdout])


class DeviceLoader:
    """Iterate (images, labels) batches of an ImageSet kept on `device`: images uint8
    (N, C, H, W) as stored, labels int64. The network's input transform (ToNetworkInput) runs
    inside the training step, so that a captured CUDA graph holds it too.

    A training loader shuffles every epoch from (seed, epoch) and augments the whole epoch when
    the epoch starts, a few batched kernels per AUGMENT_CHUNK images: pad-and-random-crop,
    horizontal flip and report 001's photometric set (brightness, contrast, saturation,
    sharpness; rounded back to uint8, as torchvision does on uint8 images). Under torchrun every
    rank gets an equal shard. A last training batch of one image is left out (batch norm cannot
    train on it); a smaller last batch is kept.
    """

    def __init__(self, image_set, *, batch_size, device, train=False, crop_padding=0,
                 flip=False, photometric=False, seed=0, rank=0, world_size=1):
        if batch_size % world_size:
            raise UserError(f"--batch-size {batch_size} does not split evenly across "
                            f"{world_size} processes")
        self.images = image_set.images.to(device)
        self.labels = image_set.labels.to(device)
        self.batch_size = batch_size // world_size
        self.device = device
        self.train = train
        self.crop_padding = crop_padding
        self.flip = flip
        self.photometric = photometric
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _shard_size(self):
        if self.train:  # equal shards: every rank must take the same number of steps
            return len(self.labels) // self.world_size
        return len(range(self.rank, len(self.labels), self.world_size))

    def __len__(self):
        batches = math.ceil(self._shard_size() / self.batch_size)
        if self.train and self._shard_size() % self.batch_size == 1:
            batches -= 1   # a last batch of one image is left out: batch norm cannot train on it
        return batches

    def __iter__(self):
        if self.train:
            images, labels = self.augmented_epoch()
        elif self.world_size == 1:
            images, labels = self.images, self.labels
        else:
            shard = torch.arange(self.rank, len(self.labels), self.world_size, device=self.device)
            images, labels = self.images[shard], self.labels[shard]
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield images[start:start + self.batch_size], labels[start:start + self.batch_size]

    def augmented_epoch(self):
        """This rank's shard of the epoch's permutation, augmented: (images, labels). The
        permutation is the same on every rank (they split it), the augmentation draws differ
        per rank; both depend on (seed, epoch) only."""
        shuffling = torch.Generator(device=self.device)
        shuffling.manual_seed(self.seed * 1_000_003 + self.epoch)
        augmenting = torch.Generator(device=self.device)
        augmenting.manual_seed((self.seed * 1_000_003 + self.epoch) * 1_009 + self.rank + 1)
        order = torch.randperm(len(self.labels), generator=shuffling, device=self.device)
        order = order[: self._shard_size() * self.world_size][self.rank::self.world_size]
        if not (self.crop_padding or self.flip or self.photometric):
            return self.images[order], self.labels[order]
        chunks = []
        for start in range(0, len(order), AUGMENT_CHUNK):
            images = self.images[order[start:start + AUGMENT_CHUNK]]
            if self.crop_padding:
                images = random_crop(images, self.crop_padding, augmenting)
            if self.flip:
                images = random_flip(images, augmenting)
            if self.photometric:
                images = photometric_jitter(images.float(), augmenting).round_().to(torch.uint8)
            chunks.append(images)
        return torch.cat(chunks), self.labels[order]


class ToNetworkInput:
    """uint8 images (N, C, H, W) -> float, resized to `resize` (bilinear), normalised with
    `mean` and `std` (per channel, for images in [0, 1]), in the model's memory layout."""

    def __init__(self, mean, std, *, device, resize=None, channels_last=False):
        channels = len(mean)
        self.mean = torch.tensor(mean, device=device).view(1, channels, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, channels, 1, 1) * 255
        self.resize = resize
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images):
        images = images.float()
        if self.resize:
            images = F.interpolate(images, size=self.resize, mode="bilinear", antialias=False,
                                   align_corners=False)
        images = (images - self.mean) / self.std
        return images.contiguous(memory_format=self.memory_format)


def random_crop(images, padding, generator):
    """Zero-pad by `padding` and cut a random window of the original size from each image."""
    count, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    dy = torch.randint(0, 2 * padding + 1, (count,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (count,), generator=generator, device=device)
    rows = (dy[:, None] + torch.arange(height, device=device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(width, device=device))[:, None, None, :]
    batch = torch.arange(count, device=device)[:, None, None, None]
    channel = torch.arange(channels, device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images, generator):
    flip = torch.rand(len(images), generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


# Report 001 names the operations but not their strengths; these are torchvision's usual ones.
JITTER_STRENGTH = 0.25   # brightness, contrast, saturation factors in [0.75, 1.25]
SHARPNESS_RANGE = (0.5, 2.0)
LUMA = (0.299, 0.587, 0.114)   # ITU-R 601, as PIL's "L"
# PIL's SMOOTH filter, what torchvision's sharpness blends with
SMOOTHING = tuple(tuple(weight / 13 for weight in row)
                  for row in ((1, 1, 1), (1, 5, 1), (1, 1, 1)))


def photometric_jitter(images, generator):
    """Random brightness, contrast, saturation and sharpness on a float batch in [0, 255]."""
    count = len(images)
    device = images.device

    def factors(low, high):
        return torch.empty(count, 1, 1, 1, device=device).uniform_(low, high, generator=generator)

    low, high = 1 - JITTER_STRENGTH, 1 + JITTER_STRENGTH
    images = (images * factors(low, high)).clamp(0, 255)
    gray = grayscale(images)
    images = blend(images, gray.mean(dim=(2, 3), keepdim=True), factors(low, high))
    if images.shape[1] == 3:
        images = blend(images, grayscale(images), factors(low, high))
    return blend(images, smoothed(images), factors(*SHARPNESS_RANGE))


@functools.cache
def device_constant(values, device):
    """A float32 constant (`values`: nested tuples) copied to `device` once: a copy inside a
    training loop would wait for the GPU's queue at every step."""
    return torch.tensor(values, dtype=torch.float32, device=device)


def grayscale(images):
    if images.shape[1] == 1:
        return images
    luma = device_constant(LUMA, images.device).view(1, 3, 1, 1)
    return (images * luma).sum(dim=1, keepdim=True)


def blend(images, other, factor):
    """factor 1 keeps the image, 0 gives `other`, above 1 pushes away from it."""
    return (other + factor * (images - other)).clamp(0, 255)


def smoothed(images):
    """PIL's SMOOTH filter (what torchvision's sharpness blends with), borders kept."""
    channels = images.shape[1]
    kernel = device_constant(SMOOTHING, images.device).expand(channels, 1, 3, 3)
    inner = F.conv2d(images, kernel, groups=channels)
    result = images.clone()
    result[:, :, 1:-1, 1:-1] = inner
    return result


def download_with_torchvision(dataset_class, data_dir, install, failure):
    """Let torchvision download `dataset_class` (checking its checksums) into a scratch folder
    inside `data_dir`, quietly; `install(scratch)` then moves the files into place, so an
    interrupted download leaves nothing half-written, and a failed one no empty `data_dir`
    either. Offline, raise a UserError whose text is `failure(reason)`."""
    data_dir = Path(data_dir)
    created = missing_folders(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        quiet = io.StringIO()
        with tempfile.TemporaryDirectory(dir=data_dir) as scratch, \
                contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            dataset_class(scratch, train=True, download=True)
            install(Path(scratch))
    except Exception as error:  # offline: URLError, RuntimeError from torchvision, ...
        remove_if_empty(created)
        raise UserError(failure(describe_error(error))) from None
