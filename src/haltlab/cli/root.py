"""The `haltlab` command group, and how every command fails.

click gives the command tree and option parsing; rich gives tables and progress.
Every `UserError`, and every bad option value click finds, becomes one line on
stderr and exit status 2, never a traceback or a usage block; a `ConfigError`
is shown under the flag that set its field (`options.FIELD_FLAGS`).

`main()` (the console script and `python -m haltlab`) also guards the process
edges a CliRunner never sees:

* stdout: a closed stdout (`>&-`) is refused before any work, and a write that
  fails (`> /dev/full`) is one line and exit 2, not a traceback at exit; a
  reader that went away (`| head`) ends the command quietly with status 1.
* SIGTERM is taken as SIGINT is: it raises `SigtermExit` in the main thread, so
  every `with` and `finally` on the way out runs (QEMU killed and reaped, pools
  shut down, temporary directories removed) and the command exits 143.

Notices that library code logs (`logging`, logger `haltlab.*`, INFO and above:
the lab's kernel download) go to stderr as `haltlab: ...` lines, in a log as on
a terminal.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import signal
import sys

import click

from haltlab.errors import ConfigError, UserError

__all__ = ["cli", "main", "SigtermExit"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class SigtermExit(BaseException):
    """SIGTERM arrived: unwind like KeyboardInterrupt, run every cleanup."""


class _StdoutError(UserError):
    """stdout took no more bytes (full disk, a closed pipe)."""

    def __init__(self, e: OSError) -> None:
        self.errno = e.errno
        super().__init__(f"stdout: cannot write ({e.strerror or e})")


class _GuardedStdout(io.RawIOBase):
    """fd 1, with a failed write raised as `_StdoutError` so that it can be
    told from any other OSError, wherever in a command it surfaces."""

    failed = False      # after one failure the rest is dropped: said once, not again at exit

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.failed:
            return len(b)
        try:
            return os.write(1, b)
        except OSError as e:
            self.failed = True
            raise _StdoutError(e) from None

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return os.isatty(1)


def _one_line(message: str) -> str:
    return f"haltlab: error: {' '.join(str(message).split())}"


def _say(message: str) -> None:
    """The error, as the only line on stderr (a progress display that was
    drawing is gone by now: `transient` bars erase themselves)."""
    try:
        sys.stderr.write(_one_line(message) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass                            # no stderr to say it on; the status says it


def _usage_line(e: click.UsageError) -> str:
    where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
    return e.format_message() + where


def _user_message(e: UserError) -> str:
    return render_config_error(e) if isinstance(e, ConfigError) else str(e)


class _StderrLog(logging.Handler):
    """The library's INFO notices (`haltlab.lab` announces a kernel download)
    as `haltlab: ...` lines on whatever stderr is at the time (a CliRunner's
    too), so a log shows them as a terminal does."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"haltlab: {self.format(record)}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


_log = logging.getLogger("haltlab")
_log.setLevel(logging.INFO)
_log.addHandler(_StderrLog())
_log.propagate = False


class _Interrupted(Exception):
    """^C, carried past click's own handler, which would print a blank line
    on stderr before its Abort and leave the error line second."""


class _Group(click.Group):
    """The root group: runs a command and turns every way it can fail on the
    user's input into one line and a status (see the module docstring)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            sys.stdout.flush()
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help())
            rv = 0
        except click.UsageError as e:
            _say(_usage_line(e))
            rv = e.exit_code
        except _StdoutError as e:
            rv = _stdout_failed(e)
        except UserError as e:
            _say(_user_message(e))
            rv = e.exit_code
        except (click.Abort, KeyboardInterrupt, _Interrupted):
            _say("interrupted")
            rv = 130
        except SigtermExit:
            _say("terminated (SIGTERM)")
            rv = 143
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _stdout_failed(e: _StdoutError) -> int:
    if e.errno == errno.EPIPE:          # the reader left: nothing to tell it
        return 1
    _say(str(e))
    return 2


from haltlab.cli.options import render_config_error  # noqa: E402  (after _Group: no cycle)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="haltlab")
def cli() -> None:
    """Model and measure how Linux stops, halts and parks CPUs around panic and kexec.

    Shell completion: eval "$(_HALTLAB_COMPLETE=bash_source haltlab)" (zsh_source, fish_source).
    """


def _on_sigterm(signum, frame) -> None:
    raise SigtermExit()


def _guard_stdout() -> bool:
    """Put the guarded fd 1 in place; False when there is no stdout at all."""
    try:
        os.fstat(1)
    except OSError:
        return False
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_GuardedStdout()), encoding="utf-8",
                                  errors="backslashreplace", write_through=False)
    return True


def main() -> None:
    """The console script: guard the process edges, then run the group."""
    if not _guard_stdout():
        _say("stdout is closed: nowhere to print the result (redirect it to a file or /dev/null)")
        sys.exit(2)
    signal.signal(signal.SIGTERM, _on_sigterm)
    cli.main(prog_name="haltlab")
