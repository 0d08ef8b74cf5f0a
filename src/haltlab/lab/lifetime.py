"""Nothing the lab starts outlives it: children, temp directories, signals.

haltlab can end in three ways while a guest runs, and each is covered:

* An exception or Ctrl-C (SIGINT is KeyboardInterrupt): `Guest.close()` and
  the other clean-ups run in `finally` blocks.
* SIGTERM or SIGHUP: by default Python dies at once and runs no `finally`.
  `terminate_cleanly()` turns the signal into an exception (`Terminated`) for
  as long as an experiment runs, so the experiment's own clean-ups run as for
  Ctrl-C, and then dies by the same signal (the default action, deferred), so
  whoever sent it sees the usual exit status. A Python caller's own `finally`
  blocks outside the experiment do not run then; the `haltlab` command takes
  SIGTERM itself (cli/root.py), and there they do.
* SIGKILL: nothing runs in haltlab. So every child is started by `spawn()` or
  `run()` with `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills the child
  when the thread that started it dies. A child whose parent died before the
  prctl (the usual race: the parent may die between fork and prctl) sees a
  different parent and kills itself. What a killed run leaves on disk, its
  private directory, holds a lock (`flock`) that the run and its QEMU hold for
  as long as either lives; the next run's `sweep_stale()` takes the lock of
  each such directory it finds, and a lock it can take proves the owner dead.

PR_SET_PDEATHSIG follows the *thread* that forked, not the process: a child
must be started from a thread that outlives it (the lab starts every child
from the thread that runs the experiment).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from haltlab import procs

__all__ = ["Terminated", "terminate_cleanly", "die_with_parent", "spawn", "run", "PrivateDir",
           "sweep_stale", "sweep_orphan_files", "pid_alive", "LOCK_NAME", "STALE_AFTER_S"]

LOCK_NAME = "lock"
# A directory without a lock (left by a haltlab from before the locks, or by a
# run killed in the microseconds between creating it and locking it) is judged
# dead only when no process names it and it is at least this old.
STALE_AFTER_S = 60.0



class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived while an experiment ran.

    A BaseException, like KeyboardInterrupt, so `except Exception` in between
    cannot swallow it; the clean-ups in `finally` blocks run on the way out.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


TERMINATING = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Inside: SIGTERM/SIGHUP raise `Terminated`; on the way out, die by that signal.

    Only for a signal that still has its default action, and only in the main
    thread (signal handlers can be set nowhere else): a caller with its own
    handler keeps it (the `haltlab` command takes SIGTERM itself, unwinds the
    same way and exits 143). Nested uses are no-ops. A second signal during
    the clean-up is ignored, so the clean-up (bounded: see runner.GRACE_S)
    finishes.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mine = [s for s in TERMINATING if signal.getsignal(s) is signal.SIG_DFL]

    def handler(signum, _frame):
        for s in mine:
            signal.signal(s, signal.SIG_IGN)
        raise Terminated(signum)

    for s in mine:
        signal.signal(s, handler)
    try:
        yield
    except Terminated as e:
        for s in mine:
            signal.signal(s, signal.SIG_DFL)
        os.kill(os.getpid(), e.signum)  # the default action: die by it now that all is clean
        raise  # not reached unless the signal is blocked
    finally:
        for s in mine:
            signal.signal(s, signal.SIG_DFL)


def die_with_parent():
    """A `preexec_fn` that makes the child die with the thread that forks it."""
    parent = os.getpid()

    def preexec() -> None:  # runs in the child, between fork and exec
        procs.die_with_parent(parent)

    return preexec


def spawn(args: list[str], **kw) -> subprocess.Popen:
    """`subprocess.Popen` for a child that must not outlive haltlab."""
    return subprocess.Popen(args, preexec_fn=die_with_parent(), **kw)


def run(args: list[str], *, timeout_s: float, **kw) -> subprocess.CompletedProcess:
    """`subprocess.run` for a short child that must not outlive haltlab.

    Bounded by `timeout_s`; on a timeout or any exception (Terminated included)
    subprocess.run kills and reaps the child before the exception goes on.
    """
    return subprocess.run(args, preexec_fn=die_with_parent(), timeout=timeout_s, **kw)


class PrivateDir:
    """A temp directory that says whether its owner lives: `<root>/<prefix>XXXXXXXX/`.

    It is made under a hidden name, locked (`flock` on `lock` inside, which
    also records the owner's PID for a reader), and only then renamed to its
    public name, so no directory under the public name is ever unlocked while
    its owner lives. `lock_fd` may be passed to a child (QEMU) so that the lock
    is held for as long as the child lives too. `remove()` deletes it.
    """

    def __init__(self, prefix: str, root: Path | None = None) -> None:
        root = Path(root or tempfile.gettempdir())
        while True:
            staging = Path(tempfile.mkdtemp(prefix=f".{prefix}", dir=root))
            self.lock_fd = os.open(staging / LOCK_NAME, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            os.write(self.lock_fd, f"{os.getpid()}\n".encode())
            self.path = root / staging.name[1:]
            if not self.path.exists():
                os.rename(staging, self.path)
                return
            os.close(self.lock_fd)  # a public name already taken (a leftover): draw again
            shutil.rmtree(staging, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def _named_by_a_process(path: Path) -> bool:
    """Whether any process's command line mentions `path` (a QEMU's -qmp socket does)."""
    needle = os.fsencode(path)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    return True
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return False


def _old(d: Path, now: float) -> bool:
    try:
        return now - d.stat().st_mtime >= STALE_AFTER_S
    except OSError:
        return False


def _dead(d: Path, now: float) -> bool:
    """Whether the run that made `d` is provably gone (it keeps no lock it takes).

    With a lock: whether the lock can be taken. Without one (a haltlab from
    before the locks, or a run killed between making and locking): whether the
    directory is old and no process names it.
    """
    try:
        fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return _old(d, now) and not _named_by_a_process(d)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True  # released when the fd closes below; the directory goes next
    except BlockingIOError:
        return False  # held: its run or its QEMU is alive
    finally:
        os.close(fd)


def sweep_stale(prefix: str, root: Path | None = None) -> list[Path]:
    """Remove the `<prefix>*` directories of runs that are provably dead, and
    their hidden staging twins (`.<prefix>*`, renamed microseconds after they
    are made, so one that is old as well as dead was killed in between);
    return what was removed."""
    root = Path(root or tempfile.gettempdir())
    removed, now = [], time.time()
    try:
        found = sorted([*root.glob(f"{prefix}*"), *root.glob(f".{prefix}*")])
    except OSError:
        return removed
    for d in found:
        if not d.is_dir() or d.is_symlink():
            continue
        if (d.name.startswith(".") and not _old(d, now)) or not _dead(d, now):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (a zombie counts as dead).

    Every thread counts: a killed multi-threaded process (QEMU) shows its
    leader as a zombie while its other threads are still exiting, and those
    still hold its files, and so its locks, until the last one is gone."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        states = [_state(t / "stat") for t in tasks.iterdir()]
    except OSError:
        states = [_state(Path(f"/proc/{pid}/stat"))]
    return any(state not in ("Z", "X", None) for state in states)


def _state(stat: Path) -> str | None:
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def sweep_orphan_files(folder: Path, pattern: str) -> list[Path]:
    """Remove partial files `<name>.<pid>` (written, then renamed into place)
    whose writer no longer exists: a PID that names no process proves it."""
    removed = []
    try:
        found = sorted(folder.glob(pattern))
    except OSError:
        return removed
    for f in found:
        pid = f.name.rsplit(".", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)) and f.is_file():
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed
