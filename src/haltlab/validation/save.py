"""Writing a calibration back: checked before the guests boot, never lost after.

A calibration measures real guests for tens of seconds before it writes a
byte, so the profile's place is probed first (by creating a file beside it:
permission bits do not tell, root passes them all and still cannot write to a
read-only mount). If the write fails anyway at the end (a full disk, a mount
gone read-only meanwhile), the measurement is written beside, into the current
directory as `<profile>.calibration.json`, and the error says where; if that
fails too, the error carries the result for the caller to print.
"""

from __future__ import annotations

import os
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.machine.profile import Profile, write_profile
from haltlab.results import check_out_path, write_json_atomic

__all__ = ["MeasurementNotWritten", "check_rewritable", "write_or_keep", "beside_name"]


class MeasurementNotWritten(UserError):
    """The profile could not be rewritten; `result` is the whole measurement and
    `kept_in` the file it went to instead (None: nowhere, print it)."""

    def __init__(self, message: str, result: dict, kept_in: Path | None) -> None:
        super().__init__(message)
        self.result, self.kept_in = result, kept_in


def check_rewritable(path: str | os.PathLike) -> None:
    """A ConfigError naming the profile now if its file cannot be replaced."""
    try:
        check_out_path(path, "profile", directory=False)
    except UserError as e:
        why = str(e).split(": ", 1)[-1]
        raise ConfigError("profile", str(path), f"{why}: calibration rewrites this file "
                                                "(measure without writing, or calibrate a copy)") from None


def beside_name(path: str | os.PathLike) -> Path:
    """Where a measurement goes when its profile cannot take it."""
    return Path.cwd() / f"{Path(path).stem}.calibration.json"


def write_or_keep(calibrated: Profile, path: str | os.PathLike, result: dict) -> None:
    """Rewrite the profile; failing that, keep `result` beside and raise."""
    try:
        write_profile(calibrated, path)
        return
    except OSError as e:
        why = f"profile {path}: cannot write ({e.strerror or e})"
    beside = beside_name(path)
    try:
        write_json_atomic(beside, result | {"written": False})
    except OSError:
        raise MeasurementNotWritten(why, result | {"written": False}, None) from None
    raise MeasurementNotWritten(f"{why}; the measurement is in {beside}", result | {"written": False}, beside)
