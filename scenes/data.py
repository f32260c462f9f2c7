"""The scene images of report 002: six classes of 64x64 RGB photographs in folders,
<folder>/{train,val}/<class>/*.png, as the public split that the report clones holds them,
https://github.com/ndb796/Scene-Classification-Dataset-Split (13,627 train and 3,407 val
images of the Intel scene dataset).

<folder> is <data-dir>/scenes, or <data-dir> itself when it holds train/ and val/ directly
(e.g. --data-dir ../shared/data/scenes-subset). The val split is the evaluation set. A copy
that is not the public split (a subset) loads as it is, as long as both splits hold the six
class folders, none empty, of 64x64 PNGs. The 8-bit PNG modes (RGB, RGBA, grey, grey with
alpha, palette, 1-bit) are converted to RGB, dropping any alpha; other sizes are an error,
not resized, since the report's networks are built for 64x64. When the folder is missing,
the repository's archive is downloaded; offline, the error says where to get it.
"""
import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.utils import download_and_extract_archive

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.errors import UserError, describe_error  # noqa: E402
from common.data import ImageSet  # noqa: E402

FOLDER = "scenes"
SPLITS = ("train", "val")
CLASSES = ["buildings", "forests", "glacier", "mountains", "sea", "street"]   # labels 0-5
IMAGE_SIZE = 64
ACCEPTED_MODES = ("RGB", "RGBA", "L", "LA", "P", "1")
# Per-channel statistics of the 1,200 training images of ../shared/data/scenes-subset (close
# to ImageNet's 0.485 0.456 0.406 / 0.229 0.224 0.225, which the pretrained ResNets saw).
MEAN = (0.4286, 0.4533, 0.4465)
STD = (0.2528, 0.2504, 0.2824)
REPOSITORY = "https://github.com/ndb796/Scene-Classification-Dataset-Split"
# GitHub's archive of the commit that added the images (an archive of a commit keeps its
# contents), then of the default branch (HEAD), should that commit be gone.
ARCHIVE_URLS = (f"{REPOSITORY}/archive/063473edcb62eb9269132da1e01c6de62e95fa8c.zip",
                f"{REPOSITORY}/archive/HEAD.zip")
# The repository's split of Intel's 17,034 labelled scenes, 80/20 (not Intel's own 14,034 and
# 3,000): report 002's per-class accuracies are fractions of 523, 540, 594, 599, 560 and 591
# val images (e.g. LeNet's buildings 0.6979 = 365 / 523), 3,407 in all.
PUBLIC_COUNTS = {"train": 13_627, "val": 3_407}
FULL_SIZES = {"train": PUBLIC_COUNTS["train"], "test": PUBLIC_COUNTS["val"]}   # val: the test set
DECODE_THREADS = min(8, os.cpu_count() or 1)     # PIL releases the GIL while it decodes


def scenes_folder(data_dir):
    """<data-dir> when it holds train/ or val/ itself, else <data-dir>/scenes."""
    data_dir = Path(data_dir)
    if any((data_dir / split).is_dir() for split in SPLITS):
        return data_dir
    return data_dir / FOLDER


def load_scenes(data_dir):
    """(train, val) ImageSets of uint8 3 x 64 x 64 images, labels in the order of CLASSES."""
    folder = scenes_folder(data_dir)
    if not folder.exists():
        download(data_dir)
    return tuple(read_split(folder / split) for split in SPLITS)


def layout_text(folder):
    return (f"{folder}/{{train,val}}/<class>/*.png with the class folders "
            f"{', '.join(CLASSES)}")


def read_split(split_folder):
    """The ImageSet of one split folder: every PNG of its six class folders."""
    if not split_folder.is_dir():
        raise UserError(f"{split_folder} is missing: expected {layout_text(split_folder.parent)}. "
                        f"Complete the copy, or move {split_folder.parent} away and run `make "
                        f"data-scenes` to download the public split ({REPOSITORY}).")
    found = sorted(path.name for path in split_folder.iterdir()
                   if path.is_dir() and not path.name.startswith("."))   # .ipynb_checkpoints
    unexpected = [name for name in found if name not in CLASSES]
    if unexpected:
        raise UserError(f"unexpected class folders in {split_folder}: "
                        f"{', '.join(str(split_folder / name) for name in unexpected)}; the "
                        f"scene classes are {', '.join(CLASSES)}. Remove or rename them.")
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        class_folder = split_folder / name
        if not class_folder.is_dir():
            raise UserError(f"{class_folder} is missing: every split needs the class folders "
                            f"{', '.join(CLASSES)}.")
        files = sorted(path for path in class_folder.iterdir() if not path.name.startswith("."))
        others = [path.name for path in files if path.suffix.lower() != ".png"]
        if others:
            raise UserError(f"{class_folder} holds files that are not PNG images "
                            f"({', '.join(others[:3])}); remove them.")
        if not files:
            raise UserError(f"{class_folder} holds no PNG images.")
        paths += files
        labels += [label] * len(files)

    images = torch.empty(len(paths), 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)

    def decode_into(index):
        images[index] = torch.from_numpy(read_png(paths[index])).permute(2, 0, 1)

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        list(pool.map(decode_into, range(len(paths))))   # list(): re-raise the first error
    return ImageSet(images, torch.tensor(labels, dtype=torch.int64), CLASSES)


