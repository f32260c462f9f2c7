"""The VOC 2007 pipeline (voc2007/data.py) on sets in VOC's layout from voc2007/synthetic.py:
annotations, box coordinates, difficult flags, errors, downloads offline, both training loaders
and their seeding."""
import shutil
import xml.etree.ElementTree as ET

import pytest
import torch
from PIL import Image

from common import cli
from common.errors import UserError
from conftest import run_script
from voc2007 import data
from voc2007.data import (CLASSES, VOCDataset, VOCDeviceLoader, eval_transform, make_loader,
                          ssd_train_transform, to_voc_boxes, yolo_train_transform)
from voc2007.synthetic import DEFAULT_CLASSES, write_synthetic_voc

TRAIN_TRANSFORMS = {"yolo": yolo_train_transform, "ssd": ssd_train_transform}


@pytest.fixture(scope="module")
def voc_dir(tmp_path_factory):
    """A data dir holding a synthetic VOC2007: 16 trainval and 8 test images, 64-128 px."""
    root = tmp_path_factory.mktemp("voc")
    write_synthetic_voc(root, trainval=16, test=8, seed=0, min_size=64, max_size=128)
    return root


@pytest.fixture
def small_voc(tmp_path):
    """A throw-away data dir (3 trainval and 1 test image) for tests that damage files."""
    write_synthetic_voc(tmp_path, trainval=3, test=1, seed=1, min_size=64, max_size=96)
    return tmp_path


def folder(root):
    return root / "VOCdevkit" / "VOC2007"


def xml_objects(path):
    return ET.parse(path).getroot().findall("object")


def test_generator_writes_voc_layout_deterministically(voc_dir, tmp_path):
    voc = folder(voc_dir)
    lists = {split: (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
             for split in ("trainval", "test", "train", "val")}
    assert len(lists["trainval"]) == 16 and len(lists["test"]) == 8
    assert lists["trainval"][0] == "000001"
    assert sorted(lists["train"] + lists["val"]) == lists["trainval"]
    objects = []
    for image_id in lists["trainval"] + lists["test"]:
        root = ET.parse(voc / "Annotations" / f"{image_id}.xml").getroot()
        width, height = Image.open(voc / "JPEGImages" / f"{image_id}.jpg").size
        assert root.findtext("filename") == f"{image_id}.jpg"
        assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) \
            == (width, height)
        assert 1 <= len(root.findall("object")) <= 4
        for obj in root.findall("object"):
            box = [int(obj.findtext(f"bndbox/{key}")) for key in ("xmin", "ymin", "xmax", "ymax")]
            assert 1 <= box[0] <= box[2] <= width and 1 <= box[1] <= box[3] <= height
            assert obj.findtext("name") in DEFAULT_CLASSES
            objects.append((obj.findtext("difficult"), obj.findtext("truncated")))
    assert ("1", "0") in objects or ("1", "1") in objects       # some difficult
    assert ("0", "1") in objects or ("1", "1") in objects       # some truncated
    assert ("0", "0") in objects

    again = write_synthetic_voc(tmp_path, trainval=16, test=8, seed=0, min_size=64,
                                max_size=128)
    for name in ("Annotations/000005.xml", "JPEGImages/000005.jpg", "ImageSets/Main/val.txt"):
        assert (again / name).read_bytes() == (voc / name).read_bytes()


def test_generator_never_overwrites_a_folder_it_did_not_write(tmp_path):
    (folder(tmp_path) / "JPEGImages").mkdir(parents=True)
    with pytest.raises(UserError, match="not written by voc2007/synthetic.py"):
        write_synthetic_voc(tmp_path, trainval=2, test=1)
    assert list(folder(tmp_path).iterdir()) == [folder(tmp_path) / "JPEGImages"]


