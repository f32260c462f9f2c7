"""`make report` on generated metrics.json files: the states of a row's run (the row, partial,
another recipe, diverged, interrupted, unreadable, not run), what the user changed as opposed to
what followed from it, each row against the figures of its own recipe; `make report` and the
Makefile through make."""
import contextlib
import io
import os
import shlex
import subprocess

import pytest

from common import cli, report, reproduce
from common.files import write_json
from common.runs import REPO, target_args, target_recipe


def fake_run(runs, dataset, name, *, classes=10, epochs=3, accuracy=0.5, overrides=None,
             given=None, final=None, planned=None, extra_words=()):
    """A metrics.json as a finished run of `make <dataset>-<name> ARGS="<extra_words>"` writes
    it, `overrides` then set in its args; `given` its given_flags (None: a run from before they
    were recorded); `planned`: the --epochs of each epoch (a run resumed with another
    --epochs), default all `epochs`."""
    args = {**target_recipe(f"{dataset}-{name}").args(extra_words), **(overrides or {})}
    per_class = [accuracy] * classes
    planned = planned or [epochs] * epochs
    metrics = {"dataset": dataset, "model": args["model"], "args": args,
               "parameters": 1000, "device": "cpu", "history": [
                   {"epoch": epoch, "seconds": 1.0, "planned_epochs": planned[epoch - 1]}
                   for epoch in range(1, epochs + 1)],
               "final": {"train_accuracy": accuracy, "test_accuracy": accuracy,
                         **(final or {})},
               "per_class": {"train_accuracy": per_class, "test_accuracy": per_class},
               "confusion": [[1 if row == col else 0 for col in range(classes)]
                             for row in range(classes)]}
    if given is not None:
        metrics["given_flags"] = ["out", "model", *given]
    write_json(metrics, runs / dataset / name / "metrics.json")
    return metrics


def fake_detector_run(runs, name, extra_words, given, test_map=0.1):
    args = target_recipe(f"voc2007-{name}").args(extra_words)
    metrics = {"dataset": "voc2007", "model": args["model"], "args": args,
               "detector": name.split("-")[0], "parameters": 1000, "device": "cpu",
               "history": [{"epoch": epoch, "seconds": 1.0} for epoch in range(1, 4)],
               "final": {"test_map": test_map, "trainval_map": 0.2, "test_images": 4_952,
                         "trainval_images": 5_011},
               "per_class": {"test_ap": [test_map] * 20, "trainval_ap": [0.2] * 19 + [None]}}
    if given is not None:
        metrics["given_flags"] = given
    write_json(metrics, runs / "voc2007" / name / "metrics.json")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    full = {"train_images": 60_000, "test_images": 10_000}
    fake_run(runs, "mnist", "lenet", accuracy=0.9924, epochs=30, final=full, given=[])
    fake_run(runs, "mnist", "model2-10ep", accuracy=0.9, epochs=1,
             extra_words=["--epochs", "1", "--limit-train", "256"],
             given=["epochs", "limit_train"], final={"train_images": 256, "test_images": 10_000})
    fake_run(runs, "mnist", "model1-sgd", accuracy=0.95, epochs=10, final=full, given=["lr"],
             extra_words=["--lr", "0.1"])
    # a metrics.json of the wrong shape, and a diverged.json without its epoch
    metrics = fake_run(runs, "mnist", "alexnet", given=[], final=full)
    metrics["final"]["test_accuracy"] = "high"
    write_json(metrics, runs / "mnist" / "alexnet" / "metrics.json")
    write_json({"step": 30, "loss": 1e12}, runs / "mnist" / "bn-net" / "diverged.json")
    # the right shape for common.rundir, but not the report's ten per-class figures
    metrics = fake_run(runs, "mnist", "model2-20ep", given=[], final=full, epochs=20)
    metrics["per_class"]["test_accuracy"] = [0.5] * 9
    write_json(metrics, runs / "mnist" / "model2-20ep" / "metrics.json")
    fake_run(runs, "cifar10", "resnet20", accuracy=0.85, epochs=50, given=[],
             final={"train_images": 10_000, "test_images": 2_000})
    # five epochs of a 5-epoch cosine schedule, then resumed to 50: not the row's schedule
    fake_run(runs, "cifar10", "resnet32", accuracy=0.8, epochs=50, planned=[5] * 5 + [50] * 45,
             final={"train_images": 50_000, "test_images": 10_000})
    write_json({"epoch": 2, "step": 30, "steps": 100, "lr": 0.1, "loss": 1e12},
               runs / "cifar10" / "vgg16" / "diverged.json")
    (runs / "cifar10" / "alexnet").mkdir(parents=True)
    (runs / "cifar10" / "alexnet" / "checkpoint.pt").write_bytes(b"")
    # the user wrote --model tiny --epochs 3: the milestones and --pretrained followed from it
    tiny = ["--model", "tiny", "--epochs", "3"]
    fake_detector_run(runs, "yolo", tiny, given=["out", "data_dir", "model", "epochs"])
    fake_detector_run(runs, "yolo-report", ["--recipe", "report", *tiny], given=None)
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        assert cli.run(report.main, ["--runs", str(runs)]) == 0
    (runs / "stderr.txt").write_text(printed.getvalue())
    return runs, (runs / "REPORT.md").read_text()


