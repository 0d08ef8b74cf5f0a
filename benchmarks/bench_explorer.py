"""Explorer throughput: states and transitions per second on `panic_race`.

Explores every interleaving of 2, 3 and 4 CPUs calling `panic()` at once (the
stock cmpxchg claim, `timeouts="quiescent"`) and reports states/s,
transitions/s and how many replays the search needed (each branch is reached by
rebuilding the run and replaying its choice prefix, so replays dominate).

The explorer is imported lazily: if `haltlab.engine.explorer` or
`haltlab.scenarios.panic_race` is missing, the script says so and exits 0.

    .venv/bin/python benchmarks/bench_explorer.py [--cpus 2 3 4] [--repeat 3] [--reduce all] [--memory]
"""

from __future__ import annotations

import argparse
import importlib
import time

__all__ = ["load", "measure", "bytes_per_state", "main"]


def load():
    """The panic_race module, or None when the explorer is not available."""
    try:
        importlib.import_module("haltlab.engine.explorer")
        return importlib.import_module("haltlab.scenarios.panic_race")
    except ImportError as exc:
        print(f"explorer not available ({exc}); nothing measured")
        return None


def measure(race, ncpus: int, repeat: int, variant: str = "cmpxchg", reduce: str = "none") -> dict:
    best, ex = None, None
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        ex = race.explore_panic_race(race.PanicRaceConfig(cpus=ncpus, variant=variant, reduce=reduce))
        dt = time.perf_counter_ns() - t0
        best = dt if best is None else min(best, dt)
    s = best / 1e9
    return {"cpus": ncpus, "variant": variant, "reduce": reduce, "verdict": ex.verdict, "states": ex.states,
            "transitions": ex.transitions, "replays": ex.replays, "seconds": s,
            "states_per_s": ex.states / s, "transitions_per_s": ex.transitions / s}


def bytes_per_state(race, ncpus: int, reduce: str) -> float:
    """What the finished exploration retains (store, edges, labels) per state,
    by tracemalloc: memory allocated during the search and still held after."""
    import gc
    import tracemalloc
    gc.collect()
    tracemalloc.start()
    ex = race.explore_panic_race(race.PanicRaceConfig(cpus=ncpus, reduce=reduce))
    gc.collect()
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return held / ex.states


def main(argv=None) -> list[dict] | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--repeat", type=int, default=3, help="best of; 4 CPUs always runs once")
    ap.add_argument("--quick", action="store_true", help="2 and 3 CPUs, one repetition")
    ap.add_argument("--reduce", choices=["none", "symmetry", "por", "all"], default="none",
                    help="the explorer's reductions (as `haltlab explore --reduce`)")
    ap.add_argument("--memory", action="store_true",
                    help="also measure the bytes each stored state retains (tracemalloc; slower)")
    a = ap.parse_args(argv)
    if a.quick:
        a.cpus, a.repeat = [2, 3], 1
    race = load()
    if race is None:
        return None
    print(f"{'cpus':>4} {'reduce':>8} {'verdict':>8} {'states':>7} {'transitions':>11} {'replays':>7} "
          f"{'best s':>7} {'states/s':>9} {'trans/s':>8}" + (f" {'B/state':>8}" if a.memory else ""))
    rows = []
    for n in a.cpus:
        r = measure(race, n, a.repeat if n < 4 else 1, reduce=a.reduce)
        if a.memory:
            r["bytes_per_state"] = bytes_per_state(race, n, a.reduce)
        rows.append(r)
        print(f"{n:>4} {a.reduce:>8} {r['verdict']:>8} {r['states']:>7} {r['transitions']:>11} {r['replays']:>7} "
              f"{r['seconds']:>7.2f} {r['states_per_s']:>9,.0f} {r['transitions_per_s']:>8,.0f}"
              + (f" {r['bytes_per_state']:>8.0f}" if a.memory else ""))
    return rows


if __name__ == "__main__":
    main()
