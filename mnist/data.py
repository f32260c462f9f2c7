"""MNIST from <data-dir>/MNIST/raw, torchvision's layout: the four IDX files, plain or .gz.

A folder that is not the official download (fewer images, re-packed files) loads as it is, as
long as the files are valid IDX files of 28x28 images and labels 0-9. When the files are
missing, torchvision downloads them; offline, the error says where to put them.
"""
import argparse
import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.errors import UserError, describe_error  # noqa: E402
from common.data import ImageSet, download_with_torchvision  # noqa: E402

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = [str(digit) for digit in range(10)]
FULL_SIZES = {"train": 60_000, "test": 10_000}   # the official download's images
MEAN, STD = (0.1307,), (0.3081,)


def load_mnist(data_dir, pad_to=None):
    """(train, test) ImageSets; `pad_to=32` zero-pads the 28x28 digits as LeNet-5 did."""
    raw = Path(data_dir) / "MNIST" / "raw"
    if missing_files(raw):
        download(data_dir)
    sets = []
    for split in ("train", "test"):
        image_name, label_name = FILES[split]
        images = read_idx(find(raw, image_name), ndim=3)
        labels = read_idx(find(raw, label_name), ndim=1)
        if images.shape[1:] != (28, 28):
            raise UserError(f"{find(raw, image_name)} holds {images.shape[1]}x{images.shape[2]} "
                            "images; MNIST digits are 28x28.")
        if len(images) != len(labels):
            raise UserError(f"{raw}: {len(images)} {split} images but {len(labels)} labels.")
        if len(labels) and labels.max() > 9:
            raise UserError(f"{find(raw, label_name)} holds label {labels.max()}; MNIST labels "
                            "are 0-9.")
        images = torch.from_numpy(images.copy()).unsqueeze(1)
        if pad_to:
            margin = (pad_to - 28) // 2
            images = F.pad(images, (margin, margin, margin, margin))
        sets.append(ImageSet(images, torch.from_numpy(labels.astype(np.int64)), CLASSES))
    return sets


def all_names():
    return [name for pair in FILES.values() for name in pair]


def find(raw, name):
    plain = raw / name
    return plain if plain.exists() else raw / f"{name}.gz"


def missing_files(raw):
    return [name for name in all_names() if not find(raw, name).exists()]


def read_idx(path, ndim):
    """An IDX file of unsigned bytes (the MNIST format) as a numpy array."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise UserError(f"cannot read {path}: {describe_error(error)}") from None
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise UserError(f"{path} is not an IDX file of {ndim}-dimensional unsigned bytes "
                        "(wrong header); replace it with the MNIST original.")
    shape = tuple(int(size) for size in np.frombuffer(data[4:header], dtype=">u4"))
    if len(data) - header != int(np.prod(shape)):
        raise UserError(f"{path} is truncated or padded: its header announces {shape} "
                        f"({int(np.prod(shape))} bytes) but it holds {len(data) - header}.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def download(data_dir):
    """Fetch MNIST with torchvision and move the missing files into <data-dir>/MNIST/raw."""
    raw = Path(data_dir) / "MNIST" / "raw"
    missing = missing_files(raw)
    print(f"MNIST is not complete in {raw}; downloading it with torchvision")

    def install(scratch):
        raw.mkdir(parents=True, exist_ok=True)
        for name in missing:
            shutil.move(scratch / "MNIST" / "raw" / name, raw / name)

    download_with_torchvision(torchvision.datasets.MNIST, data_dir, install, lambda reason: (
        f"MNIST is not in {raw} (expected {', '.join(all_names())}, plain or .gz) and "
        f"downloading it failed ({reason}). Copy those four files there, run `make data-mnist` "
        f"on a machine that is online, or point --data-dir (or DATA_DIR) at a folder that holds "
        f"MNIST/raw/."))


def main(argv=None):
    """`make data-mnist`: download MNIST if it is missing, then check what is there."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", default=cli.default_data_dir())
    args = parser.parse_args(argv)
    train_set, test_set = load_mnist(args.data_dir)
    print(f"MNIST in {Path(args.data_dir) / 'MNIST' / 'raw'}: {len(train_set):,} train and "
          f"{len(test_set):,} test images")


if __name__ == "__main__":
    sys.exit(cli.run(main))
