"""PASCAL VOC 2007 from <data-dir>/VOCdevkit/VOC2007, torchvision's layout: JPEGImages/,
Annotations/ and ImageSets/Main/<split>.txt, for YOLOv1 (448x448) and SSD300.

Every annotation of a split is parsed once, when the dataset is built, so that a missing image or
a damaged XML stops the run at start-up with the file's name instead of crashing a worker
process mid-epoch. Boxes keep the XML's numbers (VOC's 1-based pixel coordinates) and are used
as continuous XYXY coordinates, as most VOC code does: detections mapped back to the original
image size compare with dataset.ground_truth(index) with no offset.

Samples go through transforms.v2 with their boxes; the difficult flags travel beside the boxes
and are filtered with them. make_loader seeds each sample's augmentation from (seed, epoch,
index), so a batch depends neither on the number of worker processes nor on the rank, and
--resume repeats it exactly.
"""
import argparse
import contextlib
import copy
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision import tv_tensors
from torchvision.datasets import VOCDetection
from torchvision.datasets.voc import DATASET_YEAR_DICT
from torchvision.ops import clip_boxes_to_image
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.errors import UserError, describe_error, user_message  # noqa: E402
from common.data import download_with_torchvision  # noqa: E402

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
           "train", "tvmonitor")
FULL_SIZES = {"trainval": 5_011, "test": 4_952}   # the official splits' images
# The archive of each split: trainval's also holds train and val; the test set came out apart.
ARCHIVES = {"trainval": DATASET_YEAR_DICT["2007"]["filename"],
            "test": DATASET_YEAR_DICT["2007-test"]["filename"]}
OFFICIAL_HOST = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/"
TORCHVISION_MIRROR = DATASET_YEAR_DICT["2007"]["url"].rsplit("/", 1)[0] + "/"
MEAN_COLOUR = (123, 117, 104)   # ImageNet's mean RGB (0-255): what zoom-out and shifts fill with


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
    Offline, a UserError says which files are expected and where they come from. Under torchrun
    call it on one rank before the others build their datasets.
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

    download_with_torchvision(
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
    boxes: torch.Tensor      # float32 (M, 4)
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
        if not (box[0] <= box[2] and box[1] <= box[3]):
            raise invalid(f"object {number} ({name}) has xmin > xmax or ymin > ymax: {box}")
        boxes.append(box)
        labels.append(CLASSES.index(name))
        difficult.append(flag)
    return Annotation(Path(image_path).stem, str(image_path), str(xml_path), size,
                      torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                      torch.tensor(labels, dtype=torch.int64), torch.tensor(difficult, dtype=bool))


def degenerate(boxes):
    """Which XYXY boxes have zero (or negative) width or height."""
    return (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])


# ---------------------------------------------------------------------------------------------
# Dataset


