"""S3's kexec shutdown as a sweep: CPU counts x shutdown designs x what the others do.

One run per configuration: a kexec run has no random draw but the order of
same-nanosecond events (`seed`, shared by all runs and recorded in the
header), so seeds would repeat the same figure. A run's key names what varies
(profile name, CPU count, design, others); `inputs()` records what the runs
share (every other `KexecConfig` field, the profile's content, the model's
version), as `PanicSweep` does, so a resume reuses only rows made with the
same inputs. Rows keep the shutdown time, each secondary CPU's `_cpu_down()`
time and when it executed CPU_OFF, so that a summary (and `--plot`) needs no
rerun. Workers get the loaded profile with each run, not its name.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from haltlab.engine.simulator import paused_gc
from haltlab.errors import ConfigError
from haltlab.kernel.idle import OTHERS
from haltlab.kernel.policies import KexecShutdown
from haltlab.machine.profile import Profile, load_profile
from haltlab.scenarios.kexec import KexecConfig, simulate_kexec
from haltlab.sweep.inputs import model_digest, model_version, profile_digest, profile_state, worker_profile
from haltlab.sweep.panic import MAX_RUNS
from haltlab.sweep.ranges import count, parse_ints, parse_names, walk
from haltlab.sweep.store import each_row

__all__ = ["KexecSweep", "KexecGroup", "kexec_row", "KEXEC_KEEP", "DESIGNS"]

KEXEC_KEEP = ("outcome", "shutdown_ns", "rcu_gp_ns", "phases_ns", "bugs", "cpus_running_at_jump",
              "spis_routed_to_dead_cpus", "events")
DESIGNS = tuple(s.value for s in KexecShutdown)
_PER_RUN = ("profile", "cpus", "shutdown", "others")     # named by the key, not the header


@dataclass(frozen=True)
class KexecGroup:
    """One configuration's run in a sweep file, summarised."""

    cpus: int
    shutdown: str
    others: str
    outcome: str
    shutdown_ns: int | None
    down_ns_median: float | None        # over the secondaries' _cpu_down() (hotplug designs only)
    cpu_off_at_ns_median: float | None  # over when each secondary executed CPU_OFF
    bugs: int

    @property
    def per_secondary_ns(self) -> float | None:
        """The shutdown time over the CPUs taken down (S3's "per CPU")."""
        return None if self.shutdown_ns is None else self.shutdown_ns / (self.cpus - 1)


@dataclass(frozen=True)
class KexecSweep:
    """A kexec sweep, checked: its profile, the lists it crosses and the config
    every run shares. Build it with `parse()`."""

    profile: Profile
    cpus: tuple[range, ...]
    shutdown: tuple[str, ...]
    others: tuple[str, ...]
    base: KexecConfig                   # every run's config but for the per-run fields

    @classmethod
    def parse(cls, *, profile: str = "arm64-server-24", cpus: str = "8,16,32,64,128,256",
              shutdown: str = "hotplug,smp-send-stop,parallel-hotplug", others: str = "idle,busy",
              **config: Any) -> KexecSweep:
        """A sweep from option text; `config` sets other `KexecConfig` fields
        (`kernel=`, `console_loglevel=`, `freeze=`). Raises `ConfigError` naming the field."""
        loaded = load_profile(profile)
        sweep = cls(loaded, parse_ints("cpus", cpus), parse_names("shutdown", shutdown, DESIGNS),
                    parse_names("others", others, OTHERS),
                    KexecConfig(profile=profile, timeline=False, **config))
        if sweep.runs > MAX_RUNS:
            raise ConfigError("cpus", cpus, f"{sweep.runs:,} runs; a sweep takes at most {MAX_RUNS:,}")
        for r in sweep.cpus:        # the ends first: they bound how many counts there are
            sweep.base.validate(r[0], loaded.arch)
            sweep.base.validate(r[-1], loaded.arch)
        return sweep

    @property
    def runs(self) -> int:
        return count(self.cpus) * len(self.shutdown) * len(self.others)

    def inputs(self) -> dict[str, Any]:
        """What every run shares, for the sweep file's header."""
        shared = {f.name: getattr(self.base, f.name) for f in fields(KexecConfig) if f.name not in _PER_RUN}
        return {"scenario": "kexec", "model": model_version(),
                "profile": {"name": self.profile.name, "sha256": profile_digest(self.profile)},
                "config": shared, "row": [*KEXEC_KEEP, "down_ns", "cpu_off_at_ns"]}

    def key(self, cpus: int, shutdown: str, others: str) -> str:
        return f"{self.profile.name}/cpus={cpus:05d}/{shutdown}/{others}"

    def _points(self) -> Iterator[tuple[int, str, str]]:
        for n in walk(self.cpus):
            for design in self.shutdown:
                for other in self.others:
                    yield n, design, other

    def items(self) -> Iterator[tuple[str, tuple]]:
        """(key, job) for `run_items(kexec_row, ...)`: a job is the run's
        `KexecConfig` as a dict, the profile and the model's digest."""
        base, profile, digest = asdict(self.base), profile_state(self.profile), model_digest()
        for n, design, other in self._points():
            yield self.key(n, design, other), ({**base, "cpus": n, "shutdown": design, "others": other},
                                               profile, digest)

    def todo(self, done: set[str]) -> int:
        return self.runs - sum(self.key(*p) in done for p in self._points()) if done else self.runs

    def summary(self, path: str | Path) -> list[KexecGroup]:
        """This sweep's configurations in the file at `path` (which may hold
        others), by design, then load, then CPU count, in the order the options
        gave them; read a row at a time."""
        wanted = {self.key(*p): p for p in self._points()}
        groups: dict[tuple[int, str, str], KexecGroup] = {}
        each_row(path, lambda row: groups.__setitem__(wanted[row["key"]], _group(wanted[row["key"]], row["result"]))
                 if row["key"] in wanted else None)
        order = {p: i for i, p in enumerate(self._points())}
        return [groups[p] for p in sorted(groups, key=lambda p: (self.shutdown.index(p[1]), self.others.index(p[2]),
                                                                 order[p]))]


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _group(point: tuple[int, str, str], r: dict) -> KexecGroup:
    n, design, other = point
    return KexecGroup(n, design, other, r["outcome"], r["shutdown_ns"], _median(r["down_ns"]),
                      _median(r["cpu_off_at_ns"]), len(r["bugs"]))


def kexec_row(job: tuple) -> dict:
    """One sweep run (module-level, so that worker processes can unpickle it)."""
    cfg, state, digest = job
    with paused_gc():           # as run_kexec(): a run makes no cycles worth collecting
        r = simulate_kexec(KexecConfig(**cfg), worker_profile(state, digest)).result
    return {**{k: r[k] for k in KEXEC_KEEP}, "down_ns": [c["down_ns"] for c in r["per_cpu"]],
            "cpu_off_at_ns": [c["cpu_off_at_ns"] for c in r["per_cpu"]]}