@pytest.mark.parametrize("pipeline,size", [("yolo", 448), ("ssd", 300)])
def test_training_samples_fit_the_network_input(voc_dir, pipeline, size):
    dataset = VOCDataset(voc_dir, "trainval", TRAIN_TRANSFORMS[pipeline](size),
                         drop_difficult=True)
    assert dataset.summary()["difficult"] > 0
    boxes_seen = 0
    for epoch in range(2):
        for index in range(len(dataset)):
            image, target = dataset[(0, epoch, index)]
            assert image.dtype == torch.uint8 and image.shape == (3, size, size)
            boxes = target["boxes"]
            assert boxes.dtype == torch.float32 and boxes.shape == (len(target["labels"]), 4)
            assert ((boxes >= 0) & (boxes <= size)).all()
            assert (boxes[:, 2:] > boxes[:, :2]).all()
            assert target["labels"].dtype == torch.int64
            assert ((target["labels"] >= 0) & (target["labels"] < len(DEFAULT_CLASSES))).all()
            assert not target["difficult"].any()      # dropped for training
            assert target["orig_size"] == dataset.annotations[index].size
            boxes_seen += len(boxes)
    assert boxes_seen > 0


def test_difficult_flags_stay_with_their_boxes(voc_dir, tmp_path):
    """Object k of each image is renamed class k and flagged difficult when k is odd, so each
    label names its object: after crops and flips that drop some boxes, the flags must still
    equal label % 2. Flags not filtered with the boxes, or shifted, break the equality."""
    shutil.copytree(voc_dir / "VOCdevkit", tmp_path / "VOCdevkit")
    for path in (folder(tmp_path) / "Annotations").glob("*.xml"):
        tree = ET.parse(path)
        for number, obj in enumerate(tree.getroot().findall("object")):
            obj.find("name").text = CLASSES[number]
            obj.find("difficult").text = str(number % 2)
        tree.write(path)
    dropped = 0
    for pipeline, transform in TRAIN_TRANSFORMS.items():
        dataset = VOCDataset(tmp_path, "trainval", transform(128))
        for epoch in range(4):
            for index in range(len(dataset)):
                _, target = dataset[(0, epoch, index)]
                assert torch.equal(target["difficult"], target["labels"] % 2 == 1), pipeline
                dropped += target["dropped_boxes"]
    assert dropped > 0   # crops did remove boxes, so the filtering was exercised
    training = VOCDataset(tmp_path, "trainval", ssd_train_transform(128), drop_difficult=True)
    for index in range(len(training)):
        assert (training[(0, 0, index)][1]["labels"] % 2 == 0).all()


def write_annotation(path, size, objects):
    """A VOC XML of `size` (width, height) with (name, difficult, xmin, ymin, xmax, ymax)s."""
    body = "".join(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>"
                   f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
                   f"</bndbox></object>" for name, difficult, x0, y0, x1, y1 in objects)
    path.write_text(f"<annotation><filename>{path.stem}.jpg</filename><size><width>{size[0]}"
                    f"</width><height>{size[1]}</height><depth>3</depth></size>{body}"
                    f"</annotation>")


def test_boxes_become_continuous_and_degenerate_ones_are_counted(tmp_path):
    """VOC's 1-based inclusive box (11, 21, 60, 80) covers pixels 10..59 and 20..79: [10, 20,
    60, 80] in the samples; a box of one pixel column is kept, one wholly outside the image is
    left out and counted; the evaluation's ground truth keeps the XML's numbers."""
    write_synthetic_voc(tmp_path, trainval=1, test=0, min_size=100, max_size=100)
    write_annotation(folder(tmp_path) / "Annotations" / "000001.xml", (100, 100),
                     [("dog", 0, 11, 21, 60, 80), ("bird", 0, 30, 30, 30, 50),
                      ("cat", 1, 120, 30, 130, 50)])
    messages = []
    dataset = VOCDataset(tmp_path, "trainval", eval_transform(50), log=messages.append)
    assert dataset.summary()["degenerate"] == 1 and dataset.summary()["difficult"] == 1
    assert len(messages) == 1 and "1 annotated box(es) wholly outside" in messages[0]
    image, target = dataset[0]
    assert image.shape == (3, 50, 50)
    # the 100x100 image halves
    assert torch.equal(target["boxes"], torch.tensor([[5.0, 10, 30, 40], [14.5, 14.5, 15, 25]]))
    assert target["labels"].tolist() == [CLASSES.index("dog"), CLASSES.index("bird")]
    assert target["difficult"].tolist() == [False, False]
    assert target["dropped_boxes"] == 0 and target["image_id"] == "000001"
    truth = dataset.ground_truth(0)
    assert torch.equal(truth["boxes"], torch.tensor([[11.0, 21, 60, 80], [30, 30, 30, 50],
                                                     [120, 30, 130, 50]]))
    assert truth["labels"].tolist() == [11, 2, 7]
    assert truth["difficult"].tolist() == [False, False, True]
    # a detection in the samples' coordinates, scaled back, is evaluated in the XML's numbers
    assert torch.equal(to_voc_boxes(target["boxes"][:1] * 2), truth["boxes"][:1])
    assert to_voc_boxes(torch.tensor([[3.5, 2.0, 3.5, 2.5]])).tolist() == [[3.5, 2.5, 3.5, 2.5]]


