"""Fixtures: tiny synthetic data in the real on-disk formats, the real data of $DATA_DIR, and an
offline network."""
import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_idx(path, array):
    """Write a uint8 array as an IDX file (the MNIST format); gzip it if the name ends .gz."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    Path(path).write_bytes(data)


def learnable_digits(count, seed):
    """28x28 'digits' a small network separates: class k lights up row band k."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 28, 28)).astype(np.uint8)
    for index, label in enumerate(labels):
        images[index, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A data dir holding a small synthetic MNIST (600 train, 200 test) in MNIST/raw."""
    root = tmp_path_factory.mktemp("data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count, seed in (("train", 600, 0), ("t10k", 200, 1)):
        images, labels = learnable_digits(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)   # .gz must load too
    return root


def learnable_cifar(count, seed):
    """32x32 RGB images whose class k is a bright square at one of ten places, on noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 80, size=(count, 3, 32, 32)).astype(np.uint8)
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[index, :, 4 + 14 * row: 12 + 14 * row, 1 + 6 * col: 7 + 6 * col] = 255
    return images, labels


def write_cifar_batch(path, images, labels, protocol=4, byte_keys=False):
    """A batch as CIFAR-10's python archive stores it (Python 2 pickles have byte keys)."""
    batch = {"batch_label": "synthetic", "labels": [int(label) for label in labels],
             "data": images.reshape(len(images), -1),
             "filenames": [f"{index}.png" for index in range(len(images))]}
    if byte_keys:
        batch = {key.encode(): value for key, value in batch.items()}
    Path(path).write_bytes(pickle.dumps(batch, protocol=protocol))


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    """A data dir holding a small synthetic CIFAR-10 (5 x 40 train, 100 test images)."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for index in range(1, 6):
        images, labels = learnable_cifar(40, index)
        write_cifar_batch(folder / f"data_batch_{index}", images, labels,
                          protocol=2, byte_keys=index == 1)   # one in the official style
    write_cifar_batch(folder / "test_batch", *learnable_cifar(100, 0))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["x"] * 10}))
    return root


@pytest.fixture(scope="session")
def real_data_dir():
    """$DATA_DIR with the real data (../shared/data). Missing: skipped, or a failure when
    REQUIRE_DATA=1 (CI sets it, so the real-data tests never skip there)."""
    path = Path(os.environ.get("DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "MNIST" / "raw").is_dir():
        message = f"real data not found in {path} (set DATA_DIR)"
        if os.environ.get("REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test touches the network or the user's torch hub cache: downloads fail at once."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


def memorised_map(model, images, targets, steps):
    """Train a detector full-batch with Adam (lr 1e-3) on `images` for `steps` steps, then its
    VOC07 mAP on those same images (their targets, none difficult)."""
    import torch
    from common.voc_eval import voc_eval
    from voc2007.data import pad_targets
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    boxes, labels = pad_targets(targets)
    for _ in range(steps):
        loss = sum(model.loss(images, boxes, labels).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        detections = model(images)
    truths = [{**target, "difficult": torch.zeros(len(target["labels"]), dtype=torch.bool)}
              for target in targets]
    return voc_eval(detections, truths, model.num_classes)


def run_script(script, *args, env=None, timeout=300):
    """Run a project script as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)
