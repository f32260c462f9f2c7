"""`make reproduce`, `make reproduce-quick` and the *-all targets: the make targets given, one
after the other, each with --continue (a finished run is left as it is, an interrupted one
resumed), timed; a table of what each did; then `make report` of those runs.

Stop it at any time and start it again: it picks up where it was. --quick runs every target
with tiny limits on the CPU into its own runs folder (runs-quick), the VOC 2007 rows with tiny
detectors on a generated VOC-layout set: an end-to-end check of every row's pipeline in
minutes, whose report is marked as such row by row.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common import cli, report  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.runs import REPO, target_args  # noqa: E402

# --quick: the flags added to every target of a dataset (before the user's ARGS)
QUICK_ARGS = {
    "mnist": "--epochs 1 --limit-train 96 --limit-test 48 --batch-size 32 --device cpu "
             "--no-pretrained",
    "cifar10": "--epochs 1 --limit-train 96 --limit-test 48 --batch-size 32 --device cpu "
               "--no-pretrained",
    "scenes": "--epochs 1 --limit-train 96 --limit-test 48 --batch-size 32 --device cpu "
              "--no-pretrained",
    "voc2007": "--model tiny --epochs 1 --limit-train 8 --limit-test 8 --batch-size 4 "
               "--eval-images 4 --device cpu --workers 0 --no-pretrained",
}
# and where the target sets them: ImageNet networks see 64 px, not 224; a 32-image validation
QUICK_OVERRIDES = {"resize": "--resize 64", "val_split": "--val-split 32"}
QUICK_VOC = dict(trainval=24, test=12, seed=0)   # the generated VOC-layout set


def quick_args(target):
    """The flags --quick adds to `target`."""
    expected = target_args(target) or {}
    return " ".join([QUICK_ARGS[target.split("-", 1)[0]]]
                    + [flags for key, flags in QUICK_OVERRIDES.items() if expected.get(key)])


def run_target(target, args_text, variables):
    """Run `make target` with ARGS and make variables; (exit code, seconds). A target of many
    small runs (the ablations, the sweep) runs on one process whatever NPROC says."""
    if target_args(target) is None:
        if os.environ.get("NPROC"):
            print(f"== {target}: one process (NPROC={os.environ['NPROC']} is for single runs)")
        variables = {**variables, "NPROC": ""}
    command = ["make", "--no-print-directory", target, f"ARGS={args_text}",
               *[f"{name}={value}" for name, value in variables.items()]]
    started = time.time()
    code = subprocess.run(command, cwd=REPO).returncode
    return code, time.time() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", help="make targets of result rows, in order")
    parser.add_argument("--quick", action="store_true",
                        help="tiny limits on the CPU, VOC on a generated set (see above)")
    parser.add_argument("--runs", help="runs folder (default: runs, or runs-quick with --quick)")
    parser.add_argument("--args", default="", help="more flags for every target, as make's ARGS")
    args = parser.parse_args(argv)
    runs = Path(args.runs or ("runs-quick" if args.quick else "runs"))
    variables = {"RUNS": str(runs)}
    if args.quick:
        from voc2007.synthetic import write_synthetic_voc   # only the quick check needs it
        variables["VOC_DIR"] = str(runs / "voc-synthetic")
        write_synthetic_voc(REPO / variables["VOC_DIR"], **QUICK_VOC, log=print)

    results = []
    for target in args.targets:
        flags = " ".join(part for part in ("--continue", quick_args(target) if args.quick
                                           else "", args.args) if part)
        print(f"== make {target} ARGS=\"{flags}\"", flush=True)
        code, seconds = run_target(target, flags, variables)
        if code == 0 and diverged_earlier(runs, target):
            code = 3   # --continue left it alone: say what the row holds, as the first pass did
        results.append((target, code, seconds))
        print(f"== {target}: {describe(code)} in {seconds:.0f}s", flush=True)

    print(f"\n{'target':<34} {'result':<12} {'seconds':>8}")
    for target, code, seconds in results:
        print(f"{target:<34} {describe(code):<12} {seconds:>8.0f}")
    print(f"{'total':<34} {'':<12} {sum(seconds for *_, seconds in results):>8.0f}")
    report.main(["--runs", str(runs)])
    failed = [target for target, code, _ in results if code]
    if failed:
        raise UserError(f"{len(failed)} target(s) did not finish: {', '.join(failed)} "
                        "(their output is above); the others' runs are in place, and a "
                        "new start picks up from there.")


def diverged_earlier(runs, target):
    """Whether the run directory of `target` (the Makefile's $(RUNS)/<dataset>/<rest of the
    target's name>) records a divergence."""
    dataset, name = target.split("-", 1)
    return (Path(runs) / dataset / name / "diverged.json").exists()


def describe(code):
    return {0: "done", 2: "bad input", 3: "diverged", 130: "interrupted"}.get(code,
                                                                           f"exit {code}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
