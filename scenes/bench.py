"""`make bench` for the scenes: ResNet-18 on the 64x64 images (its train.py recipe and flip-crop
augmentation), epochs of our loop against a plain DataLoader loop of torchvision transforms
(RandomCrop with padding 8, RandomHorizontalFlip, ToTensor, Normalize), in one run."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from torchvision import transforms  # noqa: E402

from common import cli, runtime  # noqa: E402
from common.bench import (add_bench_arguments, bench_device, plain_loader, print_results,  # noqa: E402
                          time_loops)
from common.data import DeviceLoader  # noqa: E402
from scenes.data import IMAGE_SIZE, MEAN, STD, load_scenes  # noqa: E402
from scenes.models import MODELS, NUM_CLASSES  # noqa: E402
from scenes.train import AUGMENTATIONS, parse_args  # noqa: E402

FLIP_CROP = AUGMENTATIONS["flip-crop"]
PLAIN_FLIP_CROP = transforms.Compose([
    transforms.RandomCrop(IMAGE_SIZE, padding=FLIP_CROP["crop_padding"]),
    transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    add_bench_arguments(parser)
    args = parser.parse_args(argv)
    recipe = parse_args(["--model", args.model])
    device = bench_device(args)
    train_set, _ = load_scenes(args.data_dir)
    if args.limit_train:
        train_set = train_set.random_subset(args.limit_train)

    ours = DeviceLoader(train_set, batch_size=recipe.batch_size, device=device, train=True,
                        **FLIP_CROP)
    plain = plain_loader(train_set, PLAIN_FLIP_CROP, batch_size=recipe.batch_size,
                         workers=args.workers, device=device)
    results = time_loops(build_model=MODELS[args.model], recipe=recipe, our_loader=ours,
                         plain_loader=plain, device=device, epochs=args.epochs,
                         num_classes=NUM_CLASSES, mean=MEAN, std=STD,
                         compiled=args.compiled)
    print_results(f"scenes {args.model}, 64x64, batch {recipe.batch_size}, "
                  f"{len(train_set):,} images, {runtime.describe_device(device)}, "
                  f"{args.workers} DataLoader workers", results, len(train_set))


if __name__ == "__main__":
    sys.exit(cli.run(main))
