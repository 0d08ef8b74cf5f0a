"""S2's campaign at the thread's size: 1,409 runs of `v5.17+d51507098ff9`
(kvm-x86 costs, 2 CPUs) through the local process pool, as `haltlab sweep
printk-flood --runs 1409 --workers 2` runs them (into a fresh sweep file).
Target (issue 8): under 60 s on 2 cores.

Prints the campaign's wall time and runs/s, its hangs, and, beside it, the
cost of one run in this process (best of `--sample` runs timed one by one),
so that a miss can be told apart: a slow run or a slow pool.

    .venv/bin/python benchmarks/bench_flood_campaign.py [--runs 1409] [--workers 2] [--sample 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> dict:
    from haltlab.sweep import executor, open_sweep, run_items
    from haltlab.sweep.flood import FloodSweep, flood_row

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1409)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample", type=int, default=40)
    args = ap.parse_args(argv)
    spec = FloodSweep.parse(kernels=["v5.17+d51507098ff9"], runs=args.runs, seed=0)
    jobs = [job for _, job in spec.items()]
    per_run = []
    for job in jobs[:args.sample]:
        t0 = time.perf_counter()
        flood_row(job)
        per_run.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flood.jsonl"
        t0 = time.perf_counter()
        with executor(workers=args.workers) as pool, open_sweep(out, spec.inputs()) as f:
            run_items(flood_row, spec.items(), f, pool)
        wall = time.perf_counter() - t0
        (v,) = spec.summary(out)
    per_run.sort()
    result = {"runs": args.runs, "workers": args.workers, "wall_s": round(wall, 1),
              "runs_per_s": round(args.runs / wall, 1), "hung": v.hung, "decided": v.decided,
              "run_ms_median": round(1000 * per_run[len(per_run) // 2], 1),
              "run_ms_min": round(1000 * per_run[0], 1), "target_s": 60, "met": wall < 60}
    print("| runs | workers | wall s | runs/s | hung | one run, ms (median, min; in-process) | under 60 s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.runs:,} | {args.workers} | {result['wall_s']} | {result['runs_per_s']} | {v.hung}/{v.runs} "
          f"| {result['run_ms_median']}, {result['run_ms_min']} | {'yes' if result['met'] else 'no'} |")
    return result


if __name__ == "__main__":
    main()