@pytest.mark.parametrize("objects,expected", [
    ([("unicorn", 0, 1, 1, 9, 9)], "'unicorn', not one of the 20 VOC classes"),
    ([("dog", 0, 20, 1, 9, 9)], "xmin > xmax"),
    ([("dog", 0, 1, 1, "inf", 9)], "coordinate that is not a finite number: <xmax>inf</xmax>"),
    ([("dog", 0, "nan", 1, 9, 9)], "coordinate that is not a finite number: <xmin>nan</xmin>"),
])
def test_invalid_annotations_name_their_file(small_voc, objects, expected):
    path = folder(small_voc) / "Annotations" / "000002.xml"
    write_annotation(path, (64, 64), objects)
    with pytest.raises(UserError, match=expected) as error:
        VOCDataset(small_voc, "trainval")
    assert str(path) in str(error.value)


@pytest.mark.parametrize("split", ["trainval", "test"])
def test_an_empty_split_list_is_refused_naming_the_file(small_voc, split, capsys):
    path = folder(small_voc) / "ImageSets" / "Main" / f"{split}.txt"
    path.write_text("")
    with pytest.raises(UserError) as error:
        VOCDataset(small_voc, split)
    assert str(error.value).startswith(f"{path} lists no images")
    assert "--batch-size" not in str(error.value)
    assert cli.run(data.main, ["--data-dir", str(small_voc)]) == 2
    assert f"{path} lists no images" in capsys.readouterr().err


def test_unparsable_annotation_and_missing_bndbox_name_their_file(small_voc):
    path = folder(small_voc) / "Annotations" / "000003.xml"
    path.write_text("<annotation><size><width>64</width>")
    with pytest.raises(UserError, match="cannot be read") as error:
        VOCDataset(small_voc, "trainval")
    assert str(path) in str(error.value)
    path.write_text("<annotation><size><width>64</width><height>64</height></size>"
                    "<object><name>dog</name></object></annotation>")
    with pytest.raises(UserError, match="lacks a valid <bndbox>") as error:
        VOCDataset(small_voc, "trainval")
    assert str(path) in str(error.value)


def test_missing_image_is_found_when_the_dataset_is_built(small_voc):
    image = folder(small_voc) / "JPEGImages" / "000002.jpg"
    image.unlink()
    with pytest.raises(UserError, match="trainval.txt lists it") as error:
        VOCDataset(small_voc, "trainval")
    assert str(image) in str(error.value)


def test_undecodable_image_is_a_user_error_also_from_a_worker(small_voc):
    image = folder(small_voc) / "JPEGImages" / "000001.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    dataset = VOCDataset(small_voc, "trainval", eval_transform(32))
    with pytest.raises(UserError, match="cannot decode the image") as error:
        dataset[0]
    assert str(image) in str(error.value)
    loader = make_loader(dataset, batch_size=3, train=False, workers=1)
    with pytest.raises(UserError) as error:
        list(loader)
    assert str(error.value).startswith(f"cannot decode the image {image}")
    assert "Traceback" not in str(error.value)


