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
