"""Byte-identical results before and after a simulator speed-up (issue 7, item 6).

Runs the same `haltlab` commands from two source trees (this checkout's `src`
and a baseline's, e.g. `git archive af372e9 src | tar -x -C /tmp/base`) and
compares their stdout byte for byte, and a sweep's JSON Lines file too (all
but the model's source hash in its header). A
speed-up of the simulator must leave every one of them as it was: the
`simulate panic --json` results over CPU counts, what the others do, profiles,
after-panic loops, kernels, seeds and kdump; `simulate printk-flood --json`;
the flood campaign `sweep printk-flood --runs 50 --json`; and the explorer's
`explore panic-race --json`, which shares the engine's core; and `simulate
kexec --arch arm64 --json` (each shutdown design) with `explore kexec --json`.

    PYTHONPATH=src .venv/bin/python benchmarks/same_results.py --baseline /tmp/base/src [--quick | --explorer]

Exits 1 and names each command whose output differs. Not a unit test: it
needs a second tree and takes a few minutes (the 8192-CPU runs).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

__all__ = ["COMMANDS", "QUICK", "EXPLORER", "run_in", "main"]

_PANIC = ["simulate", "panic", "--json"]
_FLOOD = ["simulate", "printk-flood", "--json"]
_KEXEC_SIM = ["simulate", "kexec", "--arch", "arm64", "--json"]

_KEXEC: list[list[str]] = [
    [*_KEXEC_SIM, "--cpus", "24"],
    [*_KEXEC_SIM, "--cpus", "24", "--others", "busy"],
    [*_KEXEC_SIM, "--cpus", "24", "--shutdown", "parallel-hotplug"],
    [*_KEXEC_SIM, "--cpus", "24", "--shutdown", "parallel-hotplug-naive", "--others", "busy"],
    [*_KEXEC_SIM, "--cpus", "24", "--shutdown", "smp-send-stop", "--others", "irqsoff"],
    [*_KEXEC_SIM, "--cpus", "64", "--seed", "3"],
    [*_KEXEC_SIM, "--cpus", "16", "--managed-irqs", "--freeze", "--others", "busy", "--loglevel", "4"],
    ["explore", "kexec", "--cpus", "2", "--json"],
]
"""S3's kexec shutdown (issue 10): the hotplug path is the O(n^2) run the
simulator's speed-ups are measured on, so its results are compared too."""

COMMANDS: list[list[str]] = [
    *([*_PANIC, "--cpus", str(n)] for n in (1, 2, 8, 64, 512, 8192)),
    *([*_PANIC, "--cpus", str(n), "--others", "busy"] for n in (2, 8, 512, 8192)),
    *([*_PANIC, "--cpus", str(n), "--others", "irqsoff"] for n in (4, 512)),
    [*_PANIC, "--cpus", "8", "--after-panic", "safe_halt", "--others", "busy", "--seed", "7"],
    [*_PANIC, "--cpus", "8", "--panic-cpu", "5", "--kernel", "v6.6", "--others", "busy"],
    [*_PANIC, "--cpus", "4", "--kernel", "v6.1", "--others", "irqsoff", "--seed", "3"],
    [*_PANIC, "--cpus", "3", "--panic-timeout", "1", "--others", "busy", "--after-panic", "safe_halt"],
    [*_PANIC, "--cpus", "8", "--kdump"],
    [*_PANIC, "--cpus", "8", "--kdump", "--post-notifiers", "--others", "busy"],
    [*_PANIC, "--profile", "arm64-server-24", "--others", "busy"],
    [*_PANIC, "--profile", "arm64-server-24", "--others", "irqsoff", "--kernel", "v6.1"],
    [*_PANIC, "--profile", "xeon-gold-6154", "--others", "busy", "--after-panic", "safe_halt"],
    [*_PANIC, "--profile", "qemu-tcg-x86", "--cpus", "2", "--others", "busy"],
    [*_PANIC, "--cpus", "33", "--others", "busy", "--seed", "12345"],
    _FLOOD,
    [*_FLOOD, "--seed", "5"],
    [*_FLOOD, "--cpus", "4", "--seed", "1"],
    [*_FLOOD, "--kernel", "v7.1", "--seed", "2"],
    [*_FLOOD, "--console-spin", "panic-cpu-only", "--seed", "3"],
    [*_FLOOD, "--flood-irqs-off", "--seed", "4"],
    ["sweep", "printk-flood", "--runs", "50", "--json", "--workers", "1", "--output", "{out}"],
    ["explore", "panic-race", "--cpus", "3", "--json"],
    *_KEXEC,
]

