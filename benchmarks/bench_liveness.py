"""The liveness pass on a large recorded graph: `fair_nonprogress_cycle()` time.

The issue's target is a 150,000-state graph judged in under 3 s. The graphs are
synthetic but shaped like the explorer's: every state has 3 to 8 choices named
as the explorer names them (`c0`..`c5` CPU steps, `i1.NMI`, `t0`), most edges go
forward (an interleaving advances), and a fraction go back a short way (a CPU
polling in a loop), so strongly connected components of every size appear.
Two cases:

* `unfair`: every cycle leaves some CPU's step enabled and never taken, so no
  component is fair and the pass must look at all of them (no early exit);
* `lasso`: one large cycle-rich band of non-progress states in which every
  choice enabled throughout is taken, so the pass finds it and builds the lasso.

Seeded, so every run judges the same graphs.

    .venv/bin/python benchmarks/bench_liveness.py [--states 150000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time

from haltlab.checks.liveness import fair_nonprogress_cycle

__all__ = ["make_graph", "measure", "main"]

_TOKENS = ("c0", "c1", "c2", "c3", "c4", "c5", "i1.NMI", "t0")


def make_graph(states: int, case: str, seed: int = 1) -> tuple[list[tuple[int, str, int]], set[int]]:
    """Edges and progress states of a synthetic graph of `states` states."""
    rng = random.Random(seed)
    edges: list[tuple[int, str, int]] = []
    band = range(states // 2, states // 2 + states // 10)        # the lasso case's fair band
    for s in range(states):
        k = rng.randint(3, 8)
        for token in _TOKENS[:k]:
            if case == "lasso" and s in band:
                # every choice stays in the band: a large fair component
                dst = band.start + (s - band.start + rng.randint(-3, 3)) % len(band)
            elif token == "c0" or rng.random() < 0.85:
                dst = min(states - 1, s + rng.randint(1, 40))   # forward: the run advances
            else:
                dst = max(0, s - rng.randint(1, 6))              # back: a polling loop
            if case == "unfair" and token == "c0":
                dst = states - 1                                 # c0 always leads to progress: every cycle starves it
            edges.append((s, token, dst))
    progress = {states - 1}
    return edges, progress


def measure(states: int, case: str, repeat: int) -> dict:
    edges, progress = make_graph(states, case)
    expanded = set(range(states))
    best, res = None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fair_nonprogress_cycle(edges, progress, expanded)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    lasso = res.lasso
    return {"case": case, "states": states, "edges": len(edges), "seconds": best,
            "lasso": None if lasso is None else (len(lasso.prefix), len(lasso.cycle), len(lasso.states))}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=150_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="15,000 states, one repetition")
    a = ap.parse_args(argv)
    if a.quick:
        a.states, a.repeat = 15_000, 1
    print(f"{'case':>7} {'states':>8} {'edges':>9} {'best s':>7}  lasso (prefix, cycle, component)")
    rows = []
    for case in ("unfair", "lasso"):
        r = measure(a.states, case, a.repeat)
        rows.append(r)
        print(f"{r['case']:>7} {r['states']:>8,} {r['edges']:>9,} {r['seconds']:>7.2f}  {r['lasso']}")
    return rows


if __name__ == "__main__":
    main()
