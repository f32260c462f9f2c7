"""What YOLOv1 and SSD300 share: the training loop over a DataLoader of images with boxes, the
evaluation of a detector on a split by the VOC 2007 rules, its pictures, and the run from start
to finish that train_yolo.py and train_ssd.py call once they have parsed their recipe.

The run machinery (the --resume rule, checkpoints, the divergence stop, DDP, TensorBoard, the
curves) is common/'s. A run directory gets metrics.json (history with the loss terms, per-class
AP on trainval and test), per_class.csv, curves.png (losses and test mAP), pr_curves.png,
detections.png, model.pt, checkpoint.pt and tb/.
"""
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as torch_dist

from common import plots, runtime
from common import tensorboard as tb
from common.cli import nonnegative_int, positive_int
from common.engine import (PROGRESS_SECONDS, LossWatch, RunClock, divergence_help, duration,
                           plural)
from common.errors import Diverged
from common.files import save_torch, write_csv, write_json
from common.step import TrainingStep, autocast, use_graphs
from common.training import (already_done, check_batch_size, check_weights_finite,
                             divergence, log_start, lr_text, optimization,
                             prepare_model, resume_state, run_folder, run_record,
                             save_checkpoint)
from common.voc_eval import voc_eval
from voc2007.data import (CLASSES, VOCDataset, VOCDeviceLoader, ensure_voc, eval_transform,
                          make_loader, to_voc_boxes)
from voc2007.pictures import plot_detections

DATASET = "voc2007"
# A detector has diverged when the mean of its loss over a 50-step window exceeds this (or it
# is NaN/inf): untrained, YOLOv1's loss is about 15 per image and SSD300's about 115.
LOSS_LIMIT = (1e4, "10,000 as the mean of its 50-step window, a hundred times or more the loss "
                   "of an untrained detector")
DIVERGENCE_HELP = divergence_help("10,000, a hundred times or more the loss of an untrained "
                                  "detector")
METRIC = "VOC 2007 11-point interpolated AP at IoU > 0.5, difficult objects ignored"


def add_detection_arguments(parser):
    """The flags both detectors' train scripts add to the common ones."""
    group = parser.add_argument_group("detection")
    group.add_argument("--input", choices=("auto", "device", "workers"), default="auto",
                       help="device: decode trainval once into the training device's memory "
                            "(VOC 2007's: 3.8 GB) and augment whole batches there; workers: "
                            "DataLoader worker processes (--workers) decode and augment image "
                            "by image. The same augmentation either way. auto: device on a GPU "
                            "where trainval takes under half its free memory, else workers "
                            "(%(default)s)")
    group.add_argument("--workers", type=nonnegative_int, default=min(8, os.cpu_count() or 1),
                       help="DataLoader worker processes per training process: for the "
                            "evaluations, and for training with --input workers; `make bench` "
                            "measures how many images/s one worker prepares (%(default)s)")
    group.add_argument("--eval-every", type=positive_int,
                       help="evaluate test mAP on --eval-images images every N epochs and at "
                            "the last; the whole test split and trainval are evaluated at the "
                            "end (%(default)s)")
    group.add_argument("--eval-images", type=positive_int, default=500,
                       help="the fixed random test images of the evaluations during training "
                            "(%(default)s)")


def derive_milestones(fractions):
    """A `derive` for parse_training_args: unless --milestones is given, put the multistep
    decays at the same fractions of --epochs as the paper's schedule (a resumed run keeps the
    checkpoint's milestones)."""
    def derive(args):
        if args.scheduler == "multistep" and not args.milestones:
            args.milestones = [round(fraction * args.epochs) for fraction in fractions]
    return derive


def input_pipeline(requested, dataset, device):
    """"device" or "workers" for --input `requested` (see add_detection_arguments)."""
    if requested != "auto":
        return requested
    if device.type != "cuda":
        return "workers"
    free, _ = torch.cuda.mem_get_info(device)
    height, width = (max(annotation.size[k] for annotation in dataset.annotations)
                     for k in (0, 1))
    return "device" if len(dataset) * 3 * height * width < free / 2 else "workers"


