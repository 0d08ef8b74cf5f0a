"""User-facing errors.

A `UserError` is a mistake in what the user gave haltlab (a profile key, an option
value, a file): the CLI prints its message as one line and exits non-zero, with no
traceback. Anything else that escapes is a bug in haltlab and keeps its traceback.
"""

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input, reported as one line naming the file, field and value."""

    exit_code = 2
