"""The SPIN peer of `haltlab explore panic-race`: generate, compile, verify.

`panic_race.pml` (next to this file) is the Promela model; `promela(ncpus,
variant)` is that text for N CPUs (it only sets the `NCPUS` and `LOAD_STORE`
macros the model is written over). `verify()` runs the real tools as their
manuals say: `spin -a` writes the verifier pan.c, gcc -O2 compiles it (with
`-DNOREDUCE` for an unreduced search, without it for SPIN's partial-order
reduction; `-DSAFETY` in both, since only safety is checked), and the verifier
is run with a search depth (-m10000; the race is 102 + 10 per added CPU deep) and a hash table sized for N, its report parsed.

Why a subprocess per tool rather than a library: SPIN has no library interface;
pan.c is the verifier. Peak memory comes from pan's own report ("total actual
memory usage": states, hash table and DFS stack, which is what pan allocated);
`getrusage` of a child started by Python would start from the parent's RSS
(CPython's subprocess uses vfork, and Linux keeps the larger of the pre- and
post-exec high-water marks).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODEL", "STATE_TOLERANCE", "TOOLS", "SpinError", "SpinResult", "missing_tools",
           "VARIANTS", "promela", "build", "run", "verify"]

MODEL = Path(__file__).with_name("panic_race.pml")
TOOLS = ("spin", "gcc")

STATE_TOLERANCE = 0
"""How far SPIN's unreduced state count may be from the explorer's. The two
agree exactly (2 to 5 CPUs measured against the explorer, see README.md): the model's initial state
is the explorer's root, a goal state has no successor in either, and no state
lies inside a d_step. A difference is a change in one model or the other."""

VARIANTS = ("cmpxchg", "load-store")


class SpinError(RuntimeError):
    """spin, gcc or pan failed, or pan's report was not what a full search prints."""


@dataclass(frozen=True)
class SpinResult:
    ncpus: int
    variant: str
    reduce: bool             # SPIN's partial-order reduction on
    states: int              # states stored
    transitions: int         # stored + matched (pan counts the initial state as one)
    depth: int
    errors: int
    assertion: str | None    # the first violated assertion, as pan prints it
    seconds: float           # wall time of the pan run (compile excluded)
    pan_seconds: float       # pan's own "elapsed time"
    memory_mib: float        # pan's "total actual memory usage"

    @property
    def states_per_s(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float("inf")


def missing_tools() -> list[str]:
    """The tools of TOOLS that are not on PATH."""
    return [t for t in TOOLS if shutil.which(t) is None]


def promela(ncpus: int, variant: str = "cmpxchg") -> str:
    """The Promela model for `ncpus` CPUs and the claim `variant`."""
    if not 2 <= ncpus <= 8:
        raise ValueError(f"ncpus={ncpus}: the model's CPU masks are bytes, so 2 to 8 CPUs")
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: choose {' or '.join(VARIANTS)}")
    head = f"#define NCPUS {ncpus}\n" + ("#define LOAD_STORE\n" if variant == "load-store" else "")
    return head + MODEL.read_text()


def _hash_bits(ncpus: int) -> int:
    """pan's -w: a hash table of 2**w slots for about 399 * 8**(N-2) states
    (the race grows 5-8x per CPU), at least 2x the states, 2**18 to 2**28."""
    expected = 399 * 8 ** (ncpus - 2)
    return max(18, min(28, math.ceil(math.log2(2 * expected))))


def _tool(cmd: list[str], cwd: Path, what: str) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SpinError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")
    return done.stdout


def build(ncpus: int, variant: str, reduce: bool, workdir: Path, opt: str = "-O2") -> Path:
    """spin -a and gcc in `workdir`; the verifier's path. `opt` is gcc's
    optimisation level: -O2 to time the verifier, -O0 (four times quicker to
    compile) where only its verdict and counts matter."""
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "panic_race.pml"
    src.write_text(promela(ncpus, variant))
    _tool(["spin", "-a", src.name], workdir, "spin -a")
    pan = workdir / ("pan_por" if reduce else "pan_full")
    flags = ["-DSAFETY", "-DMEMLIM=16384"] + ([] if reduce else ["-DNOREDUCE"])
    # -w: pan.c indexes per-process arrays in ways gcc's -Wstringop-overflow misreads.
    _tool(["gcc", opt, "-w", *flags, "-o", pan.name, "pan.c"], workdir, "gcc")
    return pan


_NUM = r"([0-9.e+]+)"


def _field(pattern: str, text: str, what: str) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise SpinError(f"pan's report has no {what}: {text[-400:]!r}")
    return m.group(1)


def run(pan: Path, ncpus: int, variant: str, reduce: bool) -> SpinResult:
    """Run a verifier `build()` made; parse its report."""
    cmd = [f"./{pan.name}", "-m10000", f"-w{_hash_bits(ncpus)}"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=pan.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    out = done.stdout
    for sign in ("max search depth too small", "out of memory", "Search not completed"):
        if sign in out and "errors: 0" in out:
            raise SpinError(f"pan: {sign} ({ncpus} CPUs)")
    m = re.search(r"assertion violated (.*?) \(at depth", out)
    return SpinResult(
        ncpus=ncpus, variant=variant, reduce=reduce,
        states=int(_field(r"(\d+) states, stored", out, "states stored")),
        transitions=int(_field(r"(\d+) transitions", out, "transitions")),
        depth=int(_field(r"depth reached (\d+)", out, "depth")),
        errors=int(_field(r"errors: (\d+)", out, "error count")),
        assertion=m.group(1) if m else None,
        seconds=seconds,
        pan_seconds=float(_field(r"elapsed time " + _NUM, out, "elapsed time")),
        memory_mib=float(_field(_NUM + r"\s+total actual memory usage", out, "memory usage")),
    )


def verify(ncpus: int, variant: str = "cmpxchg", reduce: bool = False,
           workdir: Path | None = None, opt: str = "-O2") -> SpinResult:
    """Generate, compile and run the model once (in `workdir`, or a fresh
    temporary directory that is removed after)."""
    if workdir is not None:
        return run(build(ncpus, variant, reduce, workdir, opt), ncpus, variant, reduce)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="haltlab-spin-") as tmp:
        return run(build(ncpus, variant, reduce, Path(tmp), opt), ncpus, variant, reduce)


if __name__ == "__main__":      # a quick look: python benchmarks/peers/spin_peer.py 3
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    for v in VARIANTS:
        print(verify(n, v))
