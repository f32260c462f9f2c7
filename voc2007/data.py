"""PASCAL VOC 2007 from <data-dir>/VOCdevkit/VOC2007, torchvision's layout: JPEGImages/,
Annotations/ and ImageSets/Main/<split>.txt, for YOLOv1 (448x448) and SSD300.

Every annotation of a split is parsed once, when the dataset is built, so that a missing image or
a damaged XML stops the run at start-up with the file's name instead of crashing a worker
process mid-epoch.

Boxes: the XML's are 1-based inclusive pixel indices; samples use continuous 0-based
coordinates, [xmin - 1, ymin - 1, xmax, ymax] (a box covering pixel columns 0..9 is [0, 10]),
so that a flip or a resize moves them exactly with the pixels. dataset.ground_truth(index)
keeps the XML's numbers for the evaluator (common/voc_eval.py follows the devkit), and
to_voc_boxes converts detections back.

Two training loaders yield the same batches, `(images, boxes, labels, dropped)`, of the same
shape, through the same augmentation code (voc2007/augment.py):
- make_loader(..., train=True): a DataLoader whose workers decode one image with PIL and
  augment it as a batch of one; for the CPU and small GPUs. Each sample's augmentation is
  seeded from (seed, epoch, index), so a batch depends neither on the number of worker
  processes nor on the rank, and --resume repeats it exactly.
- VOCDeviceLoader: the split decoded once into device memory, each batch gathered and
  augmented there in a few kernels, seeded from (seed, epoch, rank, step); for CUDA.
"""
import argparse
import copy
import math
import os
import sys
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision.datasets import VOCDetection
from torchvision.datasets.voc import DATASET_YEAR_DICT
from torchvision.transforms.v2.functional import pil_to_tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.data import download_with_torchvision  # noqa: E402
from common.errors import UserError, describe_error, user_message  # noqa: E402
from voc2007.augment import CaffeSSD, DarknetYOLO, Resize, shuffle_boxes  # noqa: E402

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
           "train", "tvmonitor")
FULL_SIZES = {"trainval": 5_011, "test": 4_952}   # the official splits' images
# The archive of each split: trainval's also holds train and val; the test set came out apart.
ARCHIVES = {"trainval": DATASET_YEAR_DICT["2007"]["filename"],
            "test": DATASET_YEAR_DICT["2007-test"]["filename"]}
OFFICIAL_HOST = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/"
TORCHVISION_MIRROR = DATASET_YEAR_DICT["2007"]["url"].rsplit("/", 1)[0] + "/"
DECODE_CHUNK = 256   # JPEG files per batched decoding call on CUDA


def voc_folder(data_dir):
    return Path(data_dir) / "VOCdevkit" / "VOC2007"


def split_list(data_dir, split):
    return voc_folder(data_dir) / "ImageSets" / "Main" / f"{split}.txt"


def archive_of(split):
    return "test" if split == "test" else "trainval"


# ---------------------------------------------------------------------------------------------
# Download


def ensure_voc(data_dir, splits=("trainval", "test"), log=None):
    """Download the archives of the splits whose list (ImageSets/Main/<split>.txt) is missing.

    torchvision downloads and checks them in a scratch folder inside `data_dir`; the files are
    then moved into VOCdevkit/VOC2007, so an interrupted download leaves nothing half-written.
    Offline, a UserError says which files are expected and where they come from, and the
    folders made for the download are removed again. Under torchrun call it on one rank before
    the others build their datasets.
    """
    missing = [split for split in splits if not split_list(data_dir, split).is_file()]
    if not missing:
        return
    image_sets = sorted({archive_of(split) for split in missing})
    folder = voc_folder(data_dir)
    if log:
        log(f"VOC 2007 ({', '.join(missing)}) is not complete in {folder}; downloading "
            f"{' and '.join(ARCHIVES[name] for name in image_sets)} with torchvision")

    def fetch(root, train, download):   # download_with_torchvision's call; VOC has no `train`
        for image_set in image_sets:
            VOCDetection(root, year="2007", image_set=image_set, download=download)

    download_with_torchvision(   # which removes the folders it made for a failed download
        fetch, data_dir, lambda scratch: move_into(scratch / "VOCdevkit" / "VOC2007", folder),
        lambda reason: missing_message(folder, missing, reason))


