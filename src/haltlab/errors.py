"""User-facing errors.

A `UserError` is a mistake in what the user gave haltlab (a profile key, an option
value, a file): the CLI prints its message as one line and exits non-zero, with no
traceback. Anything else that escapes is a bug in haltlab and keeps its traceback.

Library code does not know the command line. A bad value of a config field is a
`ConfigError` naming the *field* (`observe_ns`, `panic_cpu`); the CLI, which
alone knows which flag fills which field, re-renders it with the flag the user
typed (`haltlab.cli.options.FIELD_FLAGS`). A caller of the Python API sees the
field name instead.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["UserError", "ConfigError"]


class UserError(Exception):
    """Bad input, reported as one line naming the file, field and value."""

    exit_code = 2


class ConfigError(UserError):
    """A config field with a value haltlab cannot take.

    `field` is the dataclass field (or profile key) and `value` its value as the
    library holds it; `why` says what is wrong, in words that hold whichever
    name the field is shown under.
    """

    def __init__(self, field: str, value: Any, why: str) -> None:
        self.field, self.value, self.why = field, value, why
        super().__init__(self.render())

    def __reduce__(self):
        """Pickled by its fields (raised in a sweep worker, re-raised in the parent)."""
        return (type(self), (self.field, self.value, self.why))

    def render(self, name: str | None = None,
               show: Callable[[Any], str] | None = None) -> str:
        """The one-line message, under `name` (a flag) with `show` formatting the
        value (a flag in seconds for a field in ns)."""
        shown = show(self.value) if show is not None else _show(self.value)
        return f"{name or self.field} {shown}: {self.why}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if value == "" or value != value.strip() else value
    return str(value)
