"""Sweeps: many runs (seeds x variants x CPU counts) through one executor.

Any `concurrent.futures.Executor` will do: a local process pool by default, or a
Dask distributed cluster's executor (`Client(address).get_executor()`) when one
machine is not enough; `dask[distributed]` is the optional extra `haltlab[dask]`.
Each finished run is appended to a JSON Lines file at once, so an interrupted
sweep resumes where it stopped, and only from rows made with the same inputs.

The parts: `executor` (the pool, which dies with haltlab; Dask addresses),
`store` (the sweep file: header, rows, torn lines, full disks), `lock` (one
sweep per file), `run` (the streaming run loop), `inputs` (model and profile
digests), `ranges` (option lists), `panic` (the panic scenario's sweep),
`flood` (S2's campaign) and `kexec` (S3's shutdown designs over CPU counts and load).
"""

from haltlab.sweep.executor import (check_executor, check_scheduler_address, cpu_count, executor,
                                    worker_count)
from haltlab.sweep.panic import MAX_RUNS, Group, PanicSweep, panic_row
from haltlab.sweep.run import run_items, run_sweep
from haltlab.sweep.store import SweepFile, open_sweep, read_inputs, read_sweep

__all__ = ["executor", "check_executor", "worker_count", "cpu_count", "check_scheduler_address", "run_sweep", "run_items",
           "open_sweep", "read_sweep", "read_inputs", "SweepFile", "PanicSweep", "Group", "panic_row",
           "MAX_RUNS"]
