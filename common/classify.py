"""One image-classification run, start to finish: what each dataset's train.py calls once it
has parsed its recipe and loaded its data, and the test-set analysis test.py repeats.

The run directory (--out) ends up holding metrics.json, per_class.csv, curves.png,
confusion.png, worst.png, pr_curves.png, model.pt, checkpoint.pt and tb/.
"""
import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import cli, plots, runtime
from common import tensorboard as tb
from common.data import DeviceLoader, ToNetworkInput
from common.engine import (CHANCE_LOSS_MULTIPLE, RunClock, classifier_step, count_confusion,
                           divergence_help, duration, evaluate, evaluation_pass, plural,
                           predict, train_one_epoch)
from common.errors import Diverged, UserError, describe_error
from common.files import save_torch, write_csv, write_json
from common.metrics import (average_precision, most_confident_mistakes, most_confused_pair,
                            per_class_accuracy, per_class_precision, precision_recall_curve)
from common.rundir import evaluation_folder, read_run_metrics
from common.step import use_graphs
from common.training import (already_done, check_batch_size, check_weights_finite,
                             divergence, load_model_state, log_start, lr_text, optimization,
                             prepare_model, resume_state, run_folder, run_record,
                             save_checkpoint)

WORST_COUNT = 10          # images in worst.png
EMBEDDING_COUNT = 1000    # test images in the TensorBoard projector
DIVERGENCE_HELP = divergence_help(
    f"{CHANCE_LOSS_MULTIPLE} x ln(classes), a hundred times the loss of a uniform guess")
MIXUP_ACCURACY = ("under mixup, a training prediction counts as right when it names the label "
                  "of the larger mixing weight")


def train_classifier(args, *, dataset, build_model, load_data, mean, std, augmentation=None,
                     resize=None, test_name="test"):
    """Train `build_model()` on the training set of `load_data()`, a (train, test) pair of
    ImageSets, with the recipe in `args`; write the run directory. The data is loaded once the
    run is known to need it (--continue may find it finished). `test_name` is what the
    dataset calls its test split in the console and pictures (the scenes': val); metrics.json
    keeps the keys test_* and says the name."""
    device, dist = runtime.setup(args.device)
    log = print if dist.is_main else (lambda *_: None)
    try:
        with run_folder(args.out, dist=dist, device=device):   # one run per folder
            _train(args, dataset, build_model, load_data, mean, std, augmentation or {},
                   resize, test_name, device, dist, log)
    finally:
        runtime.teardown(dist)


