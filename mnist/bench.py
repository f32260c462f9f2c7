"""`make bench` for MNIST: one model (default LeNet, its train.py recipe), epochs of our loop
against a plain torchvision DataLoader loop on the same data, timed in one run."""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision import transforms  # noqa: E402

from common import cli, runtime  # noqa: E402
from common.bench import print_results, time_loops  # noqa: E402
from common.data import DeviceLoader  # noqa: E402
from mnist.data import MEAN, STD, load_mnist  # noqa: E402
from mnist.models import INPUT_SIZE, MODELS  # noqa: E402
from mnist.train import RECIPES  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet")
    parser.add_argument("--epochs", type=cli.positive_int, default=1,
                        help="timed epochs per loop, after one warm-up epoch (default: 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "./data"))
    parser.add_argument("--workers", type=cli.nonnegative_int, default=min(8, os.cpu_count()),
                        help="DataLoader worker processes of the plain loop (default: %(default)s)")
    parser.add_argument("--compile", action="store_true", help="also time our loop compiled")
    args = parser.parse_args(argv)
    recipe = cli.parse_training_args(["--model", args.model], description="", dataset="mnist",
                                     models=MODELS, recipes=RECIPES)
    device, _ = runtime.setup(args.device)

    size = INPUT_SIZE.get(args.model, 28)
    train_set, _ = load_mnist(args.data_dir, pad_to=size)
    our_loader = DeviceLoader(train_set, batch_size=recipe.batch_size, device=device, mean=MEAN,
                              std=STD, train=True, channels_last=device.type == "cuda")
    steps = [transforms.Pad((size - 28) // 2)] if size != 28 else []
    plain_set = torchvision.datasets.MNIST(
        args.data_dir, train=True,
        transform=transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]))
    plain_loader = torch.utils.data.DataLoader(
        plain_set, batch_size=recipe.batch_size, shuffle=True, num_workers=args.workers,
        pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)

    results = time_loops(build_model=MODELS[args.model], recipe=recipe, our_loader=our_loader,
                         plain_loader=plain_loader, device=device, epochs=args.epochs,
                         compile_too=args.compile, num_classes=10)
    print_results(f"MNIST {args.model}, batch {recipe.batch_size}, {len(train_set):,} images, "
                  f"{runtime.describe_device(device)}, {args.workers} DataLoader workers",
                  results, len(train_set))


if __name__ == "__main__":
    sys.exit(cli.run(main))