def missing_message(folder, missing, reason):
    lists = ", ".join(f"ImageSets/Main/{split}.txt" for split in missing)
    return (f"PASCAL VOC 2007 is not complete in {folder} ({lists} missing) and downloading it "
            f"failed ({reason}). The folder must hold JPEGImages/, Annotations/ and "
            f"ImageSets/Main/ as unpacked from {ARCHIVES['trainval']} (trainval) and "
            f"{ARCHIVES['test']} (test), published at {OFFICIAL_HOST} (torchvision downloads "
            f"them from {TORCHVISION_MIRROR}). Run `make data-voc2007` on a machine that is "
            f"online and copy the data dir here, unpack the two archives into "
            f"{folder.parents[1]}, or point --data-dir (or DATA_DIR) at a folder that holds "
            f"VOCdevkit/VOC2007/.")


def move_into(source, target):
    """Move a downloaded VOC2007 folder into place: whole (one rename) when there is none yet,
    else file by file, keeping the files already there and moving the split lists last, so an
    interrupted move never leaves a list that names missing files."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        return
    files = sorted((path for path in source.rglob("*") if path.is_file()),
                   key=lambda path: "ImageSets" in path.parts)
    for path in files:
        destination = target / path.relative_to(source)
        if not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            path.replace(destination)


# ---------------------------------------------------------------------------------------------
# Annotations


@dataclass
class Annotation:
    """One image's XML, parsed: boxes as written there (XYXY, 1-based pixels)."""
    image_id: str
    image_path: str
    xml_path: str
    size: tuple              # (height, width)
    boxes: torch.Tensor      # float32 (M, 4) as in the XML
    labels: torch.Tensor     # int64 (M,), indices into CLASSES
    difficult: torch.Tensor  # bool (M,)


def read_annotation(image_path, xml_path, split):
    """The Annotation of one image; a missing image or an invalid XML is a UserError."""
    if not os.path.isfile(image_path):
        raise UserError(f"{image_path} is missing, but ImageSets/Main/{split}.txt lists it. Put "
                        f"the image back (it comes from {ARCHIVES[archive_of(split)]}) or take "
                        f"its line out of the list.")

    def invalid(problem):
        return UserError(f"{xml_path}: {problem}. A VOC annotation holds <size> (<width>, "
                         f"<height>) and, per <object>, a <name> among the 20 VOC classes and "
                         f"a <bndbox> with xmin <= xmax and ymin <= ymax in pixels; fix the file "
                         f"or replace it with the one of {ARCHIVES[archive_of(split)]}.")

    try:
        tree = VOCDetection.parse_voc_xml(ET.parse(xml_path).getroot()).get("annotation")
    except (OSError, ET.ParseError) as error:
        raise invalid(f"cannot be read ({describe_error(error)})") from None
    if not isinstance(tree, dict):
        raise invalid("no <annotation> element")
    try:
        size = (int(tree["size"]["height"]), int(tree["size"]["width"]))
    except (KeyError, TypeError, ValueError):
        raise invalid("no <size> with integer <width> and <height>") from None
    if min(size) <= 0:
        raise invalid(f"image size {size[1]}x{size[0]}")

    boxes, labels, difficult = [], [], []
    for number, obj in enumerate(tree.get("object", []), 1):
        name = obj.get("name") if isinstance(obj, dict) else None
        if name not in CLASSES:
            raise invalid(f"object {number} has class {name!r}, not one of the 20 VOC classes")
        try:
            box = [float(obj["bndbox"][key]) for key in ("xmin", "ymin", "xmax", "ymax")]
            flag = bool(int(obj.get("difficult", 0)))
        except (KeyError, TypeError, ValueError):
            raise invalid(f"object {number} ({name}) lacks a valid <bndbox> or <difficult>") \
                from None
        unreadable = [f"<{key}>{value}</{key}>" for key, value
                      in zip(("xmin", "ymin", "xmax", "ymax"), box) if not math.isfinite(value)]
        if unreadable:
            raise invalid(f"object {number} ({name}) has a coordinate that is not a finite "
                          f"number: {', '.join(unreadable)}")
        if not (box[0] <= box[2] and box[1] <= box[3]):
            raise invalid(f"object {number} ({name}) has xmin > xmax or ymin > ymax: {box}")
        boxes.append(box)
        labels.append(CLASSES.index(name))
        difficult.append(flag)
    return Annotation(Path(image_path).stem, str(image_path), str(xml_path), size,
                      torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                      torch.tensor(labels, dtype=torch.int64), torch.tensor(difficult, dtype=bool))


