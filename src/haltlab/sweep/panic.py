"""The panic scenario as a sweep: CPU counts x `after_panic` x `others` x seeds.

`PanicSweep.parse()` takes the options as text (`cpus="8,64"`, `seeds="0-99"`),
checks everything before a run starts, and refuses a sweep of more than
`MAX_RUNS` runs: resuming keeps every done run's key in memory (126 bytes a
key, measured with tracemalloc over a million keys, so about 130 MB at the
cap) and a sweep is walked, never listed, so that is the bound that matters. Each run's key names what varies between runs
(profile name, CPU count, policy, others, seed); `inputs()` records, for the
sweep file's header, everything they share, so no row made with other inputs is
reused: every `PanicConfig` field the key does not name, the profile's content
and the model's version (see `haltlab.sweep.inputs`).

Workers get the loaded profile with each run, not its name, so every run uses
exactly the profile the header describes, and a Dask worker needs no profile
file; a worker whose model differs from the sweep's refuses to run.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from haltlab.errors import ConfigError
from haltlab.kernel.idle import OTHERS
from haltlab.kernel.policies import POLICIES
from haltlab.machine.profile import Profile, load_profile
from haltlab.scenarios.panic import PanicConfig, simulate_panic
from haltlab.sweep.inputs import model_digest, model_version, profile_digest, profile_state, worker_profile
from haltlab.sweep.ranges import count, parse_ints, parse_names, walk
from haltlab.sweep.store import each_row

__all__ = ["PanicSweep", "Group", "panic_row", "MAX_RUNS", "KEEP"]

MAX_RUNS = 1_000_000
KEEP = ("outcome", "time_to_end_ns", "panic_to_others_stopped_ns", "smp_send_stop_ns", "host_cpu_s_per_s",
        "perf_samples", "events")
_LABELS = {"cpus": "CPU counts", "after_panic": "after_panic policies", "others": "others", "seeds": "seeds"}
_PER_RUN = ("profile", "cpus", "after_panic", "others", "seed")   # named by the key, not the header


@dataclass(frozen=True)
class Group:
    """One configuration's runs in a sweep file, summarised."""

    cpus: int
    after_panic: str
    others: str
    runs: int
    hung: int
    time_to_end_ns: float | None        # medians over the runs that have one
    host_cpu_s_per_s: float | None


