"""Scenes (report 002): the networks' parameter counts and outputs, and the PNG folders in both
layouts, damaged, incomplete, missing offline, and the real subset."""
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from common import cli
from common.errors import UserError
from conftest import run_script
from scenes import data as scenes_data
from scenes.data import ARCHIVE_URLS, CLASSES, MEAN, REPOSITORY, STD, load_scenes
from scenes.models import MODELS

PARAMETERS = {
    "lenet": 338_146,             # LeNet-5 for 64x64: 456 + 2,416 + 324,600 + 10,164 + 510
    "custom_lenet": 23_122_822,   # report 002, CustomLeNet table
    "alexnet": 55_128_454,        # report 002, AlexNet table
    "resnet18": 11_179_590,       # torchvision: 11,689,512 - 513,000 (ImageNet head) + 3,078
    "resnet50": 23_520_326,       # 25,557,032 - 2,049,000 + 12,294
    "resnet101": 42_512_454,      # 44,549,160 - 2,049,000 + 12,294
    "resnet152": 58_156_102,      # 60,192,808 - 2,049,000 + 12,294
}


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_every_model_is_counted():
    assert set(PARAMETERS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_counts_and_six_logits(name):
    model = MODELS[name]().eval()
    assert count(model) == PARAMETERS[name]
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 6)


def test_alexnet_returns_the_logits_of_fc2():
    """The report's code ends in a dropout: here the output is fc2's, even in training mode."""
    model = MODELS["alexnet"]().train()
    calls = []
    for module in model.modules():
        if not any(module.children()):
            module.register_forward_hook(lambda module, _, output: calls.append((module, output)))
    output = model(torch.randn(2, 3, 64, 64))
    last_module, last_output = calls[-1]
    assert last_module is model.fc2 and torch.equal(output, last_output)
    assert (output < 0).any()   # no softmax either


def test_custom_lenet_has_no_activation_between_convolutions():
    """As the report prints it: conv2, conv3 and fc1 see the negative values of the layer
    before; only fc1's output goes through a ReLU."""
    torch.manual_seed(0)
    model = MODELS["custom_lenet"]().eval()
    inputs = {}
    for name in ("conv2", "conv3", "fc1"):
        getattr(model, name).register_forward_pre_hook(
            lambda module, args, name=name: inputs.setdefault(name, args[0]))
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    assert all((inputs[name] < 0).any() for name in ("conv2", "conv3", "fc1"))
    activations = [module for module in model.modules()
                   if type(module).__module__ == nn.ReLU.__module__]   # nn's activations
    assert activations == [model.relu]


# --- data -------------------------------------------------------------------------------------

def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def scene_image(label, index):
    """A 64x64 RGB image whose channels say its class and its index: (40 * label, index, 7)."""
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 40 * label, index, 7
    return image


def write_scenes(folder, counts=(("train", 2), ("val", 1))):
    """The scene layout in `folder`: <split>/<class>/<index>.png for every class."""
    for split, per_class in counts:
        for label, name in enumerate(CLASSES):
            for index in range(per_class):
                write_png(folder / split / name / f"{index}.png", scene_image(label, index))
    return folder


@pytest.mark.parametrize("inside", ["scenes", ""])
def test_both_layouts_load_with_the_report_class_order(tmp_path, inside):
    write_scenes(tmp_path / inside)
    train_set, val_set = load_scenes(tmp_path)
    assert train_set.classes == ["buildings", "forests", "glacier", "mountains", "sea", "street"]
    assert train_set.images.shape == (12, 3, 64, 64) and train_set.images.dtype == torch.uint8
    assert train_set.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert val_set.labels.tolist() == [0, 1, 2, 3, 4, 5]
    # every image sits with its own label, channels first
    assert train_set.images[:, 0, 5, 5].tolist() == [40 * label for label in train_set.labels]
    assert train_set.images[:, 1, 5, 5].tolist() == [0, 1] * 6
    assert (train_set.images[:, 2] == 7).all()


def test_grey_and_palette_pngs_become_rgb(tmp_path):
    write_scenes(tmp_path)
    write_png(tmp_path / "train" / "sea" / "0.png", np.full((64, 64), 90, np.uint8))
    Image.fromarray(scene_image(4, 1)).quantize(colors=2).save(tmp_path / "train" / "sea" / "1.png")
    train_set, _ = load_scenes(tmp_path)
    sea = train_set.images[train_set.labels == 4]
    assert (sea[0] == 90).all()
    assert sea[1, :, 0, 0].tolist() == [160, 1, 7]   # the palette holds the one colour exactly


def damage_unreadable(folder):
    path = folder / "train" / "glacier" / "0.png"
    path.write_bytes(b"not a png at all")
    return path


def damage_truncated(folder):
    path = folder / "val" / "sea" / "0.png"
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    write_png(path, image)   # noise: the compressed data fills most of the file
    path.write_bytes(path.read_bytes()[:2000])
    return path


def damage_size(folder):
    path = folder / "train" / "street" / "1.png"
    write_png(path, np.zeros((150, 150, 3), np.uint8))   # the original Intel size
    return path