def _train(args, dataset, build_model, load_data, mean, std, augmentation, resize, test_name,
           device, dist, log):
    out = Path(args.out)
    if already_done(args, out, log):
        return
    resumed = resume_state(args, out, dataset, extra=("train_confusion",))
    train_set, test_set = load_data()
    if args.limit_train:
        train_set = train_set.random_subset(args.limit_train)
    if args.limit_test:
        test_set = test_set.random_subset(args.limit_test)
    split = "val" if args.val_split else "test"   # the key of the per-epoch evaluation
    shown = "val" if args.val_split else test_name
    if args.val_split >= len(train_set):
        raise UserError(f"--val-split {args.val_split} leaves no training images: there are "
                        f"{len(train_set):,}.")
    if args.val_split:
        train_set, eval_set = train_set.split(args.val_split, seed=args.seed)
    else:
        eval_set = test_set

    cuda = device.type == "cuda"
    sharding = dict(device=device, rank=dist.rank, world_size=dist.world_size)
    train_loader = DeviceLoader(train_set, batch_size=args.batch_size, train=True, seed=args.seed,
                                **augmentation, **sharding)
    eval_loader = DeviceLoader(eval_set, batch_size=2 * args.batch_size, **sharding)
    if len(train_loader) == 0:
        raise UserError(f"{len(train_set)} training images are too few for a batch of "
                        f"{args.batch_size} split across {dist.world_size} process(es).")
    to_input = ToNetworkInput(mean, std, device=device, resize=resize, channels_last=cuda)

    torch.manual_seed(args.seed)   # the same initial weights on every rank and every rerun
    model = build_model()
    if resize:
        check_input_size(model, to_input(next(iter(eval_loader))[0][:1]), args.model)
    check_batch_size(model, train_loader.batch_size, dist)
    precision = runtime.resolve_precision(args.precision, device, model)
    model, train_model, eval_model = prepare_model(model, args, device=device, dist=dist,
                                                   resumed=resumed, log=log)
    graphs = use_graphs(args.cuda_graphs, device=device, distributed=dist.enabled,
                        precision=precision, optimizer=args.optimizer, compiled=args.compile)
    optimizer, schedule, scaler = optimization(args, model, device=device, precision=precision,
                                               steps_per_epoch=len(train_loader),
                                               resumed=resumed, graphs=graphs)
    step = classifier_step(train_model, to_input, optimizer, device=device, precision=precision,
                           scaler=scaler, graphs=graphs)
    evaluation = evaluation_pass(eval_model, to_input, device=device, precision=precision,
                                 graphs=graphs)
    history, train_confusion = [], None
    if resumed:
        history, train_confusion = resumed["history"], resumed["train_confusion"]

    writer = tb.open_writer(out) if dist.is_main else None
    if writer and not resumed:
        tb.log_graph(writer, model, to_input(next(iter(eval_loader))[0][:2]))
    log_start(f"{dataset} {args.model}: {sum(p.numel() for p in model.parameters()):,} "
              f"parameters | {len(train_set):,} train, {len(eval_set):,} {shown} images",
              args=args, resumed=resumed, device=device, precision=precision, graphs=graphs,
              dist=dist, out=out, log=log)
    if args.mixup:
        log(f"mixup alpha {args.mixup}: {MIXUP_ACCURACY}")

    num_classes = len(train_set.classes)
    clock = RunClock(args.epochs, first_epoch=len(history) + 1)
    for epoch in range(len(history) + 1, args.epochs + 1):
        runtime.seed_epoch(args.seed, epoch, dist.rank)
        train_loader.set_epoch(epoch)
        try:
            trained = train_one_epoch(train_model, step, train_loader, schedule, epoch=epoch,
                                      num_classes=num_classes, device=device, dist=dist,
                                      mixup_alpha=args.mixup, seed=args.seed, clock=clock,
                                      log=log)
            check_weights_finite(model, epoch=epoch, steps=len(train_loader),
                                 lr=trained["step_lrs"][-1], dist=dist)
        except Diverged as error:
            raise divergence(error, out=out, dist=dist, args=args) from None
        started = time.time()
        runtime.broadcast_buffers(model, dist)
        evaluated = evaluate(eval_model, evaluation, eval_loader, num_classes=num_classes,
                             device=device, dist=dist)
        record = {"epoch": epoch, "planned_epochs": args.epochs,
                  "lr_first": trained["step_lrs"][0], "lr_last": trained["step_lrs"][-1],
                  "train_loss": trained["loss"], "train_accuracy": trained["accuracy"],
                  f"{split}_loss": evaluated["loss"], f"{split}_accuracy": evaluated["accuracy"],
                  "precision": precision, "seconds": trained["seconds"] + time.time() - started}
        history.append(record)
        train_confusion = trained["confusion"]
        log(f"epoch {epoch:3d}/{args.epochs}  lr {lr_text(record)}  "
            f"train loss {record['train_loss']:.4f} acc {100 * record['train_accuracy']:.2f}%  "
            f"{shown} loss {record[f'{split}_loss']:.4f} "
            f"acc {100 * record[f'{split}_accuracy']:.2f}%  {record['seconds']:.1f}s | "
            f"{clock.status(epoch)}")
        if writer:
            tb.log_epoch(writer, record, trained["step_losses"], trained["step_lrs"])
            save_checkpoint(out, dataset=dataset, args=args, epoch=epoch, model=model,
                            optimizer=optimizer, scheduler=schedule, scaler=scaler,
                            history=history, train_confusion=train_confusion)

    runtime.barrier(dist)
    if not dist.is_main:
        return
    save_torch(model.state_dict(), out / "model.pt")
    test_loader = DeviceLoader(test_set, batch_size=2 * args.batch_size, device=device)
    analysis = analyse_test_set(model, test_loader, test_set, to_input, device=device, out=out,
                                title=f"{dataset} {args.model}", test_name=test_name,
                                writer=writer, step=len(history), precision=precision)
    metrics = {
        **run_record(args, dataset=dataset, out=out, model=model, device=device, dist=dist,
                     precision=precision),
        "classes": train_set.classes, "eval_split": split, "test_split": test_name,
        "train_accuracy_counts": MIXUP_ACCURACY if args.mixup else "the true label",
        "history": history,
        "final": {"epochs": len(history), "train_loss": history[-1]["train_loss"],
                  "train_accuracy": history[-1]["train_accuracy"],
                  f"{split}_accuracy": history[-1][f"{split}_accuracy"],
                  "test_loss": analysis["loss"], "test_accuracy": analysis["accuracy"],
                  "train_images": len(train_set), f"{split}_images": len(eval_set),
                  "test_images": len(test_set),
                  "train_seconds": sum(record["seconds"] for record in history)},
        "per_class": {"train_accuracy": per_class_accuracy(train_confusion),
                      **analysis["per_class"]},
        "train_confusion": train_confusion.tolist(),
        "confusion": analysis["confusion"],
        "worst": analysis["worst"],
    }
    write_per_class_csv(metrics["classes"], metrics["per_class"], out / "per_class.csv")
    panels = [("loss", [("train", "train_loss", 1), (shown, f"{split}_loss", 1)]),
              ("accuracy (%)", [("train", "train_accuracy", 100),
                                (shown, f"{split}_accuracy", 100)])]
    plots.plot_curves(history, panels, out / "curves.png", f"{dataset} {args.model}")
    tb.log_hparams(writer, metrics["args"], {"test_accuracy": analysis["accuracy"],
                                             "test_loss": analysis["loss"],
                                             "train_accuracy": history[-1]["train_accuracy"]})
    writer.close()
    write_json(metrics, out / "metrics.json")
    log(f"{test_name} accuracy {100 * analysis['accuracy']:.2f}% (loss {analysis['loss']:.4f}) "
        f"after {plural(len(history), 'epoch')}, "
        f"{duration(metrics['final']['train_seconds'])} of training -> {out}")