def line_of(text, start):
    """The first line (of a text or a list of lines) that starts with `start`."""
    lines = text.splitlines() if isinstance(text, str) else text
    return next(line for line in lines if line.startswith(start))


def test_a_finished_run_is_the_row_beside_the_report_and_another_recipe_in_parentheses(built):
    _, text = built
    test_row = text.splitlines()[text.splitlines().index(line_of(text, "| LeNet | train |")) + 1]
    # ours 99.24, the report's 98.92 (+0.32); LeNet-5's paper (another recipe) uncompared
    assert "| 99.24 | 98.92 | +0.32 | (99.05) |  |" in test_row
    train_row = line_of(text, "| LeNet | train |")
    assert "| 30 |  | [curves](mnist/lenet/curves.png) [confusion](mnist/lenet/confusion.png) |" \
        in train_row


def test_rows_without_a_run_name_their_target(built):
    _, text = built
    assert "| AlexNet | not run: `make cifar10-alexnet` |" not in text   # it has a checkpoint
    assert "not run: `make voc2007-ssd`" in text and "not run: `make scenes-lenet`" in text
    assert "interrupted: `make cifar10-alexnet ARGS=--resume` goes on" in text


def test_a_diverged_run_says_where(built):
    _, text = built
    assert "diverged at epoch 2, step 30 (`make cifar10-vgg16`)" in text


def test_a_partial_run_is_marked_where_its_figure_is(built):
    _, text = built
    row = line_of(text, "| 4 | Model-2 | 10 |")
    assert "| 90.00 (partial) | 99.09 | (-9.09) |" in row
    assert "| 1 | --epochs 1 (the target: 10); --limit-train 256; on 256 of 60,000 train " \
           "images |" in row


def test_a_run_of_another_recipe_is_marked_where_its_figure_is(built):
    _, text = built
    row = line_of(text, "| 1 | Model-1 | 10 |")
    assert "| 95.00 (other recipe) | 97.96 | (-2.96) |" in row
    assert "--lr 0.1 (the target: 0.01)" in row


def test_a_run_on_a_subset_of_the_data_is_partial(built):
    _, text = built
    row = line_of(text, "| ResNet-20 | train |")
    assert "on 10,000 of 50,000 train images; on 2,000 of 10,000 test images" in row
    test_row = text.splitlines()[text.splitlines().index(row) + 1]
    assert "| 85.00 (partial) | 75.02 | (+9.98) | (91.25) |  |" in test_row


def test_unreadable_runs_are_skipped_with_the_file_and_what_is_wrong(built):
    runs, text = built
    assert (f"| AlexNet | unreadable: {runs}/mnist/alexnet/metrics.json: "
            "'final.test_accuracy' is a string (\"high\"), not a number.") in text
    assert f"unreadable: {runs}/mnist/bn-net/diverged.json: it has no 'epoch'." in text
    assert (f"| Model-2 | 20 | SGD | 0.01 | 0.9 | unreadable: "
            f"{runs}/mnist/model2-20ep/metrics.json: "
            "'per_class.test_accuracy' is a list, not a list of 10 fractions.") in text
    skipped = (runs / "stderr.txt").read_text().splitlines()   # one line each, and on it went
    assert skipped == [f"skipped: {runs}/mnist/alexnet/metrics.json: 'final.test_accuracy' is "
                       "a string (\"high\"), not a number.",
                       f"skipped: {runs}/mnist/model2-20ep/metrics.json: "
                       "'per_class.test_accuracy' is a list, not a list of 10 fractions.",
                       f"skipped: {runs}/mnist/bn-net/diverged.json: it has no 'epoch'."]


