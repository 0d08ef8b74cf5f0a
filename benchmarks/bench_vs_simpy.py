"""haltlab against a SimPy peer on the same panic scenario (`simpy_peer.py`).

First an equivalence check on 8 CPUs: both must reach "end Kernel panic" the
same number of ns after `panic()` is entered (tolerance `--tolerance-ns`). Then
both run on each CPU count in this one process, interleaved (haltlab, SimPy,
haltlab, ...), best of `--repeat`; the table gives the ratio of haltlab's time to
SimPy's. Both sides include building the model and running it to the end of the
observation window; the profile is loaded once, outside the timing, for both.

    .venv/bin/python benchmarks/bench_vs_simpy.py [--cpus 8 64 512 8192] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from simpy_peer import run_peer  # noqa: E402

import haltlab.scenarios.panic as panic_scenario  # noqa: E402
from haltlab.machine.profile import load_profile  # noqa: E402
from haltlab.scenarios.panic import PanicConfig, run_panic  # noqa: E402

__all__ = ["check_equivalence", "compare", "main"]

SIZES = (8, 64, 512, 8192)


def _haltlab(ncpus: int, observe_ns: int) -> dict:
    return run_panic(PanicConfig(cpus=ncpus, observe_ns=observe_ns, timeline=False))


def check_equivalence(profile, ncpus: int, observe_ns: int, tolerance_ns: int) -> dict:
    """Time to the end line and event counts from both, for the same machine."""
    r = _haltlab(ncpus, observe_ns)
    peer = run_peer(profile, ncpus, observe_ns=observe_ns, count_events=True)
    m = peer.marks
    out = {
        "cpus": ncpus,
        "haltlab_time_to_end_ns": r["time_to_end_ns"],
        "simpy_time_to_end_ns": m["panic_end"] - m["panic_entry"],
        "haltlab_smp_send_stop_ns": r["smp_send_stop_ns"],
        "simpy_smp_send_stop_ns": m["others_stopped"] - m["smp_send_stop"],
        "haltlab_events": r["events"],
        "simpy_events": peer.env.events_run,
        "haltlab_loop_iterations": r["panic_loop_iterations"],
        "simpy_loop_iterations": peer.loop_iterations,
    }
    out["diff_ns"] = out["haltlab_time_to_end_ns"] - out["simpy_time_to_end_ns"]
    out["ok"] = abs(out["diff_ns"]) <= tolerance_ns
    return out


def compare(profile, ncpus: int, observe_ns: int, repeat: int) -> dict:
    """Interleaved best-of-`repeat` wall times of both, after a collection each."""
    best = {"haltlab": None, "simpy": None}
    runs = {"haltlab": lambda: _haltlab(ncpus, observe_ns),
            "simpy": lambda: run_peer(profile, ncpus, observe_ns=observe_ns)}
    for _ in range(repeat):
        for name, fn in runs.items():
            gc.collect()
            t0 = time.perf_counter_ns()
            fn()
            dt = time.perf_counter_ns() - t0
            best[name] = dt if best[name] is None else min(best[name], dt)
    h, s = best["haltlab"] / 1e9, best["simpy"] / 1e9
    return {"cpus": ncpus, "haltlab_s": h, "simpy_s": s, "ratio": h / s}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--observe-s", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tolerance-ns", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="8 and 512 CPUs, 2 repetitions")
    a = ap.parse_args(argv)
    if a.quick:
        a.cpus, a.repeat = [8, 512], 2
    observe_ns = int(a.observe_s * 1e9)
    profile = load_profile("kvm-x86")
    panic_scenario.load_profile = lambda name: profile   # both sides skip the TOML parse
    eq = check_equivalence(profile, 8, observe_ns, a.tolerance_ns)
    print(f"equivalence, 8 CPUs: time to 'end Kernel panic' haltlab {eq['haltlab_time_to_end_ns']} ns, "
          f"SimPy {eq['simpy_time_to_end_ns']} ns (diff {eq['diff_ns']} ns, "
          f"{'OK' if eq['ok'] else 'MISMATCH'}); smp_send_stop {eq['haltlab_smp_send_stop_ns']} / "
          f"{eq['simpy_smp_send_stop_ns']} ns; events {eq['haltlab_events']} / {eq['simpy_events']}; "
          f"final-loop mdelays {eq['haltlab_loop_iterations']} / {eq['simpy_loop_iterations']}")
    if not eq["ok"]:
        # A ratio between runs that do different work means nothing: stop here.
        raise SystemExit("bench_vs_simpy: the peer no longer models the same panic; not timing it")
    print(f"{'cpus':>6} {'haltlab s':>10} {'SimPy s':>10} {'haltlab/SimPy':>13}")
    rows = []
    for n in a.cpus:
        r = compare(profile, n, observe_ns, a.repeat)
        rows.append(r)
        print(f"{n:>6} {r['haltlab_s']:>10.4f} {r['simpy_s']:>10.4f} {r['ratio']:>13.2f}")
    return {"equivalence": eq, "rows": rows}


if __name__ == "__main__":
    main()
