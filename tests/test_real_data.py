"""The real data of $DATA_DIR (../shared/data): it loads, and LeNet learns it."""
import json

import torch

from common import cli
from mnist import train
from mnist.data import load_mnist


def test_real_mnist_loads_complete(real_data_dir):
    train_set, test_set = load_mnist(real_data_dir)
    assert train_set.images.shape == (60_000, 1, 28, 28)
    assert test_set.images.shape == (10_000, 1, 28, 28)
    counts = torch.bincount(train_set.labels, minlength=10)
    assert counts.min() > 5_000 and counts.sum() == 60_000
    assert 30 < train_set.images.float().mean() < 40   # MNIST's mean 0.1307 * 255 = 33.3


def test_one_lenet_epoch_on_real_mnist_reaches_98_percent(real_data_dir, tmp_path):
    out = tmp_path / "lenet"
    assert cli.run(train.main, ["--model", "lenet", "--epochs", "1", "--device", "cpu",
                                "--data-dir", str(real_data_dir), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"]["test_accuracy"] >= 0.98


def test_real_cifar_subset_loads_as_it_is(real_data_dir):
    from cifar10.data import load_cifar10, unofficial_files
    folder = real_data_dir / "cifar10-jpeg-subset"
    train_set, test_set = load_cifar10(folder)
    assert train_set.images.shape == (10_000, 3, 32, 32) and len(test_set) == 2_000
    assert torch.bincount(train_set.labels, minlength=10).tolist() == [1_000] * 10
    assert len(unofficial_files(folder / "cifar-10-batches-py")) == 6   # a re-encoded subset


def test_lenet_learns_the_real_cifar_subset(real_data_dir, tmp_path):
    from cifar10 import train as cifar_train
    out = tmp_path / "lenet"
    assert cli.run(cifar_train.main, [
        "--model", "lenet", "--epochs", "2", "--device", "cpu", "--out", str(out),
        "--data-dir", str(real_data_dir / "cifar10-jpeg-subset")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"]["test_accuracy"] > 0.30   # chance is 0.10; measured 0.38
