"""`make bench` for CIFAR-10: ResNet-20, -56 and -110 (their train.py recipes, flip-crop
augmentation), epochs of our loop against a plain DataLoader loop of torchvision transforms
(RandomCrop with padding 4, RandomHorizontalFlip, ToTensor, Normalize), and the step alone as
the limit (common/bench.py), in one run."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from torchvision import transforms  # noqa: E402

from cifar10.data import MEAN, STD, load_cifar10  # noqa: E402
from cifar10.models import MODELS  # noqa: E402
from cifar10.train import AUGMENTATIONS, RECIPES  # noqa: E402
from common import cli, runtime  # noqa: E402
from common.bench import (add_bench_arguments, bench_device, plain_loader, print_results,  # noqa: E402
                          time_loops)
from common.data import DeviceLoader  # noqa: E402

PLAIN_FLIP_CROP = transforms.Compose([
    transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "resnet110"],
                        choices=[f"resnet{depth}" for depth in (20, 32, 44, 56, 110)])
    add_bench_arguments(parser)
    args = parser.parse_args(argv)
    device = bench_device(args)
    train_set, _ = load_cifar10(args.data_dir)
    if args.limit_train:
        train_set = train_set.random_subset(args.limit_train)

    for name in args.models:
        recipe = cli.parse_training_args(["--model", name], description="", dataset="cifar10",
                                         models=MODELS, recipes=RECIPES)
        ours = DeviceLoader(train_set, batch_size=recipe.batch_size, device=device, train=True,
                            **AUGMENTATIONS["flip-crop"])
        plain = plain_loader(train_set, PLAIN_FLIP_CROP, batch_size=recipe.batch_size,
                             workers=args.workers, device=device)
        results = time_loops(build_model=MODELS[name], recipe=recipe, our_loader=ours,
                             plain_loader=plain, device=device, epochs=args.epochs,
                             num_classes=10, mean=MEAN, std=STD, compiled=args.compiled)
        print_results(f"CIFAR-10 {name}, batch {recipe.batch_size}, {len(train_set):,} images, "
                      f"{runtime.describe_device(device)}, {args.workers} DataLoader workers",
                      results, len(train_set))
        for loop, seconds in results:
            print(f"  {loop}: {seconds * 50_000 / len(train_set):.2f} s per 50,000 images")


if __name__ == "__main__":
    sys.exit(cli.run(main))