def sample_boxes(annotation):
    """The XML's boxes in continuous 0-based coordinates ([xmin - 1, ymin - 1, xmax, ymax]),
    clipped to the image, and which of them have an area: the others (wholly outside the
    image) are left out of the samples."""
    boxes = annotation.boxes - torch.tensor([1.0, 1.0, 0.0, 0.0])
    height, width = annotation.size
    boxes = torch.minimum(boxes.clamp(min=0), torch.tensor([width, height, width, height],
                                                           dtype=torch.float32))
    return boxes, (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def to_voc_boxes(boxes):
    """Boxes (..., 4) in continuous 0-based pixel coordinates of the original image (a
    detector's, scaled back) -> VOC's 1-based numbers, as dataset.ground_truth(index) gives
    them to the evaluator: +1 on xmin and ymin. A box under a pixel wide (or high) keeps
    xmin <= xmax, as the evaluator checks: the devkit counts it one pixel wide."""
    xmax, ymax = boxes[..., 2], boxes[..., 3]
    return torch.stack([torch.minimum(boxes[..., 0] + 1, xmax),
                        torch.minimum(boxes[..., 1] + 1, ymax), xmax, ymax], dim=-1)


# ---------------------------------------------------------------------------------------------
# Dataset


class VOCDataset(Dataset):
    """One split of VOC 2007 ("train", "val", "trainval" or "test"), downloaded if missing.

    `dataset[index]`, or `dataset[(seed, epoch, index)]` as make_loader's training sampler asks
    (a training sample: its boxes shuffled and its augmentation drawn from a generator seeded
    from the three numbers), gives (image, target):
      image   uint8 (3, S, S) after `transform` (a recipe of voc2007/augment.py, such as
              yolo_train_transform(448); None: the original image)
      target  "boxes" float32 (N, 4) XYXY in continuous pixel coordinates of that image,
              "labels" int64 (N,) in 0..19, "difficult" bool (N,), "image_id" the VOC id
              ("000005"), "index" this dataset's index (for ground_truth), "orig_size" (H, W)
              of the original image, "dropped_boxes" how many boxes the augmentation removed
              (cropped away or too small), for the training loop to sum and report.
    Boxes wholly outside their image are left out of samples (summary() counts them);
    `drop_difficult=True` (training, as the devkit's baselines do) removes the difficult boxes
    before the augmentation, so that a crop is judged on the boxes that are trained on.
    Evaluation compares with ground_truth(index), which keeps every box as in the XML.
    """

    def __init__(self, data_dir, split, transform=None, *, drop_difficult=False, log=None):
        ensure_voc(data_dir, [split], log)
        voc = VOCDetection(data_dir, year="2007", image_set=split)   # its file lists
        if not any(Path(image).stem for image in voc.images):
            raise UserError(
                f"{split_list(data_dir, split)} lists no images, so there is nothing to "
                f"{'evaluate' if split == 'test' else 'train on'}. It holds one image id per "
                f"line (000005, ...); restore it from {ARCHIVES[archive_of(split)]} or write "
                f"into it the ids of the images to use.")
        self.split = split
        self.annotations = [read_annotation(image, xml, split)
                            for image, xml in zip(voc.images, voc.annotations)]
        self.transform = transform
        self.drop_difficult = drop_difficult
        count = self.summary()["degenerate"]
        if log and count:
            log(f"VOC 2007 {split}: {count} annotated box(es) wholly outside their image are "
                "left out of the samples (the evaluation's ground truth keeps them)")

    def __len__(self):
        return len(self.annotations)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            seed, epoch, index = key
            return self.sample(index, torch.Generator().manual_seed(mixed_seed(seed, epoch,
                                                                               index)))
        return self.sample(key)

    def sample(self, index, generator=None):
        """Image `index` through the transform. Given a generator, a training sample: its boxes
        in a random order (darknet's randomize_boxes) and its augmentation drawn from it."""
        annotation = self.annotations[index]
        image = read_image(annotation, self.split)
        boxes, labels, difficult = self.boxes_of(index)
        if generator is not None:
            order = shuffle_boxes(boxes[None], labels[None], generator)[2][0]
            boxes, labels, difficult = boxes[order], labels[order], difficult[order]
        target = {"image_id": annotation.image_id, "index": index, "orig_size": annotation.size}
        if self.transform is None:
            return image, {"boxes": boxes, "labels": labels, "difficult": difficult,
                           **target, "dropped_boxes": 0}
        batch = self.transform(image[None], torch.tensor([annotation.size]), boxes[None],
                               labels[None], generator)
        kept = int((batch.labels[0] >= 0).sum())
        return batch.images[0], {
            "boxes": batch.boxes[0, :kept], "labels": batch.labels[0, :kept],
            "difficult": difficult[batch.origin[0, :kept]], **target,
            "dropped_boxes": int(batch.dropped[0])}

    def boxes_of(self, index):
        """Image `index`'s boxes as samples start from (continuous coordinates, those with an
        area, without the difficult ones under drop_difficult), its labels and flags."""
        annotation = self.annotations[index]
        boxes, keep = sample_boxes(annotation)
        if self.drop_difficult:
            keep &= ~annotation.difficult
        return boxes[keep], annotation.labels[keep], annotation.difficult[keep]

    @property
    def max_boxes(self):
        """The most boxes a sample of this dataset starts with: M of the padded training
        batches (for training, the most non-difficult boxes of an image of the split)."""
        return max((len(self.boxes_of(index)[1]) for index in range(len(self))), default=0)

    def ground_truth(self, index):
        """The objects of image `index` as in its XML, for the evaluator: "boxes" float32 (M, 4)
        in VOC's 1-based pixel numbers of the original image, "labels", "difficult", and the
        "image_id"."""
        annotation = self.annotations[index]
        return {"boxes": annotation.boxes.clone(), "labels": annotation.labels.clone(),
                "difficult": annotation.difficult.clone(), "image_id": annotation.image_id}

    def with_transform(self, transform, *, drop_difficult=False):
        """The same images and parsed annotations through another transform."""
        other = copy.copy(self)
        other.transform, other.drop_difficult = transform, drop_difficult
        return other

    def subset(self, count, seed=0):
        """The same dataset restricted to a fixed random `count` images (all if fewer), kept in
        VOC order (--limit-train / --limit-test)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        part = copy.copy(self)
        part.annotations = [self.annotations[index] for index in sorted(order[:count].tolist())]
        return part

    def summary(self):
        """Counts for the log: images, objects (per class), difficult, and degenerate boxes
        (wholly outside their image)."""
        labels = [annotation.labels for annotation in self.annotations]
        labels = torch.cat(labels) if labels else torch.empty(0, dtype=torch.int64)
        per_class = torch.bincount(labels, minlength=len(CLASSES)).tolist()
        return {"split": self.split, "images": len(self), "objects": len(labels),
                "per_class": dict(zip(CLASSES, per_class)),
                "difficult": sum(int(a.difficult.sum()) for a in self.annotations),
                "degenerate": sum(int((~sample_boxes(a)[1]).sum()) for a in self.annotations)}


def read_image(annotation, split):
    """The image as uint8 RGB (3, H, W), decoded by PIL (as VOCDetection does); an undecodable
    one is a UserError (raised in the worker process, re-raised in the main one by VOCLoader)."""
    path = annotation.image_path
    try:
        with Image.open(path) as file:
            image = pil_to_tensor(file.convert("RGB"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot decode the image {path} ({describe_error(error)}); replace it "
                        f"with the one of {ARCHIVES[archive_of(split)]}.") from None
    check_image_size(image, annotation)
    return image


def check_image_size(image, annotation):
    if tuple(image.shape[1:]) != annotation.size:
        height, width = annotation.size
        raise UserError(f"{annotation.image_path} is {image.shape[2]}x{image.shape[1]} pixels "
                        f"but {annotation.xml_path} says {width}x{height}, so its boxes would "
                        f"not fit; replace the image or the annotation with the official one.")


def mixed_seed(*numbers):
    """A 64-bit seed well mixed from the numbers: (seed, epoch, index) for a sample of
    make_loader, (seed, epoch, rank, step) for a batch of VOCDeviceLoader."""
    return int(np.random.SeedSequence(list(numbers)).generate_state(1, np.uint64)[0])


# ---------------------------------------------------------------------------------------------
# Recipes: each takes and returns a batch (voc2007/augment.py); the dataset gives it one image


def yolo_train_transform(size=448):
    """YOLOv1's training augmentation, as darknet's (augment.DarknetYOLO)."""
    return DarknetYOLO(size)


def ssd_train_transform(size=300):
    """SSD300's training augmentation, as Caffe's ssd_pascal.py configures it
    (augment.CaffeSSD)."""
    return CaffeSSD(size)


def eval_transform(size):
    """Evaluation, and training without augmentation: the resize alone, resampled as in
    training (augment.Resize)."""
    return Resize(size)


# ---------------------------------------------------------------------------------------------
# Loaders


def pad_targets(targets, max_boxes=None):
    """The boxes and labels of a batch's targets (a list of {"boxes" (N, 4), "labels" (N,)}) as
    two tensors of one shape, as the detectors' loss takes them: boxes float32 (B, M, 4) and
    labels int64 (B, M), where an image with fewer than M boxes is padded with zero boxes of
    label -1. M is `max_boxes` (default: the most boxes of an image of the batch); each image's
    boxes keep their order."""
    count = max([len(target["labels"]) for target in targets] + [max_boxes or 0])
    if max_boxes is not None and count > max_boxes:
        raise ValueError(f"an image has {count} boxes, more than max_boxes={max_boxes}")
    device = targets[0]["boxes"].device if targets else None
    boxes = torch.zeros(len(targets), count, 4, device=device)
    labels = torch.full((len(targets), count), -1, dtype=torch.int64, device=device)
    for index, target in enumerate(targets):
        found = len(target["labels"])
        boxes[index, :found] = target["boxes"]
        labels[index, :found] = target["labels"]
    return boxes, labels


def collate(batch):
    """Evaluation: (images uint8 (B, 3, S, S), list of B target dicts)."""
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


def training_collate(batch, max_boxes):
    """Training: (images uint8 (B, 3, S, S), boxes float32 (B, M, 4), labels int64 (B, M) with
    -1 marking padding, dropped int64 (B,)), M = max_boxes."""
    images, targets = zip(*batch)
    boxes, labels = pad_targets(targets, max_boxes)
    dropped = torch.tensor([target["dropped_boxes"] for target in targets], dtype=torch.int64)
    return torch.stack(images), boxes, labels, dropped


class EpochSampler(Sampler):
    """DistributedSampler's shuffled shard of this rank, each index sent as (seed, epoch, index):
    the worker that loads it seeds the sample's augmentation from them (persistent workers do
    not see set_epoch on the main process' objects, so the epoch travels with the index)."""

    def __init__(self, dataset, seed, rank, world_size):
        self.order = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                        shuffle=True, seed=seed, drop_last=True)
        self.seed = seed

    @property
    def epoch(self):
        return self.order.epoch

    def set_epoch(self, epoch):
        self.order.set_epoch(epoch)

    def __len__(self):
        return len(self.order)

    def __iter__(self):
        return ((self.seed, self.order.epoch, index) for index in self.order)


