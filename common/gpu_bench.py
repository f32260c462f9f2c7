"""`make bench-gpu`: the GPU measurements of the training loops in one run, from generated data,
so that a fresh GPU machine with nothing but PyTorch, torchvision and this repository measures
them in a few minutes (no download, no data folder):

1. CIFAR-10 ResNet-20, -56 and -110 (cifar10/bench.py): the plain DataLoader loop, ours (CUDA
   graphs and eager) and the step alone as the limit, in s per epoch of 50,000 images and as
   ratios; ResNet-20 also against torch.compile's step. The images are random CIFAR-format
   batches: a step's time does not depend on what the pixels show.
2. The precision of each network (common/precision_bench.py): its captured step in fp32 (TF32),
   bf16 autocast and bf16 weights with float32 batch norm.
3. YOLOv1 (ResNet-50, 448) and SSD300 (voc2007/bench_train.py): training images/s of the
   network alone and end to end, on a generated VOC-layout set.

    python -m common.gpu_bench                 # everything (sized for under 6 minutes on an H200)
    python -m common.gpu_bench --only cifar10  # one part
"""
import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402

from common import cli  # noqa: E402

PARTS = ("cifar10", "precision", "voc2007")
CIFAR_IMAGES = {"train": 50_000, "test": 10_000}
# the share of an epoch each CIFAR loop is timed on (s per 50,000 images are extrapolated)
CIFAR_TIMED_IMAGES = 25_000


def write_random_cifar(folder, seed=0):
    """Random images and labels in CIFAR-10's python layout (five data_batch files of 10,000,
    test_batch, batches.meta) under folder/cifar-10-batches-py; returns `folder`."""
    rng = np.random.default_rng(seed)
    batches = Path(folder) / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
    for name in names:
        count = CIFAR_IMAGES["train"] // 5 if name != "test_batch" else CIFAR_IMAGES["test"]
        batch = {"data": rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8),
                 "labels": rng.integers(0, 10, count).tolist()}
        (batches / name).write_bytes(pickle.dumps(batch, protocol=4))
    (batches / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(k) for k in
                                                                          range(10)]}))
    return folder


def run_part(name, command):
    print(f"\n== {name}", flush=True)
    started = time.time()
    command()
    print(f"== {name}: {time.time() - started:.0f}s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=PARTS, nargs="+", default=list(PARTS),
                        help="the parts to run (default: all)")
    args = parser.parse_args(argv)
    from cifar10 import bench as cifar_bench
    from common import precision_bench
    from voc2007 import bench_train

    with tempfile.TemporaryDirectory() as scratch:
        if "cifar10" in args.only:
            data = write_random_cifar(Path(scratch) / "cifar")
            common = ["--device", "cuda", "--data-dir", str(data), "--limit-train",
                      str(CIFAR_TIMED_IMAGES)]
            run_part("CIFAR-10 ResNet-20 (and torch.compile's step)",
                     lambda: cifar_bench.main(["--models", "resnet20", "--compiled", *common]))
            run_part("CIFAR-10 ResNet-56 and ResNet-110",
                     lambda: cifar_bench.main(["--models", "resnet56", "resnet110", *common]))
        if "precision" in args.only:
            run_part("precision per network", lambda: precision_bench.main(["--device", "cuda"]))
        if "voc2007" in args.only:
            run_part("YOLOv1 and SSD300", lambda: bench_train.main(["--device", "cuda"]))


if __name__ == "__main__":
    sys.exit(cli.run(main))
