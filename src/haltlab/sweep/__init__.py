"""Sweeps: many runs (seeds x variants x CPU counts) through one executor.

Any `concurrent.futures.Executor` will do: a local process pool by default, or a
Dask distributed cluster's executor (`Client(address).get_executor()`) when one
machine is not enough; `dask[distributed]` is the optional extra `haltlab[dask]`.

The parts: `executor` (the pool, which dies with haltlab; Dask addresses) and `store` (the
sweep file and its run loop).
"""

from haltlab.sweep.executor import check_executor, check_scheduler_address, executor
from haltlab.sweep.store import read_sweep, run_sweep

__all__ = ["executor", "check_executor", "check_scheduler_address", "run_sweep", "read_sweep"]