@dataclass(frozen=True)
class PanicSweep:
    """A panic sweep, checked: its profile, the lists it crosses, and the
    config every run shares. Build it with `parse()`."""

    profile: Profile
    cpus: tuple[range, ...]
    after_panic: tuple[str, ...]
    others: tuple[str, ...]
    seeds: tuple[range, ...]
    base: PanicConfig                   # every run's config but for the per-run fields

    @classmethod
    def parse(cls, *, profile: str = "kvm-x86", cpus: str = "8", after_panic: str = "mdelay,safe_halt",
              others: str = "idle", seeds: str = "0-3", **config: Any) -> PanicSweep:
        """A sweep from option text; `config` sets other `PanicConfig` fields
        (`observe_ns=...`). Raises `ConfigError` naming the field."""
        sweep = cls(load_profile(profile), parse_ints("cpus", cpus),
                    parse_names("after_panic", after_panic, POLICIES["after_panic"]),
                    parse_names("others", others, OTHERS), parse_ints("seeds", seeds),
                    PanicConfig(profile=profile, timeline=False, **config))
        sweep._check_size({"cpus": cpus, "after_panic": after_panic, "others": others, "seeds": seeds})
        for r in sweep.cpus:        # the ends first: they bound how many counts there are
            sweep.base.validate(r[0])
            sweep.base.validate(r[-1])
        for n in walk(sweep.cpus):  # then each, here, not in a worker after the pool started
            sweep.base.validate(n)
        return sweep

    def _check_size(self, texts: dict[str, str]) -> None:
        counts = {"cpus": count(self.cpus), "after_panic": len(self.after_panic),
                  "others": len(self.others), "seeds": count(self.seeds)}
        if self.runs > MAX_RUNS:
            field = max(counts, key=counts.get)
            product = " x ".join(f"{n:,} {_LABELS[f]}" for f, n in counts.items())
            raise ConfigError(field, texts[field], f"{self.runs:,} runs ({product}); a sweep takes at most "
                              f"{MAX_RUNS:,} (each done run's key is kept in memory to resume)")

    @property
    def runs(self) -> int:
        return count(self.cpus) * len(self.after_panic) * len(self.others) * count(self.seeds)

    def inputs(self) -> dict[str, Any]:
        """What every run shares, for the sweep file's header."""
        shared = {f.name: getattr(self.base, f.name) for f in fields(PanicConfig) if f.name not in _PER_RUN}
        return {"scenario": "panic", "model": model_version(),
                "profile": {"name": self.profile.name, "sha256": profile_digest(self.profile)},
                "config": shared, "row": list(KEEP)}

    def key(self, cpus: int, after_panic: str, others: str, seed: int) -> str:
        return f"{self.profile.name}/cpus={cpus:05d}/{after_panic}/{others}/seed={seed:06d}"

    def _points(self) -> Iterator[tuple[int, str, str, int]]:
        for n in walk(self.cpus):
            for policy in self.after_panic:
                for other in self.others:
                    for seed in walk(self.seeds):
                        yield n, policy, other, seed

    def keys(self) -> Iterator[str]:
        return (self.key(*point) for point in self._points())

    def items(self) -> Iterator[tuple[str, tuple]]:
        """(key, job) for `run_sweep(panic_row, ...)`: a job is the run's
        `PanicConfig` as a dict, the profile and the model's digest."""
        base, profile, digest = asdict(self.base), profile_state(self.profile), model_digest()
        for n, policy, other, seed in self._points():
            cfg = {**base, "cpus": n, "after_panic": policy, "others": other, "seed": seed}
            yield self.key(n, policy, other, seed), (cfg, profile, digest)

    def todo(self, done: set[str]) -> int:
        """How many of this sweep's runs are not in `done`."""
        return self.runs - sum(key in done for key in self.keys()) if done else self.runs

    def summary(self, path: str | Path) -> list[Group]:
        """Medians per configuration of this sweep's runs in the file at `path`
        (which may hold others), read a row at a time."""
        cpus, groups = set(walk(self.cpus)), {}

        def on_row(row: dict) -> None:
            parts = self._parse_key(row["key"])
            if parts is None:
                return
            n, policy, other, seed = parts
            if (n in cpus and policy in self.after_panic and other in self.others
                    and any(seed in r for r in self.seeds)):
                groups.setdefault((n, policy, other), _Runs()).add(row["result"])

        each_row(path, on_row)
        return [runs.group(*config) for config, runs in sorted(groups.items())]

    def _parse_key(self, key: str) -> tuple[int, str, str, int] | None:
        try:
            name, cpus, policy, other, seed = key.rsplit("/", 4)
            if name != self.profile.name or not cpus.startswith("cpus=") or not seed.startswith("seed="):
                return None
            return int(cpus[5:]), policy, other, int(seed[5:])
        except ValueError:
            return None


class _Runs:
    """What a summary keeps of one configuration's runs."""

    def __init__(self) -> None:
        self.runs, self.hung, self.ends, self.host = 0, 0, [], []

    def add(self, result: dict) -> None:
        self.runs += 1
        self.hung += result.get("outcome") == "hung"
        if result.get("time_to_end_ns") is not None:
            self.ends.append(result["time_to_end_ns"])
        if result.get("host_cpu_s_per_s") is not None:
            self.host.append(result["host_cpu_s_per_s"])

    def group(self, cpus: int, after_panic: str, others: str) -> Group:
        return Group(cpus, after_panic, others, self.runs, self.hung,
                     statistics.median(self.ends) if self.ends else None,
                     statistics.median(self.host) if self.host else None)


def panic_row(job: tuple) -> dict:
    """One sweep run (module-level, so that worker processes can unpickle it)."""
    cfg, state, digest = job
    r = simulate_panic(PanicConfig(**cfg), worker_profile(state, digest)).result
    return {k: r.get(k) for k in KEEP}
