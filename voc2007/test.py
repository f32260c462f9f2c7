"""Re-evaluate a trained YOLOv1 or SSD run on VOC 2007 test and/or trainval.

Prints report 000's per-class AP table (a row per split, the 20 classes and the mAP, by the VOC
2007 devkit's rules) and writes per_class.csv, pr_curves.png (test, or the one split asked
for), detections.png (boxes drawn on the split's first images) and metrics.json into <run>/eval.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli, runtime  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.files import write_json  # noqa: E402
from common.rundir import evaluation_folder, read_run_metrics  # noqa: E402
from common.training import load_model_state  # noqa: E402
from voc2007 import train_ssd, train_yolo  # noqa: E402
from voc2007.data import VOCDataset, eval_transform, make_loader  # noqa: E402
from voc2007.detection import (DATASET, METRIC, ap_table, ap_text, evaluate,  # noqa: E402
                               json_ready, write_evaluation)

BUILDERS = {"yolo": train_yolo.build_model, "ssd": train_ssd.build_model}
SPLITS = {"test": ["test"], "trainval": ["trainval"], "both": ["trainval", "test"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="run directory written by train_yolo.py "
                                                     "or train_ssd.py")
    parser.add_argument("--split", choices=sorted(SPLITS), default="both",
                        help="the split(s) to evaluate (default: both)")
    parser.add_argument("--data-dir", help="data folder (default: the one the run trained on)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                        help="as train_*.py's (default: auto)")
    parser.add_argument("--limit-test", type=cli.positive_int, metavar="N",
                        help="evaluate a fixed random N images of each split")
    parser.add_argument("--batch-size", type=cli.positive_int, default=32)
    parser.add_argument("--workers", type=cli.nonnegative_int,
                        help="DataLoader worker processes (default: the run's --workers)")
    parser.add_argument("--out", help="where to write the evaluation (default: <run>/eval)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    saved = read_run_metrics(run, dataset=DATASET)
    out = evaluation_folder(run, args.out)
    if saved["detector"] not in BUILDERS:
        raise UserError(f"{run} is not a YOLOv1 or SSD run of VOC 2007 (its metrics.json says "
                        f"detector {saved['detector']!r}).")
    trained = argparse.Namespace(**saved["args"])
    data_dir = args.data_dir or trained.data_dir
    workers = args.workers if args.workers is not None else \
        saved["args"].get("workers", min(8, os.cpu_count() or 1))

    device, _ = runtime.setup(args.device)
    model = BUILDERS[saved["detector"]](trained)
    precision = runtime.resolve_precision(args.precision, device, model)
    load_model_state(model, run / "model.pt", "weights file",
                     f"{saved['detector']} {trained.model}")
    model.to(device)

    results, datasets, detections = {}, {}, {}
    for split in SPLITS[args.split]:
        dataset = VOCDataset(data_dir, split, eval_transform(model.image_size), log=print)
        if args.limit_test:
            dataset = dataset.subset(args.limit_test)
        loader = make_loader(dataset, batch_size=args.batch_size, train=False,
                             workers=workers, pin_memory=device.type == "cuda")
        results[split], detections[split] = evaluate(model, loader, device=device,
                                                     dist=runtime.Distributed(),
                                                     precision=precision)
        datasets[split] = dataset
    shown = SPLITS[args.split][-1]   # test when evaluated
    title = f"{saved['detector']} {trained.model}"
    write_evaluation(out, results, datasets[shown], detections[shown], title, shown)
    write_json({"dataset": DATASET, "detector": saved["detector"], "model": trained.model,
                "run_dir": str(run), "data_dir": str(data_dir), "metric": METRIC,
                "device": runtime.describe_device(device), "precision": precision,
                "images": {split: len(dataset) for split, dataset in datasets.items()},
                "map": {split: json_ready(result["map"]) for split, result in results.items()},
                "per_class": {f"{split}_ap": json_ready(result["ap"])
                              for split, result in results.items()}},
               out / "metrics.json")
    print(ap_table([(split, result["ap"], result["map"]) for split, result in results.items()]))
    print(f"{METRIC}; " + ", ".join(f"{split} mAP {ap_text(result['map'])}% on "
                                    f"{len(datasets[split]):,} images"
                                    for split, result in results.items()) + f" -> {out}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
