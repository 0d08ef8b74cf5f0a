"""S2's stress campaign as a sweep: N runs of `run_printk_flood` per variant.

A variant is a kernel spec and a `console_spin` policy; a campaign runs each
variant `runs` times. Run i's seed is `run_seed(seed, i)`, a hash of the
campaign's seed and the run's index, so the same `--seed` and `--runs` give the
same runs in any order, on any worker, and every variant meets the same trigger
delays and jitter draws (common random numbers: two variants' rates differ by
what the variants do, not by their draws).

A run's key names its profile, variant, CPU count, campaign seed and index;
`inputs()` records for the sweep file's header what the runs share (the other
`PrintkFloodConfig` fields, the profile's content, the model's version), as
`PanicSweep` does, so a resume reuses only rows made with the same inputs and
`--runs 2000` after `--runs 1409` runs the 591 missing ones.

`summary()` reads a campaign's rows back per variant: hangs/runs with the 95%
Wilson interval, how each run was decided (`end`: "end Kernel panic" was
printed; `livelock`: `livelock_proof()` held, a hang proven without flooding
60 s; `timeout`: 60 s after the trigger with neither), and the trigger-to-end
times of the runs that ended. `run_campaign()` runs one without a file (what
`reproduce` does).
"""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.policies import POLICIES
from haltlab.machine.profile import Profile, load_profile
from haltlab.scenarios.printk_flood import PrintkFloodConfig, run_printk_flood
from haltlab.sweep.executor import slots
from haltlab.sweep.inputs import model_digest, model_version, profile_digest, profile_state, worker_profile
from haltlab.sweep.panic import MAX_RUNS
from haltlab.sweep.ranges import parse_names
from haltlab.sweep.stats import wilson_interval
from haltlab.sweep.store import each_row

__all__ = ["FloodSweep", "Variant", "flood_row", "run_seed", "run_campaign", "run_campaigns", "parse_kernels", "summarise",
           "FLOOD_KEEP", "DECISIONS"]

FLOOD_KEEP = ("hung", "decided_by", "decided_at_ns", "seed", "trigger_ns", "trigger_to_end_ns",
              "panic_to_end_ns", "drop_notices_after_trigger", "guard_fired", "events")
DECISIONS = ("end", "livelock", "timeout")
_PER_RUN = ("profile", "kernel", "console_spin", "cpus", "seed")     # named by the key, not the header


