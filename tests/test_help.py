"""Issue 18: `--help` shows every default as the selected recipe applies it."""
import pytest

from mnist import train as mnist_train
from voc2007 import train_ssd, train_yolo


@pytest.fixture(autouse=True)
def wide_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")   # argparse wraps no help line


def help_text(parse_args, argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args([*argv, "--help"])
    assert stopped.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_without_a_model_the_defaults_are_the_recipes_listed_below(capsys):
    text = help_text(mnist_train.parse_args, [], capsys)
    assert "None" not in text
    assert "--epochs EPOCHS number of epochs (from the recipe of --model)" in text
    assert "(from the recipe of --model; 0.01 if it sets none)" in text   # --warmup-lr
    assert "recipes (the defaults per --model): lenet epochs 30" in text
    assert "run directory (default: runs/mnist/<model>;" in text


def test_a_models_help_shows_its_recipe_as_applied(capsys):
    text = help_text(mnist_train.parse_args, ["--model", "lenet"], capsys)
    assert "with --warmup-iters only (0.05)" in text and "with --warmup-iters only (constant)" \
        in text
    assert "--scheduler step only (not used by this recipe)" in text   # --step-size
    assert "run directory (default: runs/mnist/lenet;" in text
    text = help_text(mnist_train.parse_args, ["--model", "bn_net"], capsys)
    assert "refused with the others (not used by this recipe)" in text   # momentum under Adam


@pytest.mark.parametrize("parse_args, argv, shown", [
    (train_yolo.parse_args, [],
     ["only (333 467 at --epochs 600: it follows --epochs)", "--warmup-iters only (0.001)",
      "--warmup-iters only (linear)", "(default: runs/voc2007/yolo;", "or cached) (True)"]),
    (train_yolo.parse_args, ["--recipe", "report"],
     ["(default: runs/voc2007/yolo-report;", "--warmup-iters only (not used by this recipe)"]),
    (train_ssd.parse_args, [],
     ["only (255 319 at --epochs 383: it follows --epochs)", "--warmup-iters only (0.0003)",
      "--warmup-iters only (linear)", "(default: runs/voc2007/ssd;"]),
    (train_ssd.parse_args, ["--epochs", "60", "--model", "tiny"],
     ["only (40 50 at --epochs 60: it follows --epochs)", "(default: runs/voc2007/ssd-tiny;"]),
    (train_ssd.parse_args, ["--recipe", "paper"],
     ["(default: runs/voc2007/ssd-paper;", "--warmup-iters only (0.0001)"]),
])
def test_detector_help_shows_derived_milestones_warmup_and_out(capsys, parse_args, argv, shown):
    text = help_text(parse_args, argv, capsys)
    for part in shown:
        assert part in text
