"""`make report` on generated metrics.json files: rows, differences, runs not run or diverged,
and runs that are not their row's recipe."""
import pytest

from common import cli, report, reproduce
from common.files import write_json
from common.runs import target_args


def fake_run(runs, dataset, name, *, classes=10, epochs=3, accuracy=0.5, overrides=None,
             final=None, planned=None):
    """A metrics.json as a finished run of `make <dataset>-<name>` writes it; `planned`: the
    --epochs of each epoch (a run resumed with another --epochs), default all `epochs`."""
    args = {**target_args(f"{dataset}-{name}"), **(overrides or {})}
    per_class = [accuracy] * classes
    planned = planned or [epochs] * epochs
    write_json({"dataset": dataset, "model": args["model"], "args": args,
                "parameters": 1000, "device": "cpu", "history": [
                    {"epoch": epoch, "seconds": 1.0, "planned_epochs": planned[epoch - 1]}
                    for epoch in range(1, epochs + 1)],
                "final": {"train_accuracy": accuracy, "test_accuracy": accuracy, **(final or {})},
                "per_class": {"train_accuracy": per_class, "test_accuracy": per_class},
                "confusion": [[1 if row == col else 0 for col in range(classes)]
                              for row in range(classes)]},
               runs / dataset / name / "metrics.json")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    fake_run(runs, "mnist", "lenet", accuracy=0.9924, epochs=30,
             final={"train_images": 60_000, "test_images": 10_000})
    fake_run(runs, "mnist", "model2-10ep", accuracy=0.9, epochs=1,
             overrides={"epochs": 1, "limit_train": 256},
             final={"train_images": 256, "test_images": 10_000})
    fake_run(runs, "cifar10", "resnet20", accuracy=0.85, epochs=50,
             final={"train_images": 10_000, "test_images": 2_000})
    # five epochs of a 5-epoch cosine schedule, then resumed to 50: not the row's schedule
    fake_run(runs, "cifar10", "resnet32", accuracy=0.8, epochs=50, planned=[5] * 5 + [50] * 45,
             final={"train_images": 50_000, "test_images": 10_000})
    write_json({"epoch": 2, "step": 30, "steps": 100, "lr": 0.1, "loss": 1e12},
               runs / "cifar10" / "vgg16" / "diverged.json")
    assert report.main(["--runs", str(runs)]) is None
    return runs, (runs / "REPORT.md").read_text()


def line_of(text, start):
    """The first line (of a text or a list of lines) that starts with `start`."""
    lines = text.splitlines() if isinstance(text, str) else text
    return next(line for line in lines if line.startswith(start))


def test_a_finished_run_stands_beside_the_report_and_the_paper(built):
    _, text = built
    test_row = text.splitlines()[text.splitlines().index(line_of(text, "| LeNet | train |")) + 1]
    # ours 99.24, the report's 98.92 (+0.32), LeNet-5's paper 99.05 (+0.19), no notes
    assert "| 99.24 | 98.92 | +0.32 | 99.05 | +0.19 |" in test_row
    train_row = line_of(text, "| LeNet | train |")
    assert "| 30 |  | [curves](mnist/lenet/curves.png) [confusion](mnist/lenet/confusion.png) |" \
        in train_row


def test_rows_without_a_run_name_their_target(built):
    _, text = built
    assert "| AlexNet | not run: `make mnist-alexnet` |" in text
    assert "not run: `make voc2007-ssd`" in text and "not run: `make scenes-lenet`" in text


def test_a_diverged_run_says_where(built):
    _, text = built
    assert "diverged at epoch 2, step 30 (`make cifar10-vgg16`)" in text


def test_a_quick_run_is_marked_and_shows_its_real_epochs(built):
    _, text = built
    row = line_of(text, "| 4 | Model-2 | 10 |")
    assert "| 90.00 | 99.09 | -9.09 |" in row
    assert "| 1 | not the row's recipe: --epochs 1 (the target: 10); --limit-train 256 (the " \
           "target: unset); on 256 of 60,000 train images |" in row


def test_a_run_on_a_subset_of_the_data_is_marked(built):
    _, text = built
    row = line_of(text, "| ResNet-20 | train |")
    assert "on 10,000 of 50,000 train images; on 2,000 of 10,000 test images" in row


def test_every_result_row_of_the_reports_has_a_line(built):
    runs, text = built
    assert text.count("not run: `make ") + text.count("diverged at epoch") >= 40
    assert (runs / "report.png").stat().st_size > 10_000
    assert "![ours against the reports and the papers](report.png)" in text
    assert "4 of " in text and "rows have a finished run" in text


def test_a_cosine_run_resumed_with_other_epochs_is_marked(built):
    _, text = built
    row = line_of(text, "| ResNet-32 | train |")
    assert "not the row's recipe: --epochs changed during the run (5, then 50), and its cosine " \
           "schedule with it" in row


def test_reproduce_says_diverged_for_a_run_that_diverged_on_an_earlier_pass(tmp_path, capsys,
                                                                           monkeypatch):
    runs = tmp_path / "runs"
    write_json({"epoch": 3, "step": 7, "loss": 1e4}, runs / "scenes" / "custom-lenet" /
               "diverged.json")
    # --continue leaves a diverged run alone and exits 0; both rows "ran" in no time here
    monkeypatch.setattr(reproduce, "run_target", lambda target, flags, variables: (0, 0.0))
    monkeypatch.setattr(reproduce.report, "main", lambda argv: None)
    assert cli.run(reproduce.main, ["scenes-custom-lenet", "scenes-lenet", "--runs",
                                    str(runs)]) == 2
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert line_of(table, "scenes-custom-lenet ").split()[1] == "diverged"
    assert line_of(table, "scenes-lenet ").split()[1] == "done"
    assert "1 target(s) did not finish: scenes-custom-lenet" in captured.err