def to_device(images, device):
    """A uint8 batch -> float in [0, 1] on `device`: the conversion runs there, on 4x fewer
    bytes sent (channels_last on CUDA, as the model)."""
    images = images.to(device, non_blocking=True).float().div_(255)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def detector_step(model, optimizer, *, device, precision, scaler, graphs):
    """The TrainingStep of a detector: step(lr, images uint8, boxes, labels) -> the loss and
    its terms (the model's loss on the padded batch, static in shape, so that it can be
    captured)."""
    def loss_of(images, boxes, labels):
        terms = model(to_device(images, device), boxes, labels)
        return sum(terms.values()), terms
    return TrainingStep(loss_of, optimizer, device=device, precision=precision, scaler=scaler,
                        graphs=graphs)


def train_one_epoch(model, step, loader, schedule, *, epoch, device, dist, clock, log):
    """One pass over `loader`, batches (images, boxes, labels, dropped), with the detector_step
    `step` at the rates of `schedule`. Returns the mean loss and loss terms, the boxes the
    augmentation dropped, the per-step losses and learning rates and the time; raises Diverged."""
    model.train()
    watch = LossWatch(len(loader), epoch=epoch, device=device, dist=dist, limit=LOSS_LIMIT,
                      clock=clock, log=log)
    term_sums = {}
    dropped = torch.zeros((), dtype=torch.long, device=device)
    for index, (images, boxes, labels, dropped_boxes) in enumerate(loader):
        lr = schedule.rate()
        outputs = step(lr, images.to(device, non_blocking=True),
                       boxes.to(device, non_blocking=True), labels.to(device, non_blocking=True))
        schedule.advance()
        watch.record(index, outputs["loss"], lr)
        dropped += dropped_boxes.to(device, non_blocking=True).sum()
        for name, value in outputs.items():
            if name != "loss":
                term_sums[name] = term_sums.get(name, 0) + value.float()

    names = sorted(term_sums)
    totals = torch.stack([term_sums[name] for name in names]
                         + [torch.tensor(float(len(loader)), device=device), dropped.float()])
    runtime.all_reduce_sum(totals, dist)
    totals = totals.tolist()
    return {"loss": watch.mean(),
            "terms": {name: totals[k] / totals[-2] for k, name in enumerate(names)},
            "dropped_boxes": int(totals[-1]), "step_losses": watch.losses.cpu(),
            "step_lrs": watch.lrs, "seconds": time.time() - watch.started}


@torch.no_grad()
def detect(model, loader, *, device, dist, precision, log=lambda *_: None):
    """The detections of every image of `loader`'s dataset, keyed by its index there, in the
    pixels of the original image. Under torchrun each rank detects its shard and every rank
    receives them all."""
    model.eval()
    found = {}
    started = last_report = time.time()
    for batch, (images, targets) in enumerate(loader):
        if time.time() - last_report > PROGRESS_SECONDS:
            last_report = time.time()
            log(f"  detecting: batch {batch}/{len(loader)}  {last_report - started:.0f}s")
        side = images.shape[-1]
        with autocast(device, precision):
            detections = model(to_device(images, device))
        for detection, target in zip(detections, targets):
            height, width = target["orig_size"]
            scale = torch.tensor([width, height, width, height]) / side
            found[target["index"]] = {"boxes": to_voc_boxes(detection["boxes"].float().cpu()
                                                            * scale),
                                      "scores": detection["scores"].float().cpu(),
                                      "labels": detection["labels"].cpu()}
    if dist.enabled:
        shards = [None] * dist.world_size
        torch_dist.all_gather_object(shards, found)
        found = {index: image for shard in shards for index, image in shard.items()}
    return found