def check_batch(dataset, batch_size, world_size, sampler=None):
    """The global batch must split evenly across the processes and, for training (given the
    sampler of a process' shard), fit into that shard."""
    if batch_size % world_size:
        raise UserError(f"--batch-size {batch_size} does not split evenly across {world_size} "
                        "processes")
    if sampler is not None and len(sampler) < batch_size // world_size:
        raise UserError(f"--batch-size {batch_size} is more than the {len(dataset)} training "
                        f"images ({len(sampler)} per process): lower it.")


class VOCLoader:
    """A DataLoader with set_epoch; a UserError from a worker reads as it was raised there."""

    def __init__(self, loader, sampler):
        self.loader = loader
        self.sampler = sampler
        self.dataset = loader.dataset
        self.batch_size = loader.batch_size

    def __len__(self):
        return len(self.loader)

    def set_epoch(self, epoch):
        if isinstance(self.sampler, EpochSampler):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        try:
            yield from self.loader
        except UserError as error:   # DataLoader puts the worker's traceback into the message
            raise UserError(user_message(error)) from None


def make_loader(dataset, *, batch_size, train, workers, seed=0, rank=0, world_size=1,
                pin_memory=False):
    """Batches of `dataset` for rank `rank` of `world_size`; `batch_size` is the global batch,
    split across the ranks (as common.data.DeviceLoader does).

    Training: (images uint8 (B, 3, S, S), boxes float32 (B, M, 4), labels int64 (B, M), -1
    marking padding, dropped int64 (B,)) with M = dataset.max_boxes; a fresh shuffle per epoch
    (call set_epoch), equal shards, incomplete batches dropped, so every rank takes the same
    number of steps and no step sees a batch of one. The workers augment one image at a time.
    Evaluation: (images, list of target dicts); rank r takes images r, r + W, r + 2W, ... in
    order, nothing padded or repeated.
    """
    check_batch(dataset, batch_size, world_size)
    if train:
        sampler = EpochSampler(dataset, seed, rank, world_size)
        check_batch(dataset, batch_size, world_size, sampler)
        batches = partial(training_collate, max_boxes=dataset.max_boxes)
    else:
        sampler = range(rank, len(dataset), world_size)
        batches = collate
    loader = DataLoader(dataset, batch_size=batch_size // world_size, sampler=sampler,
                        drop_last=train, collate_fn=batches, num_workers=workers,
                        pin_memory=pin_memory, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(seed))  # not the global one
    return VOCLoader(loader, sampler)