class VOCDataset(Dataset):
    """One split of VOC 2007 ("train", "val", "trainval" or "test"), downloaded if missing.

    `dataset[index]`, or `dataset[(seed, epoch, index)]` as make_loader's training sampler asks
    (the augmentation is then seeded from the three), gives (image, target):
      image   uint8 (3, S, S) after `transform` (else the original size)
      target  "boxes" float32 (N, 4) XYXY in the pixels of that image, "labels" int64 (N,)
              in 0..19, "difficult" bool (N,), "image_id" the VOC id ("000005"), "index" this
              dataset's index (for ground_truth), "orig_size" (H, W) of the original image,
              "dropped_boxes" how many boxes the transforms removed (cropped away or
              degenerate), for the training loop to sum and report.
    Boxes of zero width or height in the XML are left out of samples (summary() counts them);
    `drop_difficult=True` (training, as the devkit's baselines do) removes the difficult boxes
    after the transforms. Evaluation compares with ground_truth(index), which keeps all.
    """

    def __init__(self, data_dir, split, transform=None, *, drop_difficult=False, log=None):
        ensure_voc(data_dir, [split], log)
        voc = VOCDetection(data_dir, year="2007", image_set=split)   # its file lists
        self.split = split
        self.annotations = [read_annotation(image, xml, split)
                            for image, xml in zip(voc.images, voc.annotations)]
        self.transform = transform
        self.drop_difficult = drop_difficult
        count = self.summary()["degenerate"]
        if log and count:
            log(f"VOC 2007 {split}: {count} annotated box(es) of zero width or height are "
                "left out of the samples (the evaluation's ground truth keeps them)")

    def __len__(self):
        return len(self.annotations)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            seed, epoch, index = key
            with seeded(sample_seed(seed, epoch, index)):
                return self.sample(index)
        return self.sample(key)

    def sample(self, index):
        annotation = self.annotations[index]
        image = read_image(annotation, self.split)
        boxes, keep = boxes_with_area(annotation)
        target = {"boxes": tv_tensors.BoundingBoxes(boxes[keep], format="XYXY",
                                                    canvas_size=annotation.size),
                  "labels": annotation.labels[keep], "difficult": annotation.difficult[keep]}
        if self.transform:
            image, target = self.transform(image, target)
        dropped = int(keep.sum()) - len(target["labels"])
        boxes, labels, difficult = target["boxes"], target["labels"], target["difficult"]
        if self.drop_difficult:
            boxes, labels, difficult = boxes[~difficult], labels[~difficult], difficult[~difficult]
        return image.as_subclass(torch.Tensor), {
            "boxes": boxes.as_subclass(torch.Tensor), "labels": labels, "difficult": difficult,
            "image_id": annotation.image_id, "index": index, "orig_size": annotation.size,
            "dropped_boxes": dropped}

    def ground_truth(self, index):
        """The objects of image `index` as in its XML, for the evaluator: "boxes" float32 (M, 4)
        in original-image pixels, "labels", "difficult", and the "image_id"."""
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
        """Counts for the log: images, objects (per class), difficult, degenerate boxes."""
        labels = [annotation.labels for annotation in self.annotations]
        labels = torch.cat(labels) if labels else torch.empty(0, dtype=torch.int64)
        per_class = torch.bincount(labels, minlength=len(CLASSES)).tolist()
        return {"split": self.split, "images": len(self), "objects": len(labels),
                "per_class": dict(zip(CLASSES, per_class)),
                "difficult": sum(int(a.difficult.sum()) for a in self.annotations),
                "degenerate": sum(int((~boxes_with_area(a)[1]).sum()) for a in self.annotations)}


def boxes_with_area(annotation):
    """The XML's boxes clipped to the image, and which of them have an area: the others (zero
    width or height) are left out of the samples."""
    boxes = clip_boxes_to_image(annotation.boxes, annotation.size)
    return boxes, ~degenerate(boxes)