def evaluate(model, loader, *, device, dist, precision, log=lambda *_: None):
    """(voc_eval's result, the detections) of `model` on the dataset of `loader`."""
    dataset = loader.dataset
    found = detect(model, loader, device=device, dist=dist, precision=precision, log=log)
    detections = [found[index] for index in range(len(dataset))]
    truths = [dataset.ground_truth(index) for index in range(len(dataset))]
    return voc_eval(detections, truths, len(CLASSES)), detections


def ap_text(ap):
    return "-" if math.isnan(ap) else f"{100 * ap:.2f}"


def ap_table(rows):
    """The report's per-class AP table as console text: the 20 classes in two blocks of ten,
    mAP last, one line per (label, per-class APs, mAP) of `rows`."""
    lines = []
    for block in (range(0, 10), range(10, 20)):
        names = [CLASSES[k] for k in block] + (["mAP"] if block.start else [])
        widths = [max(len(name), 6) for name in names]
        lines.append(f"{'AP (%)':<9}" + " ".join(f"{name:>{width}}"
                                                for name, width in zip(names, widths)))
        for label, aps, mean in rows:
            values = [aps[k] for k in block] + ([mean] if block.start else [])
            lines.append(f"{label:<9}" + " ".join(f"{ap_text(value):>{width}}"
                                                  for value, width in zip(values, widths)))
    return "\n".join(lines)


def write_evaluation(out, results, dataset, detections, title, shown="test", writer=None,
                     step=0):
    """per_class.csv of the `results` per split; pr_curves.png and detections.png of the split
    `shown`, whose dataset and detections are given; given a TensorBoard writer, detections.png
    in its Images tab too."""
    splits = list(results)
    rows = [[name] + [ap_text(results[split]["ap"][k]) for split in splits]
            for k, name in enumerate(CLASSES)]
    rows.append(["mAP"] + [ap_text(results[split]["map"]) for split in splits])
    write_csv(["class"] + [f"{split}_ap_pct" for split in splits], rows, out / "per_class.csv")
    result = results[shown]
    present = [k for k in range(len(CLASSES)) if result["positives"][k]]
    plots.plot_pr_curves([(result["precision"][k], result["recall"][k], result["ap"][k])
                          for k in present], [CLASSES[k] for k in present],
                         out / "pr_curves.png", f"{title}: precision-recall per class ({shown})")
    plot_detections(dataset, detections, out / "detections.png", f"{title} ({shown})")
    if writer:
        tb.log_image_file(writer, f"{shown}/detections", out / "detections.png", step)


def json_ready(value):
    """An AP or a list of them for metrics.json: NaN (no object to find) becomes null."""
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    return None if math.isnan(value) else value


def train_detector(args, *, detector, build_model, train_transform, title):
    """Train `build_model(args)` on VOC 2007 trainval with the recipe in `args`, evaluate it on
    test and trainval, and write the run directory."""
    device, dist = runtime.setup(args.device)
    log = print if dist.is_main else (lambda *_: None)
    try:
        with run_folder(args.out, dist=dist, device=device):   # one run per folder
            _train(args, detector, build_model, train_transform, title, device, dist, log)
    finally:
        runtime.teardown(dist)


