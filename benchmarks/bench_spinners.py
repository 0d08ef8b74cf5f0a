"""Many spinning CPUs, one writer: what a store costs when N CPUs wait.

The pattern of SMP bring-up and of parked CPUs (S4): N-1 CPUs each spin on a
flag of their own (`spin_until(lambda: flag.value)`), while the boot CPU does
`--work` atomics on an unrelated counter before releasing the next one. Every
store is a moment at which some spinner's condition might have come true; how
the simulator finds out decides whether the run is O(stores) or
O(stores x spinners).

    .venv/bin/python benchmarks/bench_spinners.py [--cpus 64 512 2048] [--work 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from haltlab.engine.ops import WRITE_ONCE, atomic_add_return, spin_until
from haltlab.engine.simulator import Simulator
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile

__all__ = ["build", "measure", "main"]


async def secondary(flag):
    await spin_until(lambda: flag.value == 1, what="released")


async def boot_cpu(flags, counter, work: int):
    for flag in flags:
        for _ in range(work):
            await atomic_add_return(counter, 1)
        await WRITE_ONCE(flag, 1)


def build(profile, ncpus: int, work: int) -> Simulator:
    machine = Machine(profile, ncpus, record_timeline=False)
    counter = machine.memory.var("bench_counter", 0)
    flags = [machine.memory.var(f"release_{cpu}", 0) for cpu in range(1, ncpus)]
    sim = Simulator(machine, seed=0)
    sim.start_task(0, boot_cpu(flags, counter, work))
    for cpu, flag in zip(range(1, ncpus), flags):
        sim.start_task(cpu, secondary(flag))
    return sim


def measure(ncpus: int, work: int, repeat: int) -> dict:
    """Best of `repeat` runs (build excluded): events, seconds, stores/s."""
    profile = load_profile("kvm-x86")
    best, events = None, 0
    for _ in range(repeat):
        sim = build(profile, ncpus, work)
        t0 = time.perf_counter_ns()
        sim.run(10**12)
        dt = time.perf_counter_ns() - t0
        events = sim.events_run
        best = dt if best is None else min(best, dt)
    stores = (ncpus - 1) * (work + 1)
    return {"cpus": ncpus, "work": work, "stores": stores, "events": events,
            "seconds": best / 1e9, "stores_per_s": stores / (best / 1e9)}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=[64, 512, 2048])
    ap.add_argument("--work", type=int, default=16, help="atomics on the counter between two releases")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="64 and 512 CPUs, once")
    a = ap.parse_args(argv)
    if a.quick:
        a.cpus, a.repeat = [64, 512], 1
    rows = []
    print(f"{'cpus':>6} {'stores':>8} {'events':>8} {'best s':>8} {'stores/s':>10}")
    for n in a.cpus:
        r = measure(n, a.work, a.repeat)
        rows.append(r)
        print(f"{n:>6} {r['stores']:>8} {r['events']:>8} {r['seconds']:>8.3f} {r['stores_per_s']:>10,.0f}")
    return rows


if __name__ == "__main__":
    main()
