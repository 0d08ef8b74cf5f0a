"""haltlab against the SimPy peer in executed instructions, not seconds.

`bench_vs_simpy.py` times both sides, which on a shared host swings by tens of
percent between runs. This counts what each run executes instead: every child
runs under `valgrind --tool=cachegrind --cache-sim=no` (Debian package
`valgrind`), `--repeat` runs of one side at one size, each preceded by a full
collection and the last one followed by one, so that freeing a run is counted
as its own cost on both sides; a child that only imports and loads the profile
gives the count subtracted. Instructions are not time (cache misses are not
counted; haltlab touches more memory per CPU than the peer), but they are the
same on every run, so a change to the simulator shows in them at once.

    PYTHONPATH=src .venv/bin/python benchmarks/instructions_vs_simpy.py [--cpus 8 512 8192]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

__all__ = ["count", "main"]

HERE = os.path.dirname(os.path.abspath(__file__))
REPEAT = {8: 20, 64: 10, 512: 2}       # runs per child (one at larger sizes)


def _child(side: str, ncpus: int, repeat: int) -> None:
    import gc

    import haltlab.scenarios.panic as panic_scenario
    from haltlab.machine.profile import load_profile
    from haltlab.scenarios.panic import PanicConfig, run_panic

    sys.path.insert(0, HERE)
    from simpy_peer import run_peer

    profile = load_profile("kvm-x86")
    panic_scenario.load_profile = lambda name: profile
    for _ in range(repeat):
        gc.collect()
        if side == "haltlab":
            run_panic(PanicConfig(cpus=ncpus, observe_ns=10**9, timeline=False))
        else:
            run_peer(profile, ncpus, observe_ns=10**9)
    gc.collect()


def count(side: str, ncpus: int, repeat: int) -> int:
    """Instructions (cachegrind's I refs) of one child."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, os.path.abspath(__file__), "--child", side, str(ncpus), str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if m is None:
        raise RuntimeError(f"no instruction count from cachegrind: {done.stderr[-500:]}")
    return int(m.group(1).replace(",", ""))


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=[8, 512, 8192])
    a = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions_vs_simpy: needs valgrind (apt-get install valgrind)")
    base = {side: count(side, 8, 0) for side in ("haltlab", "simpy")}
    print(f"{'cpus':>6} {'haltlab M instr':>16} {'SimPy M instr':>14} {'haltlab/SimPy':>13}")
    rows = []
    for n in a.cpus:
        repeat = REPEAT.get(n, 1)
        per = {side: (count(side, n, repeat) - base[side]) / repeat for side in ("haltlab", "simpy")}
        row = {"cpus": n, "haltlab": per["haltlab"], "simpy": per["simpy"], "ratio": per["haltlab"] / per["simpy"]}
        rows.append(row)
        print(f"{n:>6} {row['haltlab'] / 1e6:>16.1f} {row['simpy'] / 1e6:>14.1f} {row['ratio']:>13.2f}", flush=True)
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