QUICK = [c for c in COMMANDS if "8192" not in c and "512" not in c]

_RACE = ["explore", "panic-race", "--json"]
_FLOOD_X = ["explore", "printk-flood", "--json"]

EXPLORER: list[list[str]] = [
    *([*_RACE, "--reduce", "none", "--cpus", str(n)] for n in (2, 3, 4)),
    [*_RACE, "--reduce", "none", "--cpus", "3", "--variant", "load-store"],
    [*_RACE, "--reduce", "none", "--cpus", "2", "--timeouts", "any"],
    [*_RACE, "--reduce", "none", "--cpus", "2", "--timing", "timed"],
    *([*_RACE, "--cpus", str(n)] for n in (2, 4, 6, 8)),
    [*_RACE, "--reduce", "symmetry", "--cpus", "3"],
    [*_RACE, "--reduce", "por", "--cpus", "3", "--variant", "load-store"],
    _FLOOD_X,
    [*_FLOOD_X, "--reduce", "none"],
    [*_FLOOD_X, "--kernel", "v7.1"],
    [*_FLOOD_X, "--kernel", "v7.1", "--reduce", "none"],
    [*_FLOOD_X, "--kernel", "v5.17", "--kdump", "--post-notifiers"],
    [*_FLOOD_X, "--console-spin", "panic-cpu-only", "--kernel", "v5.17"],
    [*_FLOOD_X, "--timing", "timed"],
]
"""`--explorer`: the explorer's results (issue 7's speed-ups of the search must
leave every count, verdict, lasso and counterexample as it was)."""


def run_in(src: str, argv: list[str]) -> bytes:
    """stdout of `python -m haltlab argv` with `src` first on the path, plus the
    sweep's output file when the command writes one ("{out}")."""
    with tempfile.TemporaryDirectory() as tmp:
        # Relative, in the run's own directory: the sweep's JSON names its file.
        out = os.path.join(tmp, "runs.jsonl")
        args = [a.replace("{out}", "runs.jsonl") for a in argv]
        env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
        p = subprocess.run([sys.executable, "-m", "haltlab", *args], env=env, capture_output=True,
                           timeout=1800, cwd=tmp)
        # `explore` exits 1 on a violation, deadlock or livelock: a verdict, compared like the output.
        if p.returncode != 0 and not (argv[0] == "explore" and p.returncode == 1):
            raise RuntimeError(f"{src}: haltlab {' '.join(args)} exited {p.returncode}: "
                               f"{p.stderr.decode()[-2000:]}")
        blob = p.stdout if p.returncode == 0 else p.stdout + f"\n--- exit {p.returncode} ---\n".encode()
        if os.path.exists(out):
            with open(out, "rb") as f:
                # The file's header names the model by a hash of its source, so
                # that a sweep is never resumed across model versions: it differs
                # by design between two trees; every run row must not.
                runs = re.sub(rb'"source_sha256":"[0-9a-f]{64}"', b'"source_sha256":"-"', f.read(), count=1)
            blob += b"\n--- runs.jsonl ---\n" + runs
        return blob


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="the baseline's src directory")
    ap.add_argument("--src", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    ap.add_argument("--quick", action="store_true", help="leave out the 512- and 8192-CPU commands")
    ap.add_argument("--explorer", action="store_true", help="the explorer's commands (EXPLORER) instead")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", help="a directory keeping the baseline's outputs between runs")
    a = ap.parse_args(argv)
    commands = EXPLORER if a.explorer else QUICK if a.quick else COMMANDS

    def baseline(cmd):
        if not a.cache:
            return run_in(a.baseline, cmd)
        key = hashlib.sha256(repr((os.path.abspath(a.baseline), cmd)).encode()).hexdigest()[:16]
        path = os.path.join(a.cache, key)
        if os.path.exists(path):
            with open(path, "rb") as f:
                return f.read()
        blob = run_in(a.baseline, cmd)
        os.makedirs(a.cache, exist_ok=True)
        with open(path, "wb") as f:
            f.write(blob)
        return blob

    def both(cmd):
        return cmd, baseline(cmd), run_in(a.src, cmd)

    differ = 0
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for cmd, before, after in pool.map(both, commands):
            same = before == after
            differ += not same
            digest = hashlib.sha256(after).hexdigest()[:12]
            print(f"{'same  ' if same else 'DIFFER'} {len(after):>9} B {digest}  haltlab {' '.join(cmd)}",
                  flush=True)
    print(f"{len(commands) - differ} of {len(commands)} commands byte-identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
