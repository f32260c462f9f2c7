"""TensorBoard logging under <run>/tb: scalars, the model graph, hparams, one PR curve per class
and an embedding projector of test-set features (the views report 003 shows or tried to)."""
import threading
import warnings
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter


def open_writer(run_dir):
    """The run's SummaryWriter. A write the disk refuses (full, read-only) in its writer thread
    is raised again, as the same OSError, by the writer's next call in the run's thread, and
    reported there (common.training.run_folder): the thread's own traceback is not printed."""
    quiet_writer_threads()
    return SummaryWriter(log_dir=str(Path(run_dir) / "tb"))


def quiet_writer_threads():
    """Leave out of threading.excepthook the OSErrors of TensorBoard's writer threads."""
    previous = threading.excepthook
    if getattr(previous, "quiets_tensorboard", False):
        return

    def hook(args):
        if isinstance(args.exc_value, OSError) \
                and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        previous(args)
    hook.quiets_tensorboard = True
    threading.excepthook = hook


def log_graph(writer, model, example_images):
    """The model graph (Graphs tab), traced once in eval mode so that no batch-norm statistics
    or random numbers are spent on it."""
    was_training = model.training
    model.eval()
    with warnings.catch_warnings():   # add_graph still traces with the deprecated torch.jit
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)   # LRN's check of empty input
        writer.add_graph(model, example_images)
    model.train(was_training)


SPLITS = ("train", "val", "test", "trainval")


def log_epoch(writer, record, step_losses, step_lrs):
    """An epoch's figures: "<split>_<figure>" keys (train_loss, test_accuracy, test_map...) as
    <figure>/<split>, every other number under its own name; every step's training loss and
    learning rate on loss/train_step and lr."""
    epoch = record["epoch"]
    first_step = (epoch - 1) * len(step_losses) + 1
    for offset, (loss, lr) in enumerate(zip(step_losses.tolist(), step_lrs)):
        writer.add_scalar("loss/train_step", loss, first_step + offset)
        writer.add_scalar("lr", lr, first_step + offset)
    for key, value in record.items():
        if key in ("epoch", "seconds", "lr_first", "lr_last") or not isinstance(value, float):
            continue
        split, _, figure = key.partition("_")
        writer.add_scalar(f"{figure}/{split}" if split in SPLITS and figure else key, value, epoch)
    writer.flush()


def log_pr_curves(writer, probabilities, labels, classes, step):
    for index, name in enumerate(classes):
        writer.add_pr_curve(f"pr/{name}", labels == index, probabilities[:, index],
                            global_step=step)


def log_embedding(writer, features, labels, images, classes, step):
    """Projector tab: penultimate-layer features with their images and class names."""
    images = images.float() / 255
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    writer.add_embedding(features, metadata=[classes[label] for label in labels.tolist()],
                         label_img=images, global_step=step, tag="test_features")


def log_hparams(writer, args, final_metrics):
    """HParams tab: the run's flags (a dict) against its final figures."""
    def scalar(value):
        return value if isinstance(value, (int, float, str, bool)) else str(value)
    hparams = {key: scalar(value) for key, value in args.items()}
    writer.add_hparams(hparams, {f"hparam/{key}": value for key, value in final_metrics.items()},
                       run_name=".")
    writer.flush()