def test_the_headline_counts_only_the_runs_that_are_their_row(built):
    runs, text = built
    assert text.count("not run: `make ") >= 40
    assert (runs / "report.png").stat().st_size > 10_000
    assert "![ours against the reports and the papers](report.png)" in text
    headline = line_of(text, "1 of ")
    assert headline.startswith("1 of 70 rows have a run that is the row")
    for part in ("2 partial", "4 of another recipe", "1 diverged", "1 interrupted",
                 "3 unreadable"):
        assert part in headline


def test_a_cosine_run_resumed_with_other_epochs_is_another_recipe(built):
    _, text = built
    row = line_of(text, "| ResNet-32 | train |")
    assert "--epochs changed during the run (5, then 50), and its cosine schedule with it" in row
    test_row = text.splitlines()[text.splitlines().index(row) + 1]
    assert "80.00 (other recipe)" in test_row


def test_only_what_the_user_changed_is_reported_not_what_followed(built):
    _, text = built
    for name in ("yolo", "yolo-report"):   # given_flags recorded, and an older run without
        notes = line_of(text[text.index(f"`make voc2007-{name}`"):], "**other recipe:**")
        assert "--model tiny (the target: " in notes and "--epochs 3 (the target: " in notes
        assert "--milestones" not in notes and "--pretrained" not in notes


def test_each_detector_row_is_compared_with_the_figure_of_its_recipe(built):
    _, text = built
    paper_row = line_of(text[text.index("`make voc2007-yolo`"):], "test mAP")
    assert paper_row.startswith("test mAP 10.00 (other recipe): paper 63.4 (ours - paper: "
                                "(-53.40))")
    assert "report" not in paper_row
    tutorial_row = line_of(text[text.index("`make voc2007-yolo-report`"):], "test mAP")
    assert tutorial_row.startswith("test mAP 10.00 (other recipe): report 2.61 (ours - report: "
                                   "(+7.39)), paper (63.4)")
    assert "not run: `make voc2007-ssd-paper`; paper 68.0" in text


def test_no_run_in_the_runs_folder_says_so(tmp_path, capsys):
    assert cli.run(report.main, ["--runs", str(tmp_path / "runz")]) == 2
    assert "no run found: there is no folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.run(report.main, ["--runs", str(tmp_path / "empty")]) == 2
    assert f"no run found in {tmp_path / 'empty'}" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "REPORT.md").exists()


def make(*words, stdin=""):
    return subprocess.run(["make", "--no-print-directory", *words], cwd=REPO, text=True,
                          capture_output=True, input=stdin, env={**os.environ, "NPROC": ""})


def test_the_makefile_keeps_paths_with_spaces_whole():
    def command(*words):
        return shlex.split(make("-n", *words, "SCENES_DIR=/tmp/a dir", "RUNS=my runs",
                                "PYTHON=py").stdout.replace("\\\n", " "))
    words = command("scenes-lenet")
    assert words[words.index("--out") + 1] == "my runs/scenes/lenet"
    assert words[words.index("--data-dir") + 1] == "/tmp/a dir"
    sweep = command("scenes-lenet-lr-sweep")
    assert sweep[sweep.index("--out") + 1] == "my runs/scenes/lenet-lr-sweep"
    assert sweep[sweep.index("--data-dir") + 1] == "/tmp/a dir"
    assert command("report") == ["py", "-m", "common.report", "--runs", "my runs"]
    reproduce_words = command("mnist-all")
    assert reproduce_words[reproduce_words.index("--runs") + 1] == "my runs"


def test_a_mistyped_target_points_to_make_help_and_nproc_runs_torchrun():
    result = make("mnist-lenett")
    assert result.returncode == 2 and "`make help` lists them" in result.stderr
    words = shlex.split(make("-n", "cifar10-resnet110", "NPROC=4", "PYTHON=py").stdout)
    assert words[:5] == ["py", "-m", "torch.distributed.run", "--standalone",
                         "--nproc_per_node=4"]
    assert words[5] == "cifar10/train.py"
    refused = make("-n", "mnist-ablations", "NPROC=4", "PYTHON=py")
    assert refused.returncode == 2 and "run it without NPROC" in refused.stderr


def test_make_clean_never_deletes_a_run():
    commands = make("-n", "clean", "RUNS=my runs").stdout
    assert '"my runs/REPORT.md"' in commands and '"my runs/.tensorboard"' in commands
    assert not any(shlex.split(line)[-1] == "my runs" for line in commands.splitlines()
                   if line.startswith("rm"))
    assert make("clean-runs", "RUNS=/nonexistent").stdout.endswith("kept "
                                                                            "/nonexistent\n")


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


def test_target_args_of_a_target_that_is_not_one_run():
    assert target_args("mnist-ablations") is None and target_args("report") is None