def check_input_size(model, image, name):
    """--resize: a network built for one input size (the reports' LeNets and AlexNets) is
    refused other sizes with a UserError, before the run starts."""
    model.eval()
    try:
        with torch.no_grad():
            model(image.float().cpu().contiguous())
    except RuntimeError as error:
        height, width = image.shape[-2:]
        raise UserError(f"--model {name} does not take {height}x{width} images (--resize): "
                        f"{describe_error(error)[:200]}") from None


def analyse_test_set(model, loader, test_set, to_input, *, device, out, title, test_name="test",
                     writer=None, step=0, precision="fp32"):
    """Predict every test image and write confusion.png (row-normalised), worst.png,
    pr_curves.png and, given a writer, the first two as TensorBoard images, PR curves and the
    embedding projector. `test_name` names the split in the pictures."""
    logits, features = predict(model, loader, to_input, device=device, precision=precision)
    labels = test_set.labels
    classes = test_set.classes
    probabilities = logits.softmax(1)
    confusion = torch.zeros(len(classes) ** 2, dtype=torch.long)
    count_confusion(confusion, labels, logits.argmax(1), len(classes))
    confusion = confusion.view(len(classes), len(classes))
    loss = F.cross_entropy(logits, labels).item()   # as every epoch's evaluation computes it
    curves = [precision_recall_curve(probabilities[:, k].numpy(), (labels == k).numpy())
              for k in range(len(classes))]
    average_precisions = [average_precision(precision, recall) for precision, recall in curves]
    worst = most_confident_mistakes(probabilities, labels, WORST_COUNT)

    plots.plot_confusion(confusion, classes, out / "confusion.png",
                         f"{title}: {test_name} confusion")
    plots.plot_worst(test_set.images[worst], labels[worst].tolist(),
                     probabilities[worst].numpy(), classes, out / "worst.png",
                     f"{title}: most confident mistakes ({test_name})")
    plots.plot_pr_curves([(p, r, ap) for (p, r), ap in zip(curves, average_precisions)], classes,
                         out / "pr_curves.png",
                         f"{title}: precision-recall per class ({test_name})")
    if writer:
        tb.log_image_file(writer, "test/confusion", out / "confusion.png", step)
        tb.log_image_file(writer, "test/worst", out / "worst.png", step)
        tb.log_pr_curves(writer, probabilities, labels, classes, step)
        shown = slice(0, EMBEDDING_COUNT)
        tb.log_embedding(writer, features[shown], labels[shown], test_set.images[shown], classes,
                         step)
    return {
        "accuracy": confusion.diag().sum().item() / max(len(labels), 1),
        "loss": loss,
        "confusion": confusion.tolist(),
        "per_class": {"test_accuracy": per_class_accuracy(confusion),
                      "test_precision": per_class_precision(confusion),
                      "test_average_precision": average_precisions},
        "worst": [{"index": index, "label": int(labels[index]),
                   "predicted": int(probabilities[index].argmax()),
                   "probability": float(probabilities[index].max())} for index in worst],
    }