def read_png(path):
    """One image as a uint8 64 x 64 x 3 array."""
    try:
        with Image.open(path) as image:
            image.load()
            mode, size = image.mode, image.size
            if mode in ACCEPTED_MODES:
                image = image.convert("RGB")
    except Exception as error:  # PIL raises many types for a damaged file
        raise UserError(f"cannot read {path}: {describe_error(error)}. Replace it with the "
                        f"repository's file ({REPOSITORY}) or delete it.") from None
    if mode not in ACCEPTED_MODES:
        raise UserError(f"{path} is a {mode} image; expected an 8-bit RGB image (grey, palette "
                        "and RGBA PNGs are converted).")
    if size != (IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f"{path} is {size[0]}x{size[1]}; the scene images are "
                        f"{IMAGE_SIZE}x{IMAGE_SIZE}. Resize the copy to {IMAGE_SIZE}x{IMAGE_SIZE} "
                        f"or use the public split ({REPOSITORY}).")
    return np.array(image)


def download(data_dir):
    """Fetch the repository's archive and install its train/ and val/ as <data-dir>/scenes."""
    folder = Path(data_dir) / FOLDER
    print(f"the scenes are not in {folder}; downloading them from {REPOSITORY}")
    failures = []
    for url in ARCHIVE_URLS:
        print(f"downloading {url}")
        try:
            install_archive(url, folder)
            return
        except Exception as error:  # offline: URLError, timeouts, a damaged archive, ...
            failures.append(f"{url}: {describe_error(error)}")
    raise UserError(
        f"the scenes are not in {folder} (expected {layout_text(folder)}) and downloading them "
        f"failed ({'; '.join(failures)}). Run `make data-scenes` on a machine that is online, "
        f"or clone {REPOSITORY} and move its train/ and val/ folders into {folder}, or point "
        "--data-dir (or DATA_DIR; with make, SCENES_DIR) at a folder that holds train/ and "
        "val/.")


def install_archive(url, folder):
    """Download and unpack `url` in a scratch folder beside `folder`, then move the archive's
    train/ and val/ into `folder` once both are complete: nothing half-written is left."""
    created = not folder.parent.exists()
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        unpack_into(url, folder)
    except BaseException:
        if created:   # a failed download leaves no empty data folder behind
            with contextlib.suppress(OSError):
                folder.parent.rmdir()
        raise


def unpack_into(url, folder):
    """install_archive's work, once `folder`'s parent exists."""
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        scratch = Path(scratch)
        download_and_extract_archive(url, scratch / "archive", scratch / "extracted",
                                     filename="scenes.zip", remove_finished=True)
        # The archive holds one folder, named after the repository and the commit or branch.
        roots = [path.parent for path in (scratch / "extracted").glob("*/train")]
        if len(roots) != 1 or not (roots[0] / "val").is_dir():
            raise RuntimeError("the archive does not hold one folder with train/ and val/")
        staged = scratch / FOLDER
        staged.mkdir()
        for split in SPLITS:
            shutil.move(roots[0] / split, staged / split)
        os.replace(staged, folder)


def main(argv=None):
    """`make data-scenes`: download the scene split if it is missing, then check what is there."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", default=cli.default_data_dir())
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sets = dict(zip(SPLITS, load_scenes(args.data_dir)))
    seconds = time.perf_counter() - start
    print(f"scenes in {scenes_folder(args.data_dir)}, 64x64 RGB, read in {seconds:.1f} s:")
    print(f"  {'class':<10} {'train':>7} {'val':>7}")
    counts = {split: torch.bincount(image_set.labels, minlength=len(CLASSES)).tolist()
              for split, image_set in sets.items()}
    for label, name in enumerate(CLASSES):
        print(f"  {name:<10} {counts['train'][label]:>7,} {counts['val'][label]:>7,}")
    print(f"  {'total':<10} {len(sets['train']):>7,} {len(sets['val']):>7,}")
    public = all(len(sets[split]) == PUBLIC_COUNTS[split] for split in SPLITS)
    print("counts: " + ("those of the public split" if public else
                        f"not the public split's ({PUBLIC_COUNTS['train']:,} train, "
                        f"{PUBLIC_COUNTS['val']:,} val): a subset or another copy"))


if __name__ == "__main__":
    sys.exit(cli.run(main))
