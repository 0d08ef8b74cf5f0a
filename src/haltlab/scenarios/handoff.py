"""A deep looping model for the explorer: two CPUs hand a turn back and forth.

    Result: Always (the rounds end, each CPU takes every other turn)

Not a kernel path: a stand-in with the shape that makes explorations deep, the
shape of a console hand-over (S2's printk): the CPU whose turn it is does its
work and passes the turn; the other spins on shared memory meanwhile, reading
the turn and a second flag (`busy`) in a loop, so its spin is a cycle of two
states, not a self-loop. Each round adds a few levels to the search, so
`rounds=100` gives a depth-first search about 800 choices deep, where the race
(`panic_race`) is 20-100 deep. `benchmarks/bench_explorer.py` measures replays
on it; `tests/engine/test_reach.py` checks that reaching states again gives the
same exploration on it as replaying from the root.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from haltlab.engine.explorer import ExplorerDriver
from haltlab.engine.ops import READ_ONCE, WRITE_ONCE, set_bit
from haltlab.engine.run import Run
from haltlab.errors import ConfigError
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile

__all__ = ["HandoffConfig", "make_run", "all_rounds_done"]


@dataclass(frozen=True)
class HandoffConfig:
    rounds: int = 100
    profile: str = "kvm-x86"

    def validate(self) -> None:
        if self.rounds < 1:
            raise ConfigError("rounds", self.rounds, "must be at least 1")


class _Shared:
    """The two variables, in the machine's memory (which the fingerprint holds);
    this holder is a fixed name, as the kernel is."""

    def __init__(self, machine: Machine) -> None:
        self.turn = machine.memory.var("turn", 0)
        self.busy = machine.memory.var("busy", 0)
        self.done = machine.memory.var("done", 0)

    def __fingerprint__(self) -> str:
        return "handoff"


async def take_turns(sh: _Shared, me: int, rounds: int):
    """Wait for my turn (spinning on `turn` and `busy`), work, pass the turn."""
    i = 0
    while i < rounds:
        while True:
            if await READ_ONCE(sh.turn) == me:
                break
            await READ_ONCE(sh.busy)            # the second read makes the spin a 2-cycle
        await WRITE_ONCE(sh.busy, 1)
        await WRITE_ONCE(sh.busy, 0)
        await WRITE_ONCE(sh.turn, 1 - me)
        i += 1
    await set_bit(me, sh.done)


@lru_cache(maxsize=4)
def _profile(name: str):
    return load_profile(name)


def make_run(cfg: HandoffConfig) -> Run:
    machine = Machine(_profile(cfg.profile), 2, record_timeline=False)
    sh = _Shared(machine)
    driver = ExplorerDriver(machine)
    for cpu in range(2):
        driver.start_task(cpu, take_turns(sh, cpu, cfg.rounds))
    return Run(machine, sh, driver, ghost=None)


def all_rounds_done(run: Run) -> bool:
    return run.kernel.done.value == 0b11