def damage_mode(folder):
    path = folder / "train" / "forests" / "0.png"
    write_png(path, np.zeros((64, 64), np.uint16))
    return path


def damage_empty_class(folder):
    path = folder / "val" / "mountains"
    for file in path.iterdir():
        file.unlink()
    return path


def damage_missing_class(folder):
    path = folder / "train" / "buildings"
    for file in path.iterdir():
        file.unlink()
    path.rmdir()
    return path


def damage_unexpected_class(folder):
    path = folder / "train" / "forest"
    write_png(path / "0.png", scene_image(1, 0))
    return path


def damage_missing_val(folder):
    path = folder / "val"
    for class_folder in path.iterdir():
        for file in class_folder.iterdir():
            file.unlink()
        class_folder.rmdir()
    path.rmdir()
    return path


def damage_other_file(folder):
    path = folder / "train" / "sea" / "2.jpg"
    Image.fromarray(scene_image(4, 2)).save(path)
    return path.parent


@pytest.mark.parametrize("damage, message", [
    (damage_unreadable, "cannot read"),
    (damage_truncated, "cannot read"),
    (damage_size, "is 150x150; the scene images are 64x64"),
    (damage_mode, "is a I;16 image"),
    (damage_empty_class, "holds no PNG images"),
    (damage_missing_class, "is missing"),
    (damage_unexpected_class, "unexpected class folders in"),
    (damage_missing_val, "is missing"),
    (damage_other_file, r"not PNG images \(2.jpg\)"),
])
def test_damaged_folders_are_errors_naming_the_path(tmp_path, damage, message):
    path = damage(write_scenes(tmp_path / "scenes"))
    with pytest.raises(UserError, match=message) as error:
        load_scenes(tmp_path)
    assert str(path) in str(error.value)


def test_hidden_folders_are_ignored(tmp_path):
    write_scenes(tmp_path)
    write_png(tmp_path / "train" / ".ipynb_checkpoints" / "0.png", scene_image(0, 0))
    (tmp_path / "val" / "sea" / ".DS_Store").write_bytes(b"\0")
    train_set, val_set = load_scenes(tmp_path)
    assert (len(train_set), len(val_set)) == (12, 6)


def test_missing_scenes_offline_is_exit_2_and_leaves_nothing(tmp_path):
    data_dir = tmp_path / "data"
    result = run_script("scenes/data.py", "--data-dir", data_dir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "make data-scenes" in result.stderr and REPOSITORY in result.stderr
    assert f"{data_dir / 'scenes'}/{{train,val}}/<class>/*.png" in result.stderr
    assert not data_dir.exists()   # not even the empty folder the download made


def fake_archive(reachable=ARCHIVE_URLS, train=True):
    """Stands in for torchvision's download_and_extract_archive: unpacks a small copy of the
    repository the way GitHub's archive holds it, in one folder named after the branch."""
    def extract(url, download_root, extract_root, filename, remove_finished):
        assert url in ARCHIVE_URLS
        if url not in reachable:
            raise URLError("no route to host")
        root = extract_root / "Scene-Classification-Dataset-Split-main"
        write_scenes(root, counts=(("train", 2), ("val", 1)) if train else (("val", 1),))
        (root / "README.md").write_text("# Scene-Classification-Dataset-Split")
    return extract


@pytest.mark.parametrize("reachable", [ARCHIVE_URLS[:1], ARCHIVE_URLS[1:]])
def test_download_moves_train_and_val_into_scenes(tmp_path, monkeypatch, reachable):
    monkeypatch.setattr(scenes_data, "download_and_extract_archive", fake_archive(reachable))
    train_set, val_set = load_scenes(tmp_path)
    assert (len(train_set), len(val_set)) == (12, 6)
    assert [path.name for path in tmp_path.iterdir()] == ["scenes"]
    assert sorted(path.name for path in (tmp_path / "scenes").iterdir()) == ["train", "val"]


def test_an_archive_without_train_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(scenes_data, "download_and_extract_archive", fake_archive(train=False))
    with pytest.raises(UserError, match="does not hold one folder with train/ and val/"):
        load_scenes(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_main_prints_the_counts_per_class_and_split(tmp_path, capsys):
    write_scenes(tmp_path / "scenes", counts=(("train", 3), ("val", 2)))
    assert cli.run(scenes_data.main, ["--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  glacier          3       2" in lines
    assert "  total           18      12" in lines
    assert lines[-1].startswith("counts: not the public split's (13,627 train, 3,407 val)")


def test_real_subset_loads(real_data_dir):
    train_set, val_set = load_scenes(real_data_dir / "scenes-subset")
    assert train_set.images.shape == (1200, 3, 64, 64) and val_set.images.shape == (600, 3, 64, 64)
    assert torch.bincount(train_set.labels).tolist() == [200] * 6
    assert torch.bincount(val_set.labels).tolist() == [100] * 6
    # MEAN and STD are this split's statistics, as their comment says
    pixels = train_set.images.double() / 255
    assert pixels.mean(dim=(0, 2, 3)).tolist() == pytest.approx(MEAN, abs=1e-4)
    assert pixels.std(dim=(0, 2, 3)).tolist() == pytest.approx(STD, abs=1e-4)
