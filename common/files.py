"""Reading and writing run files. Every write goes to a temporary file of its own (a unique name
beside the target, so that two writers never share one) that replaces the target only once
complete and flushed to the disk: the file is fsync'ed before os.replace and its folder after,
so an interrupted run, a killed process or a power loss leaves either the old file or the new
one, never a half-written one. A write the disk refuses (full, read-only) is a WriteFailed
naming the file and the reason; the file it was to replace is left as it was."""
import csv
import errno
import json
import os
import pickle
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

import torch

from common.errors import UserError, describe_error

# What an OSError's errno means for a write, in words a user acts on.
WRITE_REFUSALS = {
    errno.ENOSPC: "no space left on the device (the disk is full)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "the file is too large for the file system",
}
# Errors that only a write can raise: common.training turns them into a WriteFailed wherever
# they come from (TensorBoard's writer thread, say), since they cannot be a fault of the input.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


class WriteFailed(UserError):
    """The disk refused a write: `path` is what was being written, `reason` why, in words."""

    def __init__(self, path, reason):
        super().__init__(f"cannot write to {path}: {reason}.")
        self.path, self.reason = Path(path), reason


def write_failure(error, path):
    """The WriteFailed of an OSError raised while writing `path` (its own file name, when it
    has one, is more precise)."""
    reason = WRITE_REFUSALS.get(error.errno) or describe_error(error)
    return WriteFailed(error.filename or path, reason)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix, a name no other writer uses); on
    success flush it to the disk and move it over `path`."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.partial"
                               f"{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        fsync(temporary)
        os.replace(temporary, path)
        fsync(path.parent)
    except (OSError, RuntimeError) as error:
        refused = os_error_in(error)
        if refused is None:   # not the disk: a bug of the writer
            raise
        raise write_failure(refused, path) from None
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:   # a read-only folder refuses even this; nothing was written there
            pass


def os_error_in(error):
    """The OSError `error` is or follows from: torch.save, its file's write refused, then fails
    again closing the archive, with a RuntimeError ("unexpected pos")."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    return error


def fsync(path):
    """Flush a file's (or a folder's) data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def missing_folders(folder):
    """`folder` and those of its parents that do not exist, deepest first: what making it
    creates, and what remove_if_empty takes away again when nothing came of it."""
    missing = []
    for path in (Path(folder), *Path(folder).absolute().parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def remove_if_empty(folders):
    """Remove `folders` (from missing_folders), deepest first, while nothing was put in them."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:   # not empty (or gone): kept, and its parents with it
            break


def save_torch(obj, path):
    # Through a Python file: a full disk is then an OSError (ENOSPC), where torch's own
    # writer says "unexpected pos".
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        torch.save(obj, handle)


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
    """torch.load with weights_only=True; a missing or unreadable file is a UserError, and so
    is a file that holds Python objects other than tensors (their unpickling could run code).
    `mmap` maps the tensors instead of reading them, for a caller that needs other fields."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if refused:
            raise UserError(
                f"{what} {path} holds Python objects other than tensors and plain containers "
                f"(here {refused.group(1)}). Loading such a file can run code that it carries, "
                "so this suite does not load it. Use a file of tensors: a model's state_dict "
                "saved with torch.save, or a model.pt or checkpoint.pt of this suite.") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
        reason = detail.group(1).strip() if detail else describe_error(error)[:200]
        raise UserError(f"{what} {path} cannot be read ({reason}). It is damaged or not a "
                        "PyTorch file; point to another file or start without it.") from None
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
