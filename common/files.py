"""Reading and writing run files. Every write goes to a temporary file that replaces the target
only once complete, so an interrupted run never leaves a half-written file behind."""
import csv
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch

from common.errors import UserError, describe_error


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); move it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_torch(obj, path):
    with atomic_path(path) as temporary:
        torch.save(obj, temporary)


def write_json(obj, path):
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(obj, indent=1) + "\n")


def write_text(text, path):
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_csv(header, rows, path):
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def save_figure(figure, path):
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight")


def load_torch(path, what, mmap=False):
    """torch.load with weights_only=True; a missing or unreadable file is a UserError.
    `mmap` maps the tensors instead of reading them, for a caller that needs other fields."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises many types for a damaged file
        raise UserError(f"{what} {path} cannot be read ({describe_error(error)[:300]}). It is "
                        "damaged or not a PyTorch file; point to another file or start without "
                        "it.") from None


def read_json(path, what):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist.") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{what} {path} cannot be read: {describe_error(error)}") from None
