"""Where a sweep's runs execute: a local process pool, or a Dask cluster.

The local pool is made to die with haltlab. Each worker, first thing, asks the
kernel for SIGKILL when its parent dies (`prctl(PR_SET_PDEATHSIG)`, Linux), then
checks that the parent is still the one that started it: a parent killed between
`fork()` and the `prctl()` would otherwise leave the worker orphaned under PID 1
with no signal to come. Workers ignore SIGINT (a ^C reaches the whole process
group; the parent alone decides, and stops them). Leaving `executor()` by any
exception (the CLI turns SIGTERM into one, `cli.root.Terminated`, as ^C is
KeyboardInterrupt) terminates the workers instead of waiting for their runs.

Workers are started with "spawn", not "fork": the parent may have threads (a
progress bar's refresher, Dask's loop), and a fork copies their locks mid-use;
spawn also leaves the parent's signal handlers behind. A spawned worker's parent
is haltlab itself, which is what the `getppid()` check needs (under
"forkserver" it would be the server). PR_SET_PDEATHSIG fires when the *thread*
that forked the child exits: the pool spawns workers from the thread that calls
`submit()`, so submit from the thread that runs the sweep (the run loop does).

The cluster's workers are the cluster's own; haltlab does not stop them.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

from haltlab.errors import UserError

__all__ = ["executor"]

_PR_SET_PDEATHSIG = 1                   # include/uapi/linux/prctl.h
_KILL_GRACE_S = 2.0                     # SIGTERM to SIGKILL for a worker that lingers


@contextmanager
def executor(scheduler: str | None = None, workers: int | None = None,
             timeout_s: float = 10.0) -> Iterator[Executor]:
    """A process pool of `workers` (default: the CPU count), or the executor of
    the Dask cluster at `scheduler`, given up on after `timeout_s` seconds
    without a connection."""
    if scheduler is None:
        with _local_pool(workers or os.cpu_count() or 1) as pool:
            yield pool
    else:
        with _dask(scheduler, timeout_s) as pool:
            yield pool


@contextmanager
def _local_pool(workers: int) -> Iterator[Executor]:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate what has: a run in progress is
    lost (it runs again on resume), a worker is not left behind."""
    # The executor has no public way to stop calls already running; its worker
    # processes are in `_processes` (pid -> multiprocessing.Process).
    procs = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.terminate()
    deadline = time.monotonic() + _KILL_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: the worker dies when haltlab does, however it dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    else:                                   # no PDEATHSIG: poll for the parent instead
        threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:          # the parent died before prctl() took effect
        os._exit(1)


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


@contextmanager
def _dask(address: str, timeout_s: float) -> Iterator[Executor]:
    try:
        from distributed import Client
    except ImportError:
        raise UserError(f"--scheduler {address}: needs the dask extra "
                        "(pip install 'haltlab[dask]')") from None
    try:
        client = Client(address, timeout=timeout_s)
    except OSError as e:
        raise UserError(f"--scheduler {address}: cannot reach the Dask scheduler ({e})") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