def _train(args, detector, build_model, train_transform, title, device, dist, log):
    out = Path(args.out)
    name = f"{detector}-{args.model}"
    if already_done(args, out, log):
        return
    resumed = resume_state(args, out, DATASET, name)
    if dist.local_rank == 0:   # one process per node downloads; the others wait for it
        ensure_voc(args.data_dir, log=log)
    runtime.barrier(dist)

    torch.manual_seed(args.seed)   # the same initial weights on every rank and every rerun
    model = build_model(args)
    precision = runtime.resolve_precision(args.precision, device, model)
    size = model.image_size
    train_set = VOCDataset(args.data_dir, "trainval", train_transform(size), drop_difficult=True,
                           log=log)
    trainval_set = train_set.with_transform(eval_transform(size))   # for its mAP, at the end
    test_set = VOCDataset(args.data_dir, "test", eval_transform(size), log=log)
    if args.limit_train:
        train_set = train_set.subset(args.limit_train, seed=args.seed)
        trainval_set = trainval_set.subset(args.limit_train, seed=args.seed)
    if args.limit_test:
        test_set = test_set.subset(args.limit_test, seed=args.seed)
    watched_set = test_set.subset(args.eval_images, seed=args.seed)

    cuda = device.type == "cuda"
    loading = dict(workers=args.workers, seed=args.seed, rank=dist.rank,
                   world_size=dist.world_size, pin_memory=cuda)
    if input_pipeline(args.input, train_set, device) == "device":
        log(f"decoding {len(train_set):,} trainval images into {runtime.describe_device(device)}"
            " memory (--input device)")
        train_loader = VOCDeviceLoader(train_set, batch_size=args.batch_size, device=device,
                                       seed=args.seed, rank=dist.rank,
                                       world_size=dist.world_size)
    else:
        train_loader = make_loader(train_set, batch_size=args.batch_size, train=True, **loading)
    check_batch_size(model, args.batch_size // dist.world_size, dist)
    model, train_model, eval_model = prepare_model(model, args, device=device, dist=dist,
                                                   resumed=resumed, log=log)
    graphs = use_graphs(args.cuda_graphs, device=device, distributed=dist.enabled,
                        precision=precision, optimizer=args.optimizer, compiled=args.compile)
    optimizer, schedule, scaler = optimization(args, model, device=device, precision=precision,
                                               steps_per_epoch=len(train_loader),
                                               resumed=resumed, graphs=graphs)
    step = detector_step(train_model, optimizer, device=device, precision=precision,
                         scaler=scaler, graphs=graphs)
    history = resumed["history"] if resumed else []

    def loader_of(dataset):   # evaluation: every rank its shard, twice the training batch
        return make_loader(dataset, batch_size=2 * args.batch_size, train=False, **loading)

    writer = tb.open_writer(out) if dist.is_main else None
    log_start(f"{title}: {sum(p.numel() for p in model.parameters()):,} parameters, "
              f"{size}x{size} | {len(train_set):,} trainval, {len(test_set):,} test images",
              args=args, resumed=resumed, device=device, precision=precision, graphs=graphs,
              dist=dist, out=out, log=log)

    watched_loader = loader_of(watched_set)

    def checkpoint():
        if writer:
            save_checkpoint(out, dataset=DATASET, name=name, args=args, epoch=len(history),
                            model=model, optimizer=optimizer, scheduler=schedule,
                            scaler=scaler, history=history)

    def evaluate_epoch(record):
        """Test mAP on the watched images into the epoch's `record`, checkpointed; the
        console text."""
        started = time.time()
        runtime.broadcast_buffers(model, dist)
        result, _ = evaluate(eval_model, watched_loader, device=device, dist=dist,
                             precision=precision)
        record.update(test_map=json_ready(result["map"]), eval_images=len(watched_set),
                      seconds=record["seconds"] + time.time() - started)
        checkpoint()
        return f"  test mAP {ap_text(result['map'])}% ({len(watched_set)} images)"

    def evaluated_at(epoch):
        return epoch % args.eval_every == 0 or epoch == args.epochs

    if history and evaluated_at(history[-1]["epoch"]) and "test_map" not in history[-1]:
        log(f"evaluating epoch {history[-1]['epoch']}, which the interrupted run had not")
        log(f"epoch {history[-1]['epoch']}:{evaluate_epoch(history[-1])}")
    clock = RunClock(args.epochs, first_epoch=len(history) + 1)
    for epoch in range(len(history) + 1, args.epochs + 1):
        runtime.seed_epoch(args.seed, epoch, dist.rank)
        train_loader.set_epoch(epoch)
        try:
            trained = train_one_epoch(train_model, step, train_loader, schedule, epoch=epoch,
                                      device=device, dist=dist, clock=clock, log=log)
            check_weights_finite(model, epoch=epoch, steps=len(train_loader),
                                 lr=trained["step_lrs"][-1], dist=dist)
        except Diverged as error:
            raise divergence(error, out=out, dist=dist, args=args) from None
        record = {"epoch": epoch, "planned_epochs": args.epochs,
                  "lr_first": trained["step_lrs"][0], "lr_last": trained["step_lrs"][-1],
                  "train_loss": trained["loss"],
                  **{f"train_{term}": value for term, value in trained["terms"].items()},
                  "dropped_boxes": trained["dropped_boxes"], "precision": precision,
                  "seconds": trained["seconds"]}
        history.append(record)
        # The checkpoint comes before the evaluation, which reads image files: a damaged one
        # stops the run without losing the epoch's training, and a resume evaluates it then.
        checkpoint()
        evaluated = evaluate_epoch(record) if evaluated_at(epoch) else ""
        terms = ", ".join(f"{term} {value:.3f}" for term, value in trained["terms"].items())
        log(f"epoch {epoch:3d}/{args.epochs}  lr {lr_text(record)}  loss {trained['loss']:.4f} "
            f"({terms}){evaluated}  {record['seconds']:.1f}s | {clock.status(epoch)}")
        if epoch == 1 and trained["dropped_boxes"]:
            log(f"  the augmentation dropped {trained['dropped_boxes']} boxes in epoch 1 "
                "(cropped away or under a pixel); metrics.json counts them per epoch")
        if writer:
            tb.log_epoch(writer, record, trained["step_losses"], trained["step_lrs"])

    log(f"evaluating {len(test_set):,} test and {len(trainval_set):,} trainval images")
    runtime.broadcast_buffers(model, dist)
    results, test_detections = {}, None
    for split, dataset in (("trainval", trainval_set), ("test", test_set)):
        results[split], detections = evaluate(eval_model, loader_of(dataset), device=device,
                                              dist=dist, precision=precision, log=log)
        if split == "test":
            test_detections = detections
    if not dist.is_main:
        return
    save_torch(model.state_dict(), out / "model.pt")
    write_evaluation(out, results, test_set, test_detections, title, writer=writer,
                     step=len(history))
    panels = [("loss", [("train", "train_loss", 1)] + [
                  (term, f"train_{term}", 1) for term in sorted(history[-1])
                  if term.startswith("train_") and term != "train_loss"]),
              ("mAP (%)", [(f"test ({history[-1].get('eval_images', '')} images)", "test_map",
                            100)])]
    plots.plot_curves(history, panels, out / "curves.png", title)
    metrics = {
        **run_record(args, dataset=DATASET, out=out, model=model, device=device, dist=dist,
                     precision=precision),
        "detector": detector, "classes": list(CLASSES), "image_size": size, "metric": METRIC,
        "history": history,
        "final": {"epochs": len(history), "train_loss": history[-1]["train_loss"],
                  "test_map": json_ready(results["test"]["map"]),
                  "trainval_map": json_ready(results["trainval"]["map"]),
                  "test_images": len(test_set), "trainval_images": len(trainval_set),
                  "train_seconds": sum(record["seconds"] for record in history)},
        "per_class": {f"{split}_ap": json_ready(result["ap"])
                      for split, result in results.items()},
        "positives": {split: result["positives"] for split, result in results.items()},
    }
    tb.log_hparams(writer, metrics["args"], {"test_map": results["test"]["map"],
                                             "trainval_map": results["trainval"]["map"]})
    writer.close()
    write_json(metrics, out / "metrics.json")
    log(ap_table([("trainval", results["trainval"]["ap"], results["trainval"]["map"]),
                  ("test", results["test"]["ap"], results["test"]["map"])]))
    log(f"test mAP {ap_text(results['test']['map'])}% ({METRIC}) after "
        f"{plural(len(history), 'epoch')}, {duration(metrics['final']['train_seconds'])} of "
        f"training -> {out}")
