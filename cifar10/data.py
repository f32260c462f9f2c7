"""CIFAR-10 from <data-dir>/cifar-10-batches-py, torchvision's layout: the pickled batches
data_batch_1..5 and test_batch, and batches.meta.

A folder that is not the official download (a subset, a re-packed copy) loads as it is, as
long as every batch holds N x 3072 uint8 images and N labels 0-9; its checksums are only
reported. When the folder is missing, torchvision downloads and checksums the official
archive; offline, the error says where to put it. The batches are unpickled with a whitelist
of numpy classes, so a batch file cannot run code.
"""
import argparse
import hashlib
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli  # noqa: E402
from common.errors import UserError, describe_error  # noqa: E402
from common.data import ImageSet, download_with_torchvision  # noqa: E402

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{index}" for index in range(1, 6)]
TEST_FILES = ["test_batch"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
FULL_SIZES = {"train": 50_000, "test": 10_000}   # the official download's images
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
# torchvision's md5 of each official file, e.g. {"data_batch_1": "c99cafc1..."}
OFFICIAL_MD5 = dict(torchvision.datasets.CIFAR10.train_list
                    + torchvision.datasets.CIFAR10.test_list)


class BatchUnpickler(pickle.Unpickler):
    """Unpickle a CIFAR batch: dicts, lists, strings and numpy arrays, nothing else."""
    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "scalar"),
               ("_codecs", "encode")}   # how Python 3 protocol-2 pickles store bytes

    def find_class(self, module, name):
        module = module.replace("numpy.core", "numpy._core")   # numpy 1 pickles, as the official
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_batch(path):
    """(images uint8 N x 3 x 32 x 32, labels int64 N) of one pickled batch."""
    try:
        with open(path, "rb") as handle:
            batch = BatchUnpickler(handle, encoding="latin1").load()
    except Exception as error:  # damaged pickles raise many types
        raise UserError(f"cannot read {path}: {describe_error(error)}. Replace it with the "
                        "file of the official CIFAR-10 python archive.") from None
    if not isinstance(batch, dict):
        raise UserError(f"{path} holds a {type(batch).__name__}, not a CIFAR batch dict.")
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise UserError(f"{path}: 'data' must be uint8 N x 3072 (32x32 RGB), found "
                        f"{getattr(data, 'dtype', type(data).__name__)} {shape}.")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(data),) or (len(labels) and not 0 <= labels.min() <= labels.max() <= 9):
        raise UserError(f"{path}: expected {len(data)} labels in 0-9, found {labels.shape[0]} "
                        f"with values {labels.min() if len(labels) else '-'}.."
                        f"{labels.max() if len(labels) else '-'}.")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def load_cifar10(data_dir):
    """(train, test) ImageSets of the five training batches and the test batch."""
    folder = Path(data_dir) / FOLDER
    if missing_files(folder):
        download(data_dir)
    sets = []
    for names in (TRAIN_FILES, TEST_FILES):
        batches = [read_batch(folder / name) for name in names]
        sets.append(ImageSet(torch.cat([images for images, _ in batches]),
                             torch.cat([labels for _, labels in batches]), CLASSES))
    return sets


def missing_files(folder):
    return [name for name in TRAIN_FILES + TEST_FILES if not (folder / name).is_file()]


def unofficial_files(folder):
    """The batch files whose md5 is not the official one (a subset or a re-packed copy)."""
    def md5(path):
        return hashlib.md5(path.read_bytes()).hexdigest()
    return [name for name in TRAIN_FILES + TEST_FILES if md5(folder / name) != OFFICIAL_MD5[name]]


def download(data_dir):
    """Fetch the official archive with torchvision (which checks its md5 and every file's)
    and move its cifar-10-batches-py folder into <data-dir>."""
    folder = Path(data_dir) / FOLDER
    if folder.exists():
        raise UserError(f"{folder} lacks {', '.join(missing_files(folder))}. Complete it, or "
                        "move it away to download the official copy.")
    print(f"CIFAR-10 is not in {folder}; downloading it with torchvision")
    download_with_torchvision(
        torchvision.datasets.CIFAR10, data_dir,
        lambda scratch: shutil.move(scratch / FOLDER, folder),
        lambda reason: (
            f"CIFAR-10 is not in {folder} (expected {', '.join(TRAIN_FILES + TEST_FILES)} and "
            f"batches.meta) and downloading it failed ({reason}). Unpack the official "
            f"cifar-10-python.tar.gz there, run `make data-cifar10` on a machine that is online, "
            f"or point --data-dir (or DATA_DIR; with make, CIFAR10_DIR) at the folder that "
            f"holds {FOLDER}/."))


def main(argv=None):
    """`make data-cifar10`: download CIFAR-10 if it is missing, then check what is there."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", default=cli.default_data_dir())
    args = parser.parse_args(argv)
    train_set, test_set = load_cifar10(args.data_dir)
    folder = Path(args.data_dir) / FOLDER
    counts = torch.bincount(train_set.labels, minlength=10).tolist()
    print(f"CIFAR-10 in {folder}: {len(train_set):,} train images ({min(counts):,} to "
          f"{max(counts):,} per class) and {len(test_set):,} test images")
    unofficial = unofficial_files(folder)
    print("checksums: " + (f"not the official download ({', '.join(unofficial)} differ)"
                           if unofficial else "the official download"))


if __name__ == "__main__":
    sys.exit(cli.run(main))
