"""Run every benchmark in turn and print the machine they ran on.

    .venv/bin/python benchmarks/run_all.py [--quick]

`--quick` (a few seconds) runs small sizes with few repetitions, to check the
scripts work; the README table comes from the full run (several minutes).
"""

from __future__ import annotations

import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_engine  # noqa: E402
import bench_explorer  # noqa: E402
import bench_liveness  # noqa: E402
import bench_panic_scale  # noqa: E402
import bench_spinners  # noqa: E402
import bench_vs_simpy  # noqa: E402
import bench_vs_spin  # noqa: E402

__all__ = ["machine_summary", "main"]


def machine_summary() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{model}, {os.cpu_count()} cores{mem}; Python {platform.python_version()} "
            f"({platform.python_implementation()}); load average {os.getloadavg()[0]:.2f}")


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    quick = ["--quick"] if "--quick" in argv else []
    print(f"# machine: {machine_summary()}")
    for title, mod in (("simulator events/s (bench_engine)", bench_engine),
                       ("simulate panic at scale (bench_panic_scale)", bench_panic_scale),
                       ("haltlab vs SimPy (bench_vs_simpy)", bench_vs_simpy),
                       ("explorer states/s (bench_explorer)", bench_explorer),
                       ("liveness pass on 150,000 states (bench_liveness)", bench_liveness),
                       ("spinning CPUs, one writer (bench_spinners)", bench_spinners),
                       ("explorer vs SPIN on the panic race (bench_vs_spin)", bench_vs_spin)):
        print(f"\n## {title}")
        mod.main(quick)


if __name__ == "__main__":
    main()
