"""`simulate panic` at scale: wall time, events/s and peak memory per CPU count.

Each size runs in a fresh Python process, so one size's heap cannot raise the
next one's peak RSS. The child runs `run_panic(PanicConfig(cpus=N, ...,
timeline=False))` `--repeat` times and reports the best wall time and its
peak RSS (`VmHWM`, see `_vm_hwm_kib`); a baseline child that only imports haltlab and loads the profile
gives the RSS subtracted from it ("peak MiB" is what the run itself added).

    .venv/bin/python benchmarks/bench_panic_scale.py [--others idle busy] [--cpus 8 64 512 8192]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

__all__ = ["main", "run_child"]

SIZES = (8, 64, 512, 8192)


def _child(argv: list[str]) -> None:
    """In the fresh process: run (or only import, for the baseline) and print JSON."""
    import resource
    import time

    from haltlab.machine.profile import load_profile
    from haltlab.scenarios.panic import PanicConfig, run_panic

    load_profile("kvm-x86")
    mode, ncpus, others, observe_ns, repeat = argv[0], int(argv[1]), argv[2], int(argv[3]), int(argv[4])
    out: dict = {"cpus": ncpus, "others": others}
    if mode == "run":
        best = None
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            r = run_panic(PanicConfig(cpus=ncpus, others=others, observe_ns=observe_ns, timeline=False))
            dt = time.perf_counter_ns() - t0
            best = dt if best is None else min(best, dt)
        out.update(seconds=best / 1e9, events=r["events"], events_per_s=r["events"] / (best / 1e9),
                   time_to_end_ns=r["time_to_end_ns"], outcome=r["outcome"])
    out["maxrss_kib"] = _vm_hwm_kib()
    out["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


def _vm_hwm_kib() -> int:
    """Peak RSS of this process's own address space.

    Not `ru_maxrss` alone: Linux keeps the maximum across `execve()`, and
    `subprocess` forks (vfork) from the parent, so a child's `ru_maxrss` starts at
    the parent's RSS. `VmHWM` belongs to the address space exec created."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(mode: str, ncpus: int, others: str, observe_ns: int, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(ncpus), others, str(observe_ns), str(repeat)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--others", nargs="+", default=["idle", "busy"], choices=["idle", "busy", "irqsoff"])
    ap.add_argument("--observe-s", type=float, default=1.0, help="observation window after the end line")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="8 and 512 CPUs, idle only, one repetition")
    a = ap.parse_args(argv)
    if a.quick:
        a.cpus, a.others, a.repeat = [8, 512], ["idle"], 1
    observe_ns = int(a.observe_s * 1e9)
    base = run_child("import", 0, "idle", observe_ns, 0)["maxrss_kib"]
    print(f"baseline (import haltlab, load profile): {base / 1024:.1f} MiB RSS; observe window {a.observe_s:g} s")
    print(f"{'others':>6} {'cpus':>6} {'events':>8} {'best s':>8} {'events/s':>9} {'peak MiB':>9} {'to end ns':>10}")
    rows = []
    for others in a.others:
        for n in a.cpus:
            r = run_child("run", n, others, observe_ns, a.repeat)
            r["peak_mib"] = (r["maxrss_kib"] - base) / 1024
            r["baseline_mib"] = base / 1024
            rows.append(r)
            print(f"{others:>6} {n:>6} {r['events']:>8} {r['seconds']:>8.3f} {r['events_per_s']:>9,.0f} "
                  f"{r['peak_mib']:>9.1f} {r['time_to_end_ns']:>10}")
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
