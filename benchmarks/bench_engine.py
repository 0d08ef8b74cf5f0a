"""Raw simulator throughput: events per wall-clock second on a synthetic workload.

Each of N CPUs loops over the operations that make up most events in real
scenarios: a busy `ndelay`, an atomic on a shared counter, a `cpu_relax()`, and
every `--ipi-every` rounds an IPI to the next CPU (whose handler costs an irq
entry and one more atomic). No kernel model is involved: only
`haltlab.engine` and `haltlab.machine`, so this measures the event loop, the
strand stepping and the machine's interrupt and accounting paths.

    .venv/bin/python benchmarks/bench_engine.py [--cpus 8 64 512] [--until-ms 16] [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import time

from haltlab.engine.ops import atomic_add_return, cpu_relax, ndelay, send_IPI_mask
from haltlab.engine.simulator import Simulator
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile

__all__ = ["build", "measure", "main"]


async def worker(counter, cpu: int, ncpus: int, ipi_every: int):
    n = 0
    while True:
        await ndelay(500)
        await atomic_add_return(counter, 1)
        await cpu_relax()
        n += 1
        if ipi_every and n % ipi_every == 0:
            await send_IPI_mask(1 << ((cpu + 1) % ncpus), "BENCH")


def build(profile, ncpus: int, ipi_every: int) -> Simulator:
    machine = Machine(profile, ncpus, record_timeline=False)
    counter = machine.memory.var("bench_counter", 0)
    handled = machine.memory.var("bench_handled", 0)

    async def handler(cpu: int):
        await atomic_add_return(handled, 1)

    machine.request_irq("BENCH", 0xF0, handler)
    sim = Simulator(machine, seed=0)
    for cpu in range(ncpus):
        sim.start_task(cpu, worker(counter, cpu, ncpus, ipi_every))
    return sim


def measure(ncpus: int, until_ns: int, ipi_every: int, repeat: int) -> dict:
    """Best of `repeat` runs (build excluded): events, seconds, events/s."""
    profile = load_profile("kvm-x86")
    best = None
    events = 0
    for _ in range(repeat):
        sim = build(profile, ncpus, ipi_every)
        t0 = time.perf_counter_ns()
        sim.run(until_ns)
        dt = time.perf_counter_ns() - t0
        events = sim.events_run
        best = dt if best is None else min(best, dt)
    return {"cpus": ncpus, "until_ns": until_ns, "events": events,
            "seconds": best / 1e9, "events_per_s": events / (best / 1e9)}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=[8, 64, 512])
    ap.add_argument("--until-ms", type=float, default=16.0,
                    help="virtual time to simulate on 8 CPUs; scaled by 8/N so every size runs "
                         "about the same number of events (about 650k)")
    ap.add_argument("--ipi-every", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="8 and 512 CPUs, 3 repetitions, 2 ms")
    a = ap.parse_args(argv)
    if a.quick:
        a.cpus, a.until_ms, a.repeat = [8, 512], 2.0, 3
    rows = []
    print(f"{'cpus':>6} {'virtual ms':>10} {'events':>9} {'best s':>8} {'events/s':>10}")
    for n in a.cpus:
        until_ns = int(a.until_ms * 1e6 * 8 / n)
        r = measure(n, until_ns, a.ipi_every, a.repeat)
        rows.append(r)
        print(f"{n:>6} {until_ns / 1e6:>10g} {r['events']:>9} {r['seconds']:>8.3f} {r['events_per_s']:>10,.0f}")
    return rows


if __name__ == "__main__":
    main()