class VOCDeviceLoader:
    """The training batches of `dataset` (a VOCDataset with a training transform) for rank
    `rank` of `world_size`, decoded once into `device` memory and augmented there a whole batch
    at a time. A drop-in for make_loader(..., train=True): the same batches (images uint8
    (B, 3, S, S), boxes float32 (B, M, 4), labels int64 (B, M), dropped int64 (B,), here on
    `device`), the same images per step (the same shuffled shard per epoch, equal shards,
    incomplete batches dropped), the same augmentation code, its random numbers drawn per batch
    from a generator seeded from (seed, epoch, rank, step), so --resume repeats it exactly.
    Nothing in an epoch waits for the device.

    Memory: every image of the split on one uint8 canvas of the largest height and width
    (VOC's are at most 500 x 500): VOC 2007 trainval's 5,011 images take 5,011 x 3 x 500 x 500
    bytes = 3.76 GB (3.5 GiB), their boxes under 5 MB; a step adds the batch's canvases in
    float32 (192 MB at batch 64) and its output.

    Decoding: on CUDA, torchvision.io.decode_jpeg decodes DECODE_CHUNK files per call there
    (nvJPEG). torchvision 0.29 deprecates its image decoders (a DeprecationWarning) in favour
    of TorchCodec's (torchcodec >= 0.16), not a dependency of this project; the warning is
    silenced for that call. Where torchvision has no decode_jpeg any more, or nvJPEG refuses a
    file, and on other devices, PIL decodes on the CPU.
    """

    def __init__(self, dataset, *, batch_size, device, seed=0, rank=0, world_size=1):
        check_batch(dataset, batch_size, world_size)
        self.sampler = EpochSampler(dataset, seed, rank, world_size)
        check_batch(dataset, batch_size, world_size, self.sampler)
        self.dataset, self.device = dataset, torch.device(device)
        self.seed, self.rank, self.batch_size = seed, rank, batch_size // world_size
        self.transform = dataset.transform
        self.images = decode_split(dataset, self.device)
        self.sizes = torch.tensor([annotation.size for annotation in dataset.annotations],
                                  device=self.device)
        starts = [dict(zip(("boxes", "labels"), dataset.boxes_of(index)[:2]))
                  for index in range(len(dataset))]
        self.boxes, self.labels = (tensor.to(self.device)
                                   for tensor in pad_targets(starts, dataset.max_boxes))

    def __len__(self):
        return len(self.sampler) // self.batch_size

    def set_epoch(self, epoch):
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        epoch = self.sampler.epoch
        order = torch.tensor([index for _, _, index in self.sampler], dtype=torch.int64)
        if self.device.type == "cuda":
            order = order.pin_memory()   # so the one copy of the epoch does not wait
        order = order.to(self.device, non_blocking=True)
        generator = torch.Generator(device=self.device)
        for step in range(len(self)):
            picked = order[step * self.batch_size:(step + 1) * self.batch_size]
            generator.manual_seed(mixed_seed(self.seed, epoch, self.rank, step))
            boxes, labels, _ = shuffle_boxes(self.boxes.index_select(0, picked),
                                             self.labels.index_select(0, picked), generator)
            batch = self.transform(self.images.index_select(0, picked),
                                   self.sizes.index_select(0, picked), boxes, labels, generator)
            yield batch.images, batch.boxes, batch.labels, batch.dropped