def read_image(annotation, split):
    """The image as a uint8 RGB tv_tensors.Image; an undecodable one is a UserError (raised in
    the worker process, re-raised in the main one by VOCLoader). PIL decodes, as in
    VOCDetection (torchvision.io's decoders are deprecated since torchvision 0.29)."""
    path = annotation.image_path
    try:
        with Image.open(path) as file:
            image = v2.functional.pil_to_tensor(file.convert("RGB"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot decode the image {path} ({describe_error(error)}); replace it "
                        f"with the one of {ARCHIVES[archive_of(split)]}.") from None
    if tuple(image.shape[1:]) != annotation.size:
        height, width = annotation.size
        raise UserError(f"{path} is {image.shape[2]}x{image.shape[1]} pixels but "
                        f"{annotation.xml_path} says {width}x{height}, so its boxes would not fit; "
                        f"replace the image or the annotation with the official one.")
    return tv_tensors.Image(image)


def sample_seed(seed, epoch, index):
    """A 64-bit seed for one sample's augmentation, well mixed from the three numbers."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


@contextlib.contextmanager
def seeded(seed):
    """Run a sample's transforms with torch's global generator seeded by `seed` (transforms.v2
    draws all its random numbers there: torch.rand, torch.randint, Tensor.uniform_; Python's
    `random` is not used), on one thread, as in a worker process, so that reductions such as
    the mean of a contrast change round alike with and without workers. The caller's
    generator state and thread count are restored afterwards."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Transforms: each takes and returns (tv_tensors.Image, target) with BoundingBoxes


def per_box_tensors(sample):
    """SanitizeBoundingBoxes' labels_getter: what it filters together with the boxes."""
    _, target = sample
    return target["labels"], target["difficult"]


def to_network_input(size):
    """The end of every pipeline: warp to the detector's square input (aspect not kept, as in
    both papers), then drop the boxes that became degenerate (< 1 pixel) or left the image,
    together with their labels and difficult flags."""
    return [v2.Resize((size, size), antialias=True),
            v2.SanitizeBoundingBoxes(labels_getter=per_box_tensors)]


def yolo_train_transform(size=448):
    """YOLOv1's augmentation (Redmon et al. 2016, section 2.2): random scaling and translation
    of up to 20% of the image size, exposure and saturation changed by up to a factor of 1.5
    (brightness scales HSV's value; saturation blends with the grey image), and a horizontal
    flip."""
    return v2.Compose([
        v2.RandomAffine(degrees=0, translate=(0.2, 0.2), scale=(0.8, 1.2), fill=MEAN_COLOUR),
        v2.ColorJitter(brightness=(1 / 1.5, 1.5), saturation=(1 / 1.5, 1.5)),
        v2.RandomHorizontalFlip(),
        *to_network_input(size)])


def ssd_train_transform(size=300):
    """SSD's augmentation (Liu et al. 2016, section 2.2 and 3.6): photometric distortions, a
    zoom-out onto a canvas up to 4x the size filled with the mean colour, a crop whose IoU with
    the objects is at least a random threshold (or none), and a horizontal flip."""
    return v2.Compose([
        v2.RandomPhotometricDistort(),
        v2.RandomZoomOut(fill=MEAN_COLOUR, side_range=(1.0, 4.0)),
        v2.RandomIoUCrop(),   # marks the boxes whose centre it cut away; Sanitize removes them
        v2.RandomHorizontalFlip(),
        *to_network_input(size)])


def eval_transform(size):
    """Evaluation: the resize alone."""
    return v2.Compose(to_network_input(size))


# ---------------------------------------------------------------------------------------------
# Loader


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
    """(images uint8 (B, 3, S, S), list of B target dicts): box counts differ per image."""
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


class EpochSampler(Sampler):
    """DistributedSampler's shuffled shard of this rank, each index sent as (seed, epoch, index):
    the worker that loads it seeds the sample's augmentation from them (persistent workers do
    not see set_epoch on the main process' objects, so the epoch travels with the index)."""

    def __init__(self, dataset, seed, rank, world_size):
        self.order = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                        shuffle=True, seed=seed, drop_last=True)
        self.seed = seed

    def set_epoch(self, epoch):
        self.order.set_epoch(epoch)

    def __len__(self):
        return len(self.order)

    def __iter__(self):
        return ((self.seed, self.order.epoch, index) for index in self.order)


class VOCLoader:
    """A DataLoader with set_epoch; a UserError from a worker reads as it was raised there."""

    def __init__(self, loader, sampler):
        self.loader = loader
        self.sampler = sampler
        self.dataset = loader.dataset

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

    Training: a fresh shuffle per epoch (call set_epoch), equal shards, incomplete batches
    dropped, so every rank takes the same number of steps and no step sees a batch of one.
    Evaluation: rank r takes images r, r + W, r + 2W, ... in order, nothing padded or repeated.
    """
    if batch_size % world_size:
        raise UserError(f"--batch-size {batch_size} does not split evenly across {world_size} "
                        "processes")
    if train:
        sampler = EpochSampler(dataset, seed, rank, world_size)
    else:
        sampler = range(rank, len(dataset), world_size)
    loader = DataLoader(dataset, batch_size=batch_size // world_size, sampler=sampler,
                        drop_last=train, collate_fn=collate, num_workers=workers,
                        pin_memory=pin_memory, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(seed))  # not the global one
    if train and len(loader) == 0:
        raise UserError(f"--batch-size {batch_size} is more than the {len(dataset)} training "
                        f"images ({len(sampler)} per process): lower it.")
    return VOCLoader(loader, sampler)


# ---------------------------------------------------------------------------------------------
# make data-voc2007


def describe(summary):
    """A split's summary() as lines for the console."""
    lines = [f"  {summary['split']}: {summary['images']:,} images, {summary['objects']:,} objects "
             f"({summary['difficult']:,} difficult, {summary['degenerate']:,} of zero width or "
             f"height)"]
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
