"""Where a sweep's runs execute: a local process pool, or a Dask cluster.

The local pool is made to die with haltlab. Each worker, first thing, asks the
kernel for SIGKILL when its parent dies (`prctl(PR_SET_PDEATHSIG)`, Linux), then
checks that the parent is still the one that started it: a parent killed between
`fork()` and the `prctl()` would otherwise leave the worker orphaned under PID 1
with no signal to come. Workers ignore SIGINT (a ^C reaches the whole process
group; the parent alone decides, and stops them). Leaving `executor()` by any
exception (the CLI turns SIGTERM into one, `cli.root.SigtermExit`, as ^C is
KeyboardInterrupt) terminates the workers instead of waiting for their runs.

Workers are started with "spawn", not "fork": the parent may have threads (a
progress bar's refresher, Dask's loop), and a fork copies their locks mid-use;
spawn also leaves the parent's signal handlers behind. A spawned worker's parent
is haltlab itself, which is what the `getppid()` check needs (under
"forkserver" it would be the server). PR_SET_PDEATHSIG fires when the *thread*
that forked the child exits: the pool spawns workers from the thread that calls
`submit()`, so submit from the thread that runs the sweep (the run loop does).

A Dask address is checked before any work, with distributed's own parser (the
forms it takes: tcp://HOST:PORT, HOST:PORT, tls://, ws://, wss://, and inproc://
for a cluster in this process), and anything `Client()` raises becomes one line.
The cluster's workers are the cluster's own; haltlab does not stop them.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

from haltlab import procs
from haltlab.errors import ConfigError

__all__ = ["executor", "check_executor", "worker_count", "cpu_count", "check_scheduler_address", "slots"]

_KILL_GRACE_S = 2.0                     # SIGTERM to SIGKILL for a worker that lingers


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask), not the machine's."""
    if hasattr(os, "process_cpu_count"):            # Python 3.13
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def worker_count(requested: int | None, runs: int) -> tuple[int, str | None]:
    """How many local workers for `runs` runs, and a note when fewer than asked.

    More workers than CPUs only share them, and more than runs sit idle: both
    cost a process each (a spawned worker imports the model, about 0.1 s)."""
    if requested is not None and requested < 1:
        raise ConfigError("workers", requested, "must be at least 1")
    cpus = cpu_count()
    n = max(1, min(requested or cpus, cpus, runs))
    if requested is not None and n < requested:
        return n, f"{n} workers, not {requested}: {runs} runs to do on {cpus} CPUs"
    return n, None


def slots(pool: Executor) -> int:
    """How many runs `pool` works on at once (set by `executor()`); the run loop
    keeps about twice that many submitted, never the whole sweep."""
    return getattr(pool, "haltlab_slots", None) or getattr(pool, "_max_workers", None) or 4


def check_executor(scheduler: str | None = None, workers: int | None = None, timeout_s: float = 10.0) -> None:
    """Refuse what `executor()` would refuse, before any work or file."""
    if not 0 < timeout_s < math.inf:
        raise ConfigError("scheduler_timeout_s", timeout_s, "must be a positive number of seconds")
    if workers is not None and workers < 1:
        raise ConfigError("workers", workers, "must be at least 1")
    if scheduler is not None:
        check_scheduler_address(scheduler)
        if workers is not None:     # the cluster's workers are the cluster's; saying so beats ignoring it
            raise ConfigError("workers", workers, "sets local worker processes; with a Dask scheduler "
                              "the cluster has its own workers: leave it out")


@contextmanager
def executor(scheduler: str | None = None, workers: int | None = None,
             timeout_s: float = 10.0) -> Iterator[Executor]:
    """A process pool of `workers` (default: the CPU count), or the executor of
    the Dask cluster at `scheduler`, given up on after `timeout_s` seconds
    without a connection."""
    check_executor(scheduler, workers, timeout_s)
    if scheduler is None:
        with _local_pool(workers or cpu_count()) as pool:
            yield pool
    else:
        with _dask(scheduler, timeout_s) as pool:
            yield pool


@contextmanager
def _local_pool(workers: int) -> Iterator[Executor]:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
    pool.haltlab_slots = workers
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
        procs.die_with_parent(parent_pid)
    else:                                   # no PDEATHSIG: poll for the parent instead
        threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
        if os.getppid() != parent_pid:      # the parent died already
            os._exit(1)


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def check_scheduler_address(address: str) -> str:
    """`address` if distributed can dial it, else a one-line `ConfigError`."""
    try:
        from distributed.comm.addressing import parse_address
        from distributed.comm.registry import get_backend
    except ImportError:
        raise ConfigError("scheduler", address, "needs the dask extra (pip install 'haltlab[dask]')") from None
    forms = "give tcp://HOST:PORT (or HOST:PORT), tls://, ws:// or wss://HOST:PORT"
    if not address.strip():
        raise ConfigError("scheduler", address, f"empty; {forms}")
    scheme, location = parse_address(address)
    try:
        backend = get_backend(scheme)
    except ValueError:
        raise ConfigError("scheduler", address, f"unknown scheme {scheme!r}; {forms}") from None
    if scheme == "inproc":                  # a cluster in this process; no host or port
        return address
    try:
        host, port = backend.get_address_host_port(location)
    except NotImplementedError:
        raise ConfigError("scheduler", address, f"scheme {scheme!r} is not supported here; {forms}") from None
    except (ValueError, TypeError) as e:
        why = "the port is not a number" if "invalid literal for int()" in str(e) else str(e)
        raise ConfigError("scheduler", address, f"{why}; {forms}") from None
    if not host:
        raise ConfigError("scheduler", address, f"no host; {forms}")
    if not 0 < port < 65536:
        raise ConfigError("scheduler", address, f"port {port} is not 1-65535")
    return address


@contextmanager
def _dask(address: str, timeout_s: float) -> Iterator[Executor]:
    from distributed import Client
    try:
        client = Client(address, timeout=timeout_s)
    except Exception as e:              # whatever it is, it is about the cluster the user named
        raise ConfigError("scheduler", address,
                          f"cannot reach the Dask scheduler ({' '.join(str(e).split()) or type(e).__name__})") from None
    try:
        pool = client.get_executor()
        pool.haltlab_slots = max(1, sum(client.nthreads().values()))
        yield pool
    finally:
        client.close()
