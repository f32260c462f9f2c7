"""TensorBoard logging under <run>/tb: scalars, the model graph, hparams, one PR curve per class,
an embedding projector of test-set features (the views report 003 shows or tried to) and the
run's pictures (confusion matrix, worst images, detections) in the Images tab.

`make tensorboard` (python -m common.tensorboard --runs RUNS) serves every run under RUNS named
by its folder (mnist/lenet, not mnist/lenet/tb): TensorBoard names a run by the folder of its
event files, so it is pointed at a tree of links, <RUNS>/.tensorboard/<run> -> <run>/tb, built
afresh at each start (TensorBoard's advice over --logdir_spec).
"""
import argparse
import os
import shutil
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

LINKS = ".tensorboard"   # the tree of links in the runs folder


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


def log_image_file(writer, tag, path, step):
    """A picture the run wrote (confusion.png, worst.png, detections.png) in the Images tab."""
    with Image.open(path) as image:
        writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")


def log_hparams(writer, args, final_metrics):
    """HParams tab: the run's flags (a dict) against its final figures. Numbers stay numbers;
    booleans, lists and None become text (add_hparams would show a boolean as 0.0000)."""
    def scalar(value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        return value if isinstance(value, str) else str(value)
    hparams = {key: scalar(value) for key, value in args.items()}
    writer.add_hparams(hparams, {f"hparam/{key}": value for key, value in final_metrics.items()},
                       run_name=".")
    writer.flush()



def link_runs(runs):
    """Build <runs>/.tensorboard: one link per run folder that has a tb/, named by the run's
    path under `runs`; return the tree and the number of runs."""
    runs = Path(runs)
    tree = runs / LINKS
    shutil.rmtree(tree, ignore_errors=True)   # links and folders only: rmtree follows no link
    count = 0
    for events in sorted(runs.rglob("tb")):
        if not events.is_dir() or LINKS in events.parts:
            continue
        link = tree / events.parent.relative_to(runs)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(events, link.parent), target_is_directory=True)
        count += 1
    return tree, count


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve the TensorBoard of every run under "
                                                 "--runs, each named by its folder (e.g. "
                                                 "mnist/lenet). Other flags go to tensorboard "
                                                 "(e.g. --port 6007, --bind_all).")
    parser.add_argument("--runs", default="runs", help="folder of the run directories (runs)")
    args, passed_on = parser.parse_known_args(argv)
    if not Path(args.runs).is_dir():
        print(f"error: there is no folder {args.runs}: no run to show.", file=sys.stderr)
        return 2
    tree, count = link_runs(args.runs)
    print(f"{count} runs of {args.runs} linked into {tree} (a run started later shows after a "
          "restart)", flush=True)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(tree), *passed_on]
    os.execv(sys.executable, command)


if __name__ == "__main__":
    sys.exit(main())
