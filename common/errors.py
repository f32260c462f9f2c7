"""The two failures every script turns into an exit code (common.cli.run): a mistake the user
can fix, and a training run that diverged. Any module may raise them; none needs the CLI."""


class UserError(Exception):
    """A mistake the user can fix (missing data, bad file, bad flag): one paragraph, exit code 2."""


class Diverged(Exception):
    """The loss became NaN or infinite, or exploded: exit code 3, the last good checkpoint
    stays. `where` holds the epoch, step and learning rate it happened at."""

    def __init__(self, message, where=None):
        super().__init__(message)
        self.where = where or {}


def describe_error(error):
    """An exception as one line, 'Type: message', for quoting inside a UserError."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def user_message(error):
    """The text of a UserError. One raised in a DataLoader worker process reaches the main
    process wrapped in the worker's traceback, whose last line holds the message."""
    text = str(error)
    marker = f"{UserError.__name__}: "
    if "Original Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text
