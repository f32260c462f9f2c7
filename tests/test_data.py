"""MNIST files and the on-device loader."""
import numpy as np
import pytest
import torch

from common.errors import UserError
from common.data import (DeviceLoader, ImageSet, ToNetworkInput, photometric_jitter,
                         random_crop, random_flip)
from conftest import write_idx
from mnist.data import load_mnist, read_idx


def test_synthetic_mnist_loads_plain_and_gz(mnist_dir):
    train, test = load_mnist(mnist_dir)
    assert train.images.shape == (600, 1, 28, 28) and train.images.dtype == torch.uint8
    gz_labels = read_idx(mnist_dir / "MNIST/raw/t10k-labels-idx1-ubyte.gz", 1)
    assert test.labels.tolist() == gz_labels.tolist()
    assert sorted(set(train.labels.tolist())) == list(range(10))


def test_padding_to_32_keeps_the_digit_centred(mnist_dir):
    plain, _ = load_mnist(mnist_dir)
    padded, _ = load_mnist(mnist_dir, pad_to=32)
    assert padded.images.shape[-2:] == (32, 32)
    assert torch.equal(padded.images[:, :, 2:30, 2:30], plain.images)
    assert padded.images[:, :, :2].sum() == 0


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:-5], "truncated"),
    (lambda data: b"\x00\x00\x09" + data[3:], "not an IDX file"),
])
def test_damaged_idx_file_is_a_clear_error(tmp_path, damage, message):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((3, 28, 28), dtype=np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError, match=message):
        read_idx(path, 3)


def test_wrong_image_size_and_labels_are_rejected(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((4, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.array([0, 1, 2, 12], dtype=np.uint8))
    with pytest.raises(UserError, match="label 12"):
        load_mnist(tmp_path)
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((4, 27, 28), dtype=np.uint8))
    with pytest.raises(UserError, match="27x28"):
        load_mnist(tmp_path)


def image_set(count=50, channels=1, size=8):
    images = torch.arange(count * channels * size * size, dtype=torch.int64) % 251
    images = images.to(torch.uint8).view(count, channels, size, size)
    return ImageSet(images, torch.arange(count) % 10, [str(k) for k in range(10)])


def loader(data, **options):
    defaults = dict(batch_size=8, device=torch.device("cpu"))
    return DeviceLoader(data, **{**defaults, **options})


def test_evaluation_loader_keeps_order_and_the_network_input_normalises():
    data = image_set()
    batches = list(loader(data))
    assert len(batches) == 7 and sum(len(labels) for _, labels in batches) == 50
    images = torch.cat([images for images, _ in batches])
    assert torch.equal(images, data.images)
    assert torch.equal(torch.cat([labels for _, labels in batches]), data.labels)
    to_input = ToNetworkInput((0.5,), (0.25,), device=torch.device("cpu"), resize=16)
    network_input = to_input(images)
    assert network_input.shape == (50, 1, 16, 16)
    expected = (data.images.float() / 255 - 0.5) / 0.25
    assert torch.allclose(network_input[:, :, ::2, ::2].mean(), expected.mean(), atol=0.05)
    assert torch.allclose(ToNetworkInput((0.5,), (0.25,), device=torch.device("cpu"))(images),
                          expected, atol=1e-6)


def test_training_loader_shuffles_by_seed_and_epoch():
    data = image_set()
    train = loader(data, train=True, seed=3)

    def order(epoch):
        train.set_epoch(epoch)
        return torch.cat([labels for _, labels in train]).tolist(), \
            torch.cat([images for images, _ in train])

    first, first_images = order(1)
    again, again_images = order(1)
    second, _ = order(2)
    assert first == again and torch.equal(first_images, again_images)
    assert first != second
    assert sorted(first) == sorted(data.labels.tolist())   # every image once


def test_shards_are_disjoint_equal_and_cover_the_epoch():
    data = ImageSet(torch.zeros(51, 1, 4, 4, dtype=torch.uint8), torch.arange(51),
                    [str(k) for k in range(51)])   # one class per image, to track them
    shards = []
    for rank in range(2):
        shard = loader(data, train=True, batch_size=10, rank=rank, world_size=2, seed=1)
        shard.set_epoch(4)
        shards.append(torch.cat([labels for _, labels in shard]).tolist())
    assert len(shards[0]) == len(shards[1]) == 25
    assert not set(shards[0]) & set(shards[1])


def test_a_last_training_batch_of_one_image_is_left_out():
    data = image_set(count=65)
    train = loader(data, train=True, batch_size=64)
    assert len(train) == 1 and [len(labels) for _, labels in train] == [64]
    assert [len(labels) for _, labels in loader(data, batch_size=64)] == [64, 1]   # evaluation


def test_ranks_draw_different_augmentations_of_their_shards():
    pattern = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8)
    data = ImageSet(pattern.repeat(64, 1, 1, 1), torch.arange(64) % 10,
                    [str(k) for k in range(10)])   # 64 copies of one image
    augmented = []
    for rank in range(2):
        shard = loader(data, train=True, batch_size=64, rank=rank, world_size=2, seed=1,
                       crop_padding=2, flip=True)
        shard.set_epoch(1)
        augmented.append(next(iter(shard))[0])
    # one generator for both ranks would give both shards the same 32 crops and flips
    assert not torch.equal(augmented[0], augmented[1])


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    images = torch.randint(0, 256, (16, 3, 6, 6), dtype=torch.uint8)
    cropped = random_crop(images, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for index in range(16):
        windows = [padded[index, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(cropped[index], window) for window in windows)
    assert not torch.equal(cropped, images)   # some image moved


def test_random_flip_mirrors_about_half():
    images = torch.arange(64 * 4, dtype=torch.float32).view(64, 1, 1, 4)
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    mirrored = (flipped == images.flip(3)).all(dim=(1, 2, 3))
    kept = (flipped == images).all(dim=(1, 2, 3))
    assert (mirrored | kept).all() and 16 < int(mirrored.sum()) < 48


def test_photometric_jitter_changes_colour_within_range():
    images = torch.randint(0, 256, (8, 3, 10, 10)).float()
    jittered = photometric_jitter(images, torch.Generator().manual_seed(0))
    assert jittered.shape == images.shape
    assert jittered.min() >= 0 and jittered.max() <= 255
    assert (jittered - images).abs().mean() > 1


def test_split_and_subset_are_disjoint_and_fixed():
    data = ImageSet(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), torch.arange(100),
                    [str(k) for k in range(100)])   # one class per image, to track them
    rest, held = data.split(20, seed=5)
    assert len(rest) == 80 and len(held) == 20
    assert not set(rest.labels.tolist()) & set(held.labels.tolist())
    assert torch.equal(data.random_subset(10).labels, data.random_subset(10).labels)


def test_image_set_rejects_bad_arrays():
    with pytest.raises(UserError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ["a"])
    with pytest.raises(UserError, match="labels"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 3]), ["a", "b"])