def write_per_class_csv(classes, per_class, path):
    columns = list(per_class)
    rows = [[name] + [f"{100 * per_class[column][k]:.2f}" for column in columns]
            for k, name in enumerate(classes)]
    write_csv(["class"] + [f"{column}_pct" for column in columns], rows, path)


def parse_test_args(argv, description, models):
    """test.py's flags, plus what the run saved: args.saved (its metrics.json), args.model."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run", required=True, help="run directory written by train.py")
    parser.add_argument("--data-dir", help="data folder (default: the one the run trained on)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                        help="as train.py's (default: auto)")
    parser.add_argument("--out", help="where to write the evaluation (default: <run>/eval)")
    parser.add_argument("--limit-test", type=cli.positive_int, metavar="N",
                        help="evaluate a fixed random N test images")
    args = parser.parse_args(argv)
    run = Path(args.run)
    args.saved = read_run_metrics(run)
    args.out = evaluation_folder(run, args.out)
    args.model = args.saved.get("model")
    if args.model not in models:
        raise UserError(f"{run} trained {args.model!r}, not one of this dataset's models.")
    args.weights = run / "model.pt"
    saved_data_dir = args.saved["args"].get("data_dir")
    args.data_dir = args.data_dir or saved_data_dir or cli.default_data_dir()
    return args


def test_classifier(args, *, dataset, build_model, test_set, mean, std, resize=None,
                    test_name="test"):
    """Re-evaluate the weights of a run on the test set: print the per-class table and write
    per_class.csv, confusion.png, worst.png, pr_curves.png and metrics.json into args.out."""
    if args.saved.get("dataset") != dataset:
        raise UserError(f"{args.run} is a {args.saved.get('dataset')} run, not {dataset}.")
    device, _ = runtime.setup(args.device)
    model = build_model()
    precision = runtime.resolve_precision(args.precision, device, model)
    load_model_state(model, args.weights, "weights file", args.model)
    model.to(device)
    if args.limit_test:
        test_set = test_set.random_subset(args.limit_test)
    loader = DeviceLoader(test_set, batch_size=256, device=device)
    to_input = ToNetworkInput(mean, std, device=device, resize=resize)
    analysis = analyse_test_set(model, loader, test_set, to_input, device=device, out=args.out,
                                title=f"{dataset} {args.model}", test_name=test_name,
                                precision=precision)
    write_per_class_csv(test_set.classes, analysis["per_class"], args.out / "per_class.csv")
    write_json({"dataset": dataset, "model": args.model, "run_dir": str(args.run),
                "data_dir": str(args.data_dir), "test_images": len(test_set),
                "device": runtime.describe_device(device), "precision": precision, **analysis},
               args.out / "metrics.json")
    print(per_class_text(test_set.classes, analysis["per_class"]))
    print(f"{test_name} accuracy {100 * analysis['accuracy']:.2f}% on {len(test_set):,} "
          f"images (loss {analysis['loss']:.4f}) -> {args.out}")
    # the analysis report 004 asks for: which true class is most often taken for which
    true, predicted, count = most_confused_pair(analysis["confusion"])
    total = sum(analysis["confusion"][true])
    print(f"most confused: {count} of the {total} {test_name} images of class "
          f"{test_set.classes[true]} were taken for {test_set.classes[predicted]} "
          f"({100 * count / max(total, 1):.2f}%)")
    return analysis


def per_class_text(classes, per_class):
    """The per-class figures as an aligned console table (common/report.py makes markdown)."""
    columns = list(per_class)
    width = max(len(name) for name in classes + ["class"])
    lines = [f"{'class':<{width}}  " + "  ".join(f"{column:>22}" for column in columns)]
    for k, name in enumerate(classes):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{100 * per_class[column][k]:>21.2f}%"
                                                     for column in columns))
    return "\n".join(lines)