def run_seed(seed: int, index: int) -> int:
    """Run `index`'s seed in the campaign of seed `seed` (32 bits of a SHA-256,
    not `seed + index`, so campaigns of neighbouring seeds share no run)."""
    digest = hashlib.sha256(f"printk-flood campaign {seed} run {index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def parse_kernels(specs: Iterable[str]) -> tuple[str, ...]:
    """Kernel specs from repeated `--kernel` values, each possibly a comma list,
    each once, in the order given; a bad one is a `ConfigError` on `kernel`."""
    kernels = tuple(dict.fromkeys(s.strip() for text in specs for s in text.split(",") if s.strip()))
    if not kernels:
        raise ConfigError("kernel", ",".join(specs), "give at least one kernel, as v5.17+d51507098ff9")
    for spec in kernels:
        commit_set(spec)
    return kernels


@dataclass(frozen=True)
class Variant:
    """One variant's runs in a campaign, summarised."""

    kernel: str
    console_spin: str
    runs: int
    hung: int
    decided: dict[str, int]             # DECISIONS -> runs
    hang_rate_low: float                # the 95% Wilson interval of hung / runs
    hang_rate_high: float
    trigger_to_end_ns: dict[str, int] | None    # median, min, max over the runs that ended

    @property
    def hang_rate(self) -> float:
        return self.hung / self.runs

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hang_rate": self.hang_rate}


@dataclass(frozen=True)
class FloodSweep:
    """A campaign, checked: the profile, the variants, the run count, the
    campaign seed and the config every run shares. Build it with `parse()`."""

    profile: Profile
    kernels: tuple[str, ...]
    console_spins: tuple[str, ...]
    runs: int
    seed: int
    base: PrintkFloodConfig             # every run's config but for the per-run fields

    @classmethod
    def parse(cls, *, profile: str | Profile = "kvm-x86", kernels: Iterable[str] = ("v5.17+d51507098ff9",),
              console_spin: str = "stock", runs: int = 100, seed: int = 0, cpus: int = 2,
              **config: Any) -> FloodSweep:
        """A campaign from option values; `config` sets other `PrintkFloodConfig`
        fields (`hang_after_s=...`). Raises `ConfigError` naming the field."""
        loaded = profile if isinstance(profile, Profile) else load_profile(profile)
        if runs < 1:
            raise ConfigError("runs", runs, "must be at least 1")
        sweep = cls(loaded, parse_kernels(kernels), parse_names("console_spin", console_spin,
                                                                  POLICIES["console_spin"]),
                    runs, seed, PrintkFloodConfig(profile=loaded.name, cpus=cpus, seed=seed, **config))
        if sweep.total > MAX_RUNS:
            raise ConfigError("runs", runs, f"{sweep.total:,} runs ({runs:,} x {len(sweep.variants())} "
                              f"variants); a sweep takes at most {MAX_RUNS:,} (each done run's key is kept "
                              "in memory to resume)")
        for kernel, spin in sweep.variants():          # every variant checked here, not in a worker
            sweep._config(kernel, spin, 0).validate()
        if "devkmsg_user_ns" not in loaded.params:     # what build_printk_flood would refuse per run
            raise ConfigError("profile", loaded.name, "has no [costs] devkmsg_user_ns, the flood loop's cost")
        return sweep

    @property
    def total(self) -> int:
        return self.runs * len(self.kernels) * len(self.console_spins)

    def variants(self) -> list[tuple[str, str]]:
        return [(k, s) for k in self.kernels for s in self.console_spins]

    def _config(self, kernel: str, spin: str, index: int) -> PrintkFloodConfig:
        return replace(self.base, kernel=kernel, console_spin=spin, seed=run_seed(self.seed, index))

    def inputs(self) -> dict[str, Any]:
        """What every run shares, for the sweep file's header."""
        shared = {f.name: getattr(self.base, f.name) for f in fields(PrintkFloodConfig) if f.name not in _PER_RUN}
        return {"scenario": "printk-flood", "model": model_version(),
                "profile": {"name": self.profile.name, "sha256": profile_digest(self.profile)},
                "config": shared, "row": list(FLOOD_KEEP)}

    def key(self, kernel: str, spin: str, index: int) -> str:
        return (f"{self.profile.name}/{kernel}/{spin}/cpus={self.base.cpus:02d}/"
                f"seed={self.seed}/run={index:07d}")

    def _points(self) -> Iterator[tuple[str, str, int]]:
        for kernel, spin in self.variants():
            for i in range(self.runs):
                yield kernel, spin, i

    def items(self) -> Iterator[tuple[str, tuple]]:
        """(key, job) for `run_items(flood_row, ...)`: a job is the run's
        config as a dict, the profile and the model's digest."""
        profile, digest = profile_state(self.profile), model_digest()
        for kernel, spin, i in self._points():
            yield self.key(kernel, spin, i), (asdict(self._config(kernel, spin, i)), profile, digest)

    def todo(self, done: set[str]) -> int:
        return self.total - sum(self.key(*p) in done for p in self._points()) if done else self.total

    def summary(self, path: str | Path) -> list[Variant]:
        """Per variant, this campaign's rows in the sweep file at `path`
        (which may hold other campaigns'), read a row at a time."""
        wanted = {self.key(*p): p[:2] for p in self._points()}
        groups: dict[tuple[str, str], list[dict]] = {v: [] for v in self.variants()}
        each_row(path, lambda row: groups[wanted[row["key"]]].append(row["result"])
                 if row["key"] in wanted else None)
        return [summarise(kernel, spin, rows) for (kernel, spin), rows in groups.items() if rows]


def summarise(kernel: str, spin: str, rows: list[dict]) -> Variant:
    """One variant's runs as counts, the Wilson interval and the end times."""
    hung = sum(bool(r["hung"]) for r in rows)
    decided = {d: sum(r["decided_by"] == d for r in rows) for d in DECISIONS}
    ends = sorted(r["trigger_to_end_ns"] for r in rows if r["trigger_to_end_ns"] is not None)
    times = {"median": round(statistics.median(ends)), "min": ends[0], "max": ends[-1]} if ends else None
    low, high = wilson_interval(hung, len(rows))
    return Variant(kernel, spin, len(rows), hung, decided, low, high, times)


def flood_row(job: tuple) -> dict:
    """One campaign run (module-level, so that worker processes can unpickle it)."""
    cfg, state, digest = job
    r = run_printk_flood(PrintkFloodConfig(**cfg), worker_profile(state, digest))
    return {k: r[k] if k != "seed" else r["config"]["seed"] for k in FLOOD_KEEP}


def run_campaign(sweep: FloodSweep, pool=None) -> list[Variant]:
    """Every run of `sweep` with no sweep file, through `pool` (an executor)
    or in this process; the same variants `summary()` would give."""
    (variants,) = run_campaigns([sweep], pool)
    return variants


def run_campaigns(sweeps: list[FloodSweep], pool=None) -> list[list[Variant]]:
    """`run_campaign()` of each of `sweeps`, their runs through `pool` as one
    stream (`reproduce`'s S2 rows: one pool and no idle worker between
    campaigns); chunks of at most 16 runs, fewer when there are few runs a
    worker, so that no worker is left with the last long chunk."""
    jobs = [job for sweep in sweeps for _, job in sweep.items()]
    if pool is None:
        results = map(flood_row, jobs)
    else:
        chunk = max(1, min(16, len(jobs) // (4 * slots(pool))))
        results = pool.map(flood_row, jobs, chunksize=chunk)
    out = []
    for sweep in sweeps:
        groups: dict[tuple[str, str], list[dict]] = {v: [] for v in sweep.variants()}
        for (kernel, spin, _), row in zip(sweep._points(), results):
            groups[(kernel, spin)].append(row)
        out.append([summarise(kernel, spin, rows) for (kernel, spin), rows in groups.items()])
    return out