def decode_split(dataset, device):
    """Every image of `dataset` on one uint8 canvas (N, 3, H, W) on `device`, image i in its
    top-left corner, H and W the largest height and width."""
    annotations = dataset.annotations
    height = max(annotation.size[0] for annotation in annotations)
    width = max(annotation.size[1] for annotation in annotations)
    canvas = torch.zeros(len(annotations), 3, height, width, dtype=torch.uint8, device=device)
    for start in range(0, len(annotations), DECODE_CHUNK):
        chunk = annotations[start:start + DECODE_CHUNK]
        for index, (annotation, image) in enumerate(
                zip(chunk, decode_images(chunk, dataset.split, device)), start):
            canvas[index, :, :annotation.size[0], :annotation.size[1]] = image
    return canvas


def decode_images(annotations, split, device):
    """The images of `annotations` as uint8 (3, H, W) on `device`: decoded there on CUDA, else
    (or for a chunk nvJPEG refuses, so that PIL names the damaged file) by PIL."""
    decode_jpeg = getattr(torchvision.io, "decode_jpeg", None)
    if device.type == "cuda" and decode_jpeg is not None:
        try:
            encoded = [torch.frombuffer(bytearray(Path(annotation.image_path).read_bytes()),
                                        dtype=torch.uint8) for annotation in annotations]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                images = decode_jpeg(encoded, mode=torchvision.io.ImageReadMode.RGB,
                                     device=device)
        except (OSError, RuntimeError):
            images = None
        if images is not None:
            for annotation, image in zip(annotations, images):
                check_image_size(image, annotation)
            return images
    return [read_image(annotation, split).to(device) for annotation in annotations]


# ---------------------------------------------------------------------------------------------
# make data-voc2007


def describe(summary):
    """A split's summary() as lines for the console."""
    lines = [f"  {summary['split']}: {summary['images']:,} images, {summary['objects']:,} objects "
             f"({summary['difficult']:,} difficult, {summary['degenerate']:,} wholly outside "
             f"their image)"]
    counts = [f"{name} {count:,}" for name, count in summary["per_class"].items()]
    lines += ["    " + ", ".join(counts[start:start + 5]) for start in range(0, len(counts), 5)]
    return "\n".join(lines)


def main(argv=None):
    """`make data-voc2007`: download VOC 2007 (trainval and test) if it is missing, then check
    every annotation and image list and summarise each split."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", default=cli.default_data_dir())
    args = parser.parse_args(argv)
    ensure_voc(args.data_dir, log=print)
    print(f"PASCAL VOC 2007 in {voc_folder(args.data_dir)}:")
    for split in ("trainval", "test"):
        print(describe(VOCDataset(args.data_dir, split, log=print).summary()))


if __name__ == "__main__":
    sys.exit(cli.run(main))
