"""The explorer against SPIN on the double-panic race, same state space.

For each CPU count: generate the Promela peer (`peers/panic_race.pml`), `spin
-a`, compile pan.c with gcc -O2 with and without `-DNOREDUCE` (SPIN's
partial-order reduction off and on) and run it; run the haltlab explorer on the
same race in a fresh process (up to `--explorer-max-cpus`, 4 by default: its
search alone took 8 minutes at 5 on a loaded 2-core host, 2026-12-01). First every unreduced SPIN count is checked
against the explorer's, within `spin_peer.STATE_TOLERANCE`: on a mismatch the
script says which and exits 1 before timing anything, since timing two
different state spaces compares nothing. Then the verifiers are timed and the
table printed.

    .venv/bin/python benchmarks/bench_vs_spin.py [--cpus 2 3 4 5 6 7] [--explorer-max-cpus 4] [--repeat 1]
    .venv/bin/python benchmarks/bench_vs_spin.py --quick        # 2 and 3 CPUs

The explorer's side is its unreduced, untimed search (every interleaving,
bounded waits time out only when nothing else can happen), which is what the
Promela model encodes: `explorer_config()` is the one place that says so. The
explorer's seconds are its search's own (`Exploration.seconds`), not the
liveness pass `check()` runs after it ("the winner finishes"), which the SPIN
peer does not check. Peak
memory: SPIN's is pan's own report (hash table, states and DFS stack); the
explorer's is the child's `VmHWM`, interpreter included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

import spin_peer  # noqa: E402

__all__ = ["UNREDUCED_UNTIMED", "explorer_config", "explore_in_child", "check_counts", "main"]

UNREDUCED_UNTIMED = {"reduce": "none", "timing": "untimed"}
"""The explorer options that make its search the one the Promela model encodes,
passed to `PanicRaceConfig` where it has the field (today it has neither: its
search is unreduced and untimed by construction)."""


def explorer_config(cpus: int):
    """The explorer's side of the comparison: `PanicRaceConfig` for `cpus`, with
    every option of `UNREDUCED_UNTIMED` the config knows and a state bound no
    size here reaches."""
    from haltlab.scenarios.panic_race import PanicRaceConfig

    known = {f.name for f in dataclasses.fields(PanicRaceConfig)}
    options = {k: v for k, v in UNREDUCED_UNTIMED.items() if k in known}
    return PanicRaceConfig(cpus=cpus, max_states=50_000_000, **options)


def _child(cpus: int) -> None:
    """In a fresh process: explore and print states, seconds and VmHWM as JSON."""
    import time

    from haltlab.scenarios.panic_race import explore_panic_race

    cfg = explorer_config(cpus)
    t0 = time.perf_counter()
    ex = explore_panic_race(cfg)
    wall = time.perf_counter() - t0
    with open("/proc/self/status") as f:
        hwm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"cpus": cpus, "states": ex.states, "transitions": ex.transitions,
                      "verdict": ex.verdict, "seconds": ex.seconds, "wall_seconds": wall,
                      "vmhwm_kib": hwm_kib}))


def explore_in_child(cpus: int) -> dict:
    env = dict(os.environ)
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([sys.executable, __file__, "--child", str(cpus)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_counts(spin_states: dict[int, int], explorer: dict[int, dict]) -> list[str]:
    """One line per CPU count where the two disagree by more than the tolerance."""
    bad = []
    for n, ex in sorted(explorer.items()):
        diff = spin_states[n] - ex["states"]
        if abs(diff) > spin_peer.STATE_TOLERANCE or ex["verdict"] != "ok":
            bad.append(f"{n} CPUs: SPIN {spin_states[n]:,} states, explorer {ex['states']:,} "
                       f"({ex['verdict']}); difference {diff:+,}, tolerance "
                       f"{spin_peer.STATE_TOLERANCE}")
    return bad


def _mib(x: float) -> str:
    return f"{x:,.1f}"


def main(argv=None) -> list[dict] | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7])
    ap.add_argument("--explorer-max-cpus", type=int, default=4,
                    help="run the explorer up to this many CPUs (5 takes over 8 minutes)")
    ap.add_argument("--repeat", type=int, default=1, help="SPIN runs: best of this many")
    ap.add_argument("--quick", action="store_true", help="2 and 3 CPUs")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child is not None:
        _child(a.child)
        return None
    if a.quick:
        a.cpus = [2, 3]
    missing = spin_peer.missing_tools()
    if missing:
        print(f"bench_vs_spin: {', '.join(missing)} not on PATH (Debian packages spin, gcc; "
              "bin/test installs them as root); nothing measured")
        return None
    cpus = sorted(set(a.cpus))
    with tempfile.TemporaryDirectory(prefix="haltlab-bench-spin-") as tmp:
        pans = {(n, r): spin_peer.build(n, "cmpxchg", r, Path(tmp) / f"n{n}-{'por' if r else 'full'}")
                for n in cpus for r in (False, True)}
        # 1. The check: same unreduced state space, or nothing is timed.
        full = {n: spin_peer.run(pans[n, False], n, "cmpxchg", False) for n in cpus}
        explorer = {n: explore_in_child(n) for n in cpus if n <= a.explorer_max_cpus}
        bad = check_counts({n: r.states for n, r in full.items()}, explorer)
        errors = [f"{n} CPUs: SPIN found {r.errors} error(s): {r.assertion}"
                  for n, r in full.items() if r.errors]
        if bad or errors:
            print("MISMATCH: the SPIN peer and the explorer do not explore the same race")
            for line in bad + errors:
                print(f"  {line}")
            sys.exit(1)
        print(f"state counts agree (tolerance {spin_peer.STATE_TOLERANCE}) at "
              f"{', '.join(str(n) for n in sorted(explorer)) or 'no'} CPUs; "
              "the explorer is not run above --explorer-max-cpus")
        # 2. Timing: the unreduced run again, then with SPIN's reduction.
        rows = []
        for n in cpus:
            off, on = (min((spin_peer.run(pans[n, r], n, "cmpxchg", r) for _ in range(max(1, a.repeat))),
                           key=lambda res: res.seconds) for r in (False, True))
            rows.append({"cpus": n, "spin": off, "spin_por": on, "explorer": explorer.get(n)})
    head = (f"{'CPUs':>4} {'SPIN states':>11} {'POR on':>10} {'SPIN s':>7} {'POR s':>6} "
            f"{'SPIN st/s':>10} {'SPIN MiB':>8} {'expl. states':>12} {'expl. s':>8} "
            f"{'expl. st/s':>10} {'expl. MiB':>9} {'expl/SPIN s':>11}")
    print(head)
    for r in rows:
        off, on, ex = r["spin"], r["spin_por"], r["explorer"]
        line = (f"{r['cpus']:>4} {off.states:>11,} {on.states:>10,} {off.seconds:>7.3f} "
                f"{on.seconds:>6.3f} {off.states_per_s:>10,.0f} {_mib(off.memory_mib):>8}")
        if ex is None:
            line += f" {'-':>12} {'-':>8} {'-':>10} {'-':>9} {'-':>11}"
        else:
            line += (f" {ex['states']:>12,} {ex['seconds']:>8.2f} {ex['states'] / ex['seconds']:>10,.0f} "
                     f"{_mib(ex['vmhwm_kib'] / 1024):>9} {ex['seconds'] / off.seconds:>11,.0f}")
        print(line)
    for n, ex in sorted(explorer.items()):
        print(f"explorer, {n} CPUs: search {ex['seconds']:.2f} s of {ex['wall_seconds']:.2f} s for "
              "explore_panic_race() (the rest is its liveness pass)")
    return rows


if __name__ == "__main__":
    main()
