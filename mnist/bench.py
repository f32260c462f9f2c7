"""`make bench` for MNIST: one model (default LeNet, its train.py recipe), epochs of our loop
against a plain DataLoader loop of torchvision transforms on the same data, in one run."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from torchvision import transforms  # noqa: E402

from common import cli, runtime  # noqa: E402
from common.bench import (add_bench_arguments, bench_device, plain_loader, print_results,  # noqa: E402
                          time_loops)
from common.data import DeviceLoader  # noqa: E402
from mnist.data import MEAN, STD, load_mnist  # noqa: E402
from mnist.models import INPUT_SIZE, MODELS  # noqa: E402
from mnist.train import RECIPES  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet")
    add_bench_arguments(parser)
    args = parser.parse_args(argv)
    recipe = cli.parse_training_args(["--model", args.model], description="", dataset="mnist",
                                     models=MODELS, recipes=RECIPES)
    device = bench_device(args)
    train_set, _ = load_mnist(args.data_dir, pad_to=INPUT_SIZE.get(args.model))
    if args.limit_train:
        train_set = train_set.random_subset(args.limit_train)

    ours = DeviceLoader(train_set, batch_size=recipe.batch_size, device=device, train=True)
    plain = plain_loader(train_set, transforms.Compose([transforms.ToTensor(),
                                                        transforms.Normalize(MEAN, STD)]),
                         batch_size=recipe.batch_size, workers=args.workers, device=device)
    results = time_loops(build_model=MODELS[args.model], recipe=recipe, our_loader=ours,
                         plain_loader=plain, device=device, epochs=args.epochs,
                         num_classes=10, mean=MEAN, std=STD, compiled=args.compiled)
    print_results(f"MNIST {args.model}, batch {recipe.batch_size}, {len(train_set):,} images, "
                  f"{runtime.describe_device(device)}, {args.workers} DataLoader workers",
                  results, len(train_set))


if __name__ == "__main__":
    sys.exit(cli.run(main))