def test_absent_data_offline_names_the_folder_and_leaves_nothing(tmp_path):
    data_dir = tmp_path / "new" / "data"
    with pytest.raises(UserError) as error:
        VOCDataset(data_dir, "trainval")
    message = str(error.value)
    for expected in (str(folder(data_dir)), "make data-voc2007", "VOCtrainval_06-Nov-2007.tar",
                     "VOCtest_06-Nov-2007.tar", "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
                     "ImageSets/Main/trainval.txt"):
        assert expected in message
    assert list(tmp_path.iterdir()) == []   # no data folder, no scratch, no VOCdevkit


def test_half_present_folder_offline_names_what_is_missing(small_voc, capsys):
    (folder(small_voc) / "ImageSets" / "Main" / "test.txt").unlink()
    before = sorted(small_voc.rglob("*"))
    assert cli.run(data.main, ["--data-dir", str(small_voc)]) == 2
    message = capsys.readouterr().err
    assert "ImageSets/Main/test.txt missing" in message and "make data-voc2007" in message
    assert "Traceback" not in message
    assert sorted(small_voc.rglob("*")) == before


def indices(batches):
    return [target["index"] for _, targets in batches for target in targets]


def shard(loader, epoch):
    """The dataset indices of a training loader's steps in `epoch`, in order."""
    loader.set_epoch(epoch)
    return [index for _, _, index in loader.sampler]


def check_training_batch(batch, size, count, max_boxes, device="cpu"):
    images, boxes, labels, dropped = batch
    assert images.shape == (count, 3, size, size) and images.dtype == torch.uint8
    assert boxes.shape == (count, max_boxes, 4) and boxes.dtype == torch.float32
    assert labels.shape == (count, max_boxes) and labels.dtype == torch.int64
    assert dropped.shape == (count,) and dropped.dtype == torch.int64
    padding = labels < 0
    assert (boxes[padding] == 0).all()
    assert torch.equal(padding, padding.cummax(1).values)   # padding after the boxes
    assert all(tensor.device.type == device for tensor in batch)


