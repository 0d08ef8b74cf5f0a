"""Explorer throughput: states per second, and what reaching states again costs.

First table: `explore_panic_race` for 2, 3 and 4 CPUs calling `panic()` at once
(the stock cmpxchg claim, `timeouts="quiescent"`), as a user runs it: wall time
(the search plus the liveness pass on its graph) and the search's own seconds.

Second table: the same race's search, and the deep looping model
(`haltlab.scenarios.handoff`: two CPUs handing a turn back and forth, a search
about 8 choices deep per round), with states reached again the old way
(`reach="root"`: rebuild and replay the search's path from the initial state),
running ahead depth first (`reach="ahead"`) and the frontier (`reach="frontier"`,
the default: breadth first, runs parked where they arrive; `haltlab.engine.reach`),
one after the other in one process: rebuilds, replayed steps per transition, transitions run ahead,
search seconds (best of `--repeat`) and states/s. The script stops with
MISMATCH if the ways give different explorations (counts or edges).

The explorer is imported lazily: if `haltlab.engine.explorer` or
`haltlab.scenarios.panic_race` is missing, the script says so and exits 0.

    .venv/bin/python benchmarks/bench_explorer.py [--cpus 2 3 4] [--rounds 100] [--repeat 3] [--reduce all] [--memory]
    .venv/bin/python benchmarks/bench_explorer.py --flood [--flood-cpus 2 3] [--reduce all none]

`--flood` measures S2's explorer instead (`haltlab explore printk-flood --timing
untimed`, issue 8's rows): the patch S2 tested (livelock), its kdump deadlock,
and v7.1 (ok), at each `--flood-cpus`, with each `--reduce`: verdict, states,
transitions, seconds. Run it with another tree's `src` on PYTHONPATH for a
before/after table.

`--repeat` is best of N; unreduced runs of 4 CPUs or more run once.

`--baseline SRC` compares two trees instead (`git archive COMMIT src | tar -x
-C /tmp/base`): each case in fresh processes, before and after in turns, best
of `--repeat` search and CPU seconds, with the ratios and the load average;
the counts must agree.

    .venv/bin/python benchmarks/bench_explorer.py --baseline /tmp/base/src --cpus 2 3 4 --repeat 3
    .venv/bin/python benchmarks/bench_explorer.py --baseline /tmp/base/src --flood --reduce all none
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

__all__ = ["load", "measure", "compare", "bytes_per_state", "flood", "against", "main"]


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
            "transitions": ex.transitions, "replays": ex.replays, "rebuilds": ex.rebuilds,
            "steps_per_transition": ex.replayed_steps_per_transition, "seconds": s,
            "search_s": ex.seconds, "states_per_s": ex.states / ex.seconds,
            "transitions_per_s": ex.transitions / ex.seconds}


def _models(race, cpus: list[int], rounds: int):
    """(name, build, explore's keyword arguments) for the race sizes and the deep model."""
    from haltlab.scenarios import handoff

    for n in cpus:
        cfg = race.PanicRaceConfig(cpus=n)
        yield (f"race {n} CPUs", (lambda cfg=cfg: race.make_run(cfg)),
               dict(check=race.at_most_one_owner, at_end=race.settled, goal=race.winner_in_final_loop))
    hcfg = handoff.HandoffConfig(rounds=rounds)
    yield (f"handoff {rounds} rounds", (lambda: handoff.make_run(hcfg)),
           dict(at_end=lambda run: None if handoff.all_rounds_done(run) else "rounds not done"))


def compare(race, cpus: list[int], rounds: int, repeat: int) -> list[dict]:
    from haltlab.engine.explorer import explore

    print(f"\n{'model':>18} {'reach':>8} {'states':>7} {'trans':>6} {'depth':>5} {'rebuilds':>8} "
          f"{'steps/trans':>11} {'ahead':>6} {'best s':>7} {'states/s':>9}")
    rows = []
    for name, build, kw in _models(race, cpus, rounds):
        seen = None
        for mode in ("root", "ahead", "frontier"):
            runs = [explore(build, reach=mode, **kw) for _ in range(repeat if "4 CPUs" not in name else 1)]
            ex = min(runs, key=lambda e: e.seconds)
            shape = (ex.states, ex.transitions, ex.max_depth, list(ex.edges))
            if seen is not None and shape != seen:
                print(f"MISMATCH on {name}: reach={mode!r} explored another graph than reach='root'")
                sys.exit(1)
            seen = shape
            r = {"model": name, "reach": mode, "states": ex.states, "transitions": ex.transitions,
                 "depth": ex.max_depth, "rebuilds": ex.rebuilds,
                 "steps_per_transition": ex.replayed_steps_per_transition, "ahead": ex.ahead,
                 "seconds": ex.seconds, "states_per_s": ex.states / ex.seconds}
            rows.append(r)
            print(f"{name:>18} {mode:>8} {r['states']:>7} {r['transitions']:>6} {r['depth']:>5} "
                  f"{r['rebuilds']:>8} {r['steps_per_transition']:>11.2f} {r['ahead']:>6} "
                  f"{r['seconds']:>7.2f} {r['states_per_s']:>9,.0f}")
    return rows


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


FLOOD_ROWS = (
    ("v5.17+d51507098ff9", {}),
    ("v5.17", {"kdump": True, "post_notifiers": True}),
    ("v7.1", {}),
)


def flood(cpus: list[int], reductions: list[str]) -> list[dict]:
    """S2's explorer rows (issue 8), one search each."""
    from haltlab.scenarios.printk_flood_check import PrintkFloodCheckConfig, check_printk_flood

    print(f"{'kernel':>28} {'cpus':>4} {'reduce':>6} {'verdict':>9} {'states':>7} {'trans':>7} {'s':>7}", flush=True)
    rows = []
    for n in cpus:
        for kernel, extra in FLOOD_ROWS:
            if n > 2 and kernel != "v7.1":
                continue                # the bugs are 2-CPU rows; the fixed kernel is proven at more
            for reduce in reductions:
                t0 = time.perf_counter()
                out = check_printk_flood(PrintkFloodCheckConfig(cpus=n, kernel=kernel, reduce=reduce, **extra))
                s = time.perf_counter() - t0
                ex = out.exploration
                name = kernel + (" kdump post-notifiers" if extra else "")
                rows.append({"kernel": name, "cpus": n, "reduce": reduce, "verdict": str(out.verdict),
                             "states": ex.states, "transitions": ex.transitions, "seconds": s})
                print(f"{name:>28} {n:>4} {reduce:>6} {str(out.verdict):>9} {ex.states:>7} {ex.transitions:>7} "
                      f"{s:>7.2f}", flush=True)
    return rows


_AB_CHILD = """
import json, sys, time
case, n, reduce = sys.argv[1], int(sys.argv[2]), sys.argv[3]
from haltlab.scenarios.panic_race import PanicRaceConfig, explore_panic_race
from haltlab.scenarios.printk_flood_check import PrintkFloodCheckConfig, check_printk_flood
c0 = time.process_time()        # the search and its liveness pass, not the imports
if case == "race":
    ex = explore_panic_race(PanicRaceConfig(cpus=n, reduce=reduce))
    verdict = ex.verdict
else:
    out = check_printk_flood(PrintkFloodCheckConfig(cpus=n, kernel=case, reduce=reduce))
    ex, verdict = out.exploration, str(out.verdict)
print(json.dumps({"states": ex.states, "transitions": ex.transitions, "verdict": verdict,
                  "rebuilds": ex.rebuilds, "search_s": ex.seconds, "cpu_s": time.process_time() - c0}))
"""


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def against(baseline: str, cases: list[tuple[str, int, str]], repeat: int) -> list[dict]:
    """Each case in fresh child processes, this tree's `src` and `baseline`
    (another tree's `src`) taking turns, `repeat` rounds: best search seconds
    and best CPU seconds of each side, their ratios, and the counts (which must
    agree: MISMATCH and exit 1 otherwise). On a shared host the two sides see
    the same load; the CPU seconds (the child's process time) swing less than
    the wall clock."""
    import json
    import os
    import subprocess

    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    sides = {"before": os.path.abspath(baseline), "after": os.path.abspath(here)}
    print(f"load average before: {_loadavg()}", flush=True)
    print(f"{'case':>28} {'cpus':>4} {'reduce':>6} {'verdict':>9} {'states':>7} {'rebuilds b/a':>13} "
          f"{'search s b/a':>15} {'states/s b/a':>15} {'after/before':>12} {'cpu s b/a':>13} {'cpu ratio':>9}",
          flush=True)
    rows = []
    for case, n, reduce in cases:
        best: dict[str, dict] = {}
        for _ in range(repeat):
            for side, src in sides.items():
                env = dict(os.environ, PYTHONPATH=src)
                p = subprocess.run([sys.executable, "-c", _AB_CHILD, case, str(n), reduce], env=env,
                                   capture_output=True, text=True, check=True)
                r = json.loads(p.stdout.strip().splitlines()[-1])
                b = best.setdefault(side, r)
                b["search_s"], b["cpu_s"] = min(b["search_s"], r["search_s"]), min(b["cpu_s"], r["cpu_s"])
        bef, aft = best["before"], best["after"]
        if (bef["states"], bef["transitions"], bef["verdict"]) != (aft["states"], aft["transitions"], aft["verdict"]):
            print(f"MISMATCH on {case} {n} {reduce}: {bef} against {aft}")
            sys.exit(1)
        row = {"case": case, "cpus": n, "reduce": reduce, "verdict": aft["verdict"], "states": aft["states"],
               "before": bef, "after": aft, "speedup": bef["search_s"] / aft["search_s"],
               "cpu_speedup": bef["cpu_s"] / aft["cpu_s"]}
        rows.append(row)
        print(f"{case:>28} {n:>4} {reduce:>6} {aft['verdict']:>9} {aft['states']:>7} "
              f"{bef['rebuilds']:>6}/{aft['rebuilds']:<6} {bef['search_s']:>7.2f}/{aft['search_s']:<7.2f} "
              f"{bef['states'] / bef['search_s']:>7,.0f}/{aft['states'] / aft['search_s']:<7,.0f} "
              f"{row['speedup']:>11.2f}x {bef['cpu_s']:>6.2f}/{aft['cpu_s']:<6.2f} {row['cpu_speedup']:>8.2f}x",
              flush=True)
    print(f"load average after: {_loadavg()}")
    return rows


def main(argv=None) -> list[dict] | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--rounds", type=int, default=100, help="the deep model's rounds (about 8 levels each)")
    ap.add_argument("--repeat", type=int, default=3, help="best of; 4 CPUs always runs once")
    ap.add_argument("--quick", action="store_true", help="2 and 3 CPUs, 20 rounds, one repetition")
    ap.add_argument("--reduce", choices=["none", "symmetry", "por", "all"], nargs="+", default=None,
                    help="the explorer's reductions (as `haltlab explore --reduce`; default none, "
                         "and all none with --flood)")
    ap.add_argument("--flood", action="store_true", help="S2's explorer rows instead of the race")
    ap.add_argument("--flood-cpus", type=int, nargs="+", default=[2])
    ap.add_argument("--memory", action="store_true",
                    help="also measure the bytes each stored state retains (tracemalloc; slower)")
    ap.add_argument("--baseline", metavar="SRC",
                    help="another tree's src: time the race at --cpus (and with --flood S2's rows at "
                         "--flood-cpus) before and after, in turns, best of --repeat")
    a = ap.parse_args(argv)
    if a.baseline:
        if a.flood:
            cases = [(kernel, n, r) for n in a.flood_cpus for kernel, extra in FLOOD_ROWS if not extra
                     for r in (a.reduce or ["all", "none"])]
        else:
            cases = [("race", n, r) for n in a.cpus for r in (a.reduce or ["none"])]
        return against(a.baseline, cases, a.repeat)
    if a.flood:
        return flood(a.flood_cpus, a.reduce or ["all", "none"])
    a.reduce = (a.reduce or ["none"])[0]
    if a.quick:
        a.cpus, a.rounds, a.repeat = [2, 3], 20, 1
    race = load()
    if race is None:
        return None
    print(f"{'cpus':>4} {'reduce':>8} {'verdict':>8} {'states':>7} {'transitions':>11} {'rebuilds':>8} "
          f"{'steps/trans':>11} {'wall s':>7} {'search s':>8} {'states/s':>9} {'trans/s':>8}"
          + (f" {'B/state':>8}" if a.memory else ""))
    rows = []
    for n in a.cpus:
        r = measure(race, n, a.repeat if n < 4 or a.reduce != "none" else 1, reduce=a.reduce)
        if a.memory:
            r["bytes_per_state"] = bytes_per_state(race, n, a.reduce)
        rows.append(r)
        print(f"{n:>4} {a.reduce:>8} {r['verdict']:>8} {r['states']:>7} {r['transitions']:>11} {r['rebuilds']:>8} "
              f"{r['steps_per_transition']:>11.2f} {r['seconds']:>7.2f} {r['search_s']:>8.2f} "
              f"{r['states_per_s']:>9,.0f} {r['transitions_per_s']:>8,.0f}"
              + (f" {r['bytes_per_state']:>8.0f}" if a.memory else ""))
    if a.reduce == "none":          # reaching states again is measured on the plain search
        rows += compare(race, a.cpus, a.rounds, a.repeat)
    return rows


if __name__ == "__main__":
    main()