@pytest.mark.parametrize("on_device", [False, True])
def test_training_loaders_batch_drop_last_and_shard(voc_dir, on_device):
    train_set = VOCDataset(voc_dir, "trainval", yolo_train_transform(64), drop_difficult=True)

    def loader(batch_size, **options):
        if on_device:
            return VOCDeviceLoader(train_set, batch_size=batch_size, device="cpu", **options)
        return make_loader(train_set, batch_size=batch_size, train=True, workers=0, **options)

    assert train_set.max_boxes == max(len(train_set[index][1]["labels"])
                                      for index in range(len(train_set)))
    single = loader(5)
    batches = list(single)
    assert len(single) == len(batches) == 3    # 16 images: 3 batches of 5, one image left out
    for batch in batches:
        check_training_batch(batch, 64, 5, train_set.max_boxes)
    assert len(set(shard(single, 0))) == 16 and len(set(shard(single, 0)[:15])) == 15

    ranks = [loader(4, rank=rank, world_size=2) for rank in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 4      # 8 images per rank, 2 per step
    assert not set(shard(ranks[0], 1)) & set(shard(ranks[1], 1))
    for batch in ranks[1]:
        check_training_batch(batch, 64, 2, train_set.max_boxes)

    with pytest.raises(UserError, match="does not split evenly"):
        loader(5, world_size=2)
    with pytest.raises(UserError, match="more than the 16 training images"):
        loader(32)


def test_evaluation_loader_shards_in_order(voc_dir):
    test_set = VOCDataset(voc_dir, "test", eval_transform(64))
    shards = [indices(make_loader(test_set, batch_size=6, train=False, workers=0, rank=rank,
                                  world_size=2)) for rank in range(2)]
    assert shards == [[0, 2, 4, 6], [1, 3, 5, 7]]   # 3 per step per rank, the last one short
    images, targets = next(iter(make_loader(test_set, batch_size=3, train=False, workers=0)))
    assert images.shape == (3, 3, 64, 64)
    assert [target["orig_size"] for target in targets] \
        == [annotation.size for annotation in test_set.annotations[:3]]


def test_subset_is_fixed_and_in_voc_order(voc_dir):
    dataset = VOCDataset(voc_dir, "trainval")
    part = dataset.subset(5, seed=2)
    ids = [annotation.image_id for annotation in part.annotations]
    assert len(part) == 5 and ids == sorted(set(ids))
    assert ids == [annotation.image_id for annotation in dataset.subset(5, seed=2).annotations]
    assert part.summary()["images"] == 5 and len(dataset) == 16
    assert len(dataset.subset(100)) == 16


def test_augmentation_depends_on_seed_epoch_and_index_only(voc_dir):
    dataset = VOCDataset(voc_dir, "trainval", ssd_train_transform(96), drop_difficult=True)

    def epoch_batches(workers, epoch):
        loader = make_loader(dataset, batch_size=4, train=True, workers=workers, seed=3)
        return shard(loader, epoch), list(loader)

    state = torch.get_rng_state()
    order, in_process = epoch_batches(0, 1)
    assert torch.equal(torch.get_rng_state(), state)   # the training loop's generator untouched
    assert epoch_batches(2, 1)[0] == order
    for batch, other in zip(in_process, epoch_batches(2, 1)[1]):
        assert all(torch.equal(tensor, other_tensor) for tensor, other_tensor in zip(batch, other))
    images, boxes, labels, dropped = in_process[0]   # each sample from (seed, epoch, index) alone
    for position, index in enumerate(order[:4]):
        image, target = dataset[(3, 1, index)]
        count = len(target["labels"])
        assert torch.equal(images[position], image)
        assert torch.equal(boxes[position, :count], target["boxes"])
        assert torch.equal(labels[position, :count], target["labels"])
        assert (labels[position, count:] == -1).all()
        assert dropped[position] == target["dropped_boxes"]
    assert epoch_batches(0, 2)[0] != order
    assert any(not torch.equal(dataset[(3, 1, index)][0], dataset[(3, 2, index)][0])
               for index in range(4))


def test_device_loader_repeats_an_epoch_exactly_and_varies_across_epochs(voc_dir):
    """A resumed run builds a fresh loader: the same (seed, epoch) gives the same batches; the
    images of each step are the DataLoader path's."""
    dataset = VOCDataset(voc_dir, "trainval", ssd_train_transform(64), drop_difficult=True)

    def epoch(number, seed=3):
        loader = VOCDeviceLoader(dataset, batch_size=4, device="cpu", seed=seed)
        loader.set_epoch(number)
        return list(loader)

    first, again = epoch(2), epoch(2)
    for batch, other in zip(first, again):
        assert all(torch.equal(tensor, other_tensor) for tensor, other_tensor in zip(batch, other))
    assert not torch.equal(first[0][0], epoch(3)[0][0])
    assert not torch.equal(first[0][0], epoch(2, seed=4)[0][0])
    device = VOCDeviceLoader(dataset, batch_size=4, device="cpu", seed=3)
    loader = make_loader(dataset, batch_size=4, train=True, workers=0, seed=3)
    assert shard(device, 2) == shard(loader, 2) and len(device) == len(loader)
    # boxes are shuffled per image: over epochs an image's first box changes
    two_boxes = next(index for index in range(len(dataset)) if len(dataset.boxes_of(index)[1]) > 1)
    firsts = {tuple(dataset[(3, number, two_boxes)][1]["labels"].tolist()) for number in range(8)}
    assert len(firsts) > 1


def test_scripts_generate_and_summarise(tmp_path):
    result = run_script("voc2007/synthetic.py", "--out", tmp_path, "--trainval", 3, "--test", 2,
                        "--classes", "dog", "cat")
    assert result.returncode == 0, result.stderr
    assert len(list((folder(tmp_path) / "JPEGImages").glob("*.jpg"))) == 5
    result = run_script("voc2007/data.py", "--data-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trainval: 3 images" in result.stdout and "test: 2 images" in result.stdout
    assert "aeroplane 0" in result.stdout    # only dogs and cats were drawn
