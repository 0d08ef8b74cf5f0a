"""S4's x86 kexec reboot as a sweep: CPU counts x bring-up designs x park C-state.

One run per configuration, as `KexecSweep` (a run has no random draw but the
order of same-nanosecond events; `seed` is shared and recorded in the
header). The C-state axis crosses only the design that waits in a C-state,
`park-mwait` (its MWAIT hint, `X86KexecConfig.park_cstate`); `init-sipi`,
`parallel` and `park-spin` never read it (their APs are woken by INIT/SIPI
from the old kernel's idle state, or spin in the park), so each runs once per
CPU count, keyed with C-state `-` and run with the config's default hint.
A run's key names what varies (profile, CPU count, design, C-state);
`inputs()` records what the runs share (the other `X86KexecConfig` fields,
the profile's content, the model's version), so a resume reuses only rows
made with the same inputs.

The CPU counts must fit the profile's topology (`machine.topology`): the
profile gives sockets and threads per core, the cores per socket follow from
the count. On xeon-gold-6154 (2 sockets x 2 threads) any multiple of 4 fits,
so 8 to 512 CPUs are 2 to 128 cores per socket with the 6154's per-CPU
costs: past 72 CPUs a hypothetical, larger part of the same kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from haltlab.engine.simulator import paused_gc
from haltlab.errors import ConfigError
from haltlab.kernel.policies import Bringup
from haltlab.machine.profile import Profile, load_profile
from haltlab.machine.topology import topology_of
from haltlab.scenarios.kexec_x86 import CSTATES, X86KexecConfig, simulate_kexec_x86
from haltlab.sweep.inputs import model_digest, model_version, profile_digest, profile_state, worker_profile
from haltlab.sweep.panic import MAX_RUNS
from haltlab.sweep.ranges import count, parse_ints, parse_names, walk
from haltlab.sweep.store import each_row

__all__ = ["X86KexecSweep", "X86KexecGroup", "kexec_x86_row", "X86_KEXEC_KEEP", "BRINGUPS", "CSTATE_DESIGNS",
           "NO_CSTATE"]

X86_KEXEC_KEEP = ("outcome", "reset_reason", "smp_init_ns", "downtime_ns", "phases", "cpus_online",
                  "park_violations", "events")
BRINGUPS = tuple(b.value for b in Bringup)
CSTATE_DESIGNS = (Bringup.PARK_MWAIT.value,)    # the designs whose APs wait in the C-state the axis sets
NO_CSTATE = "-"                                  # a design the C-state axis leaves unchanged
_PER_RUN = ("profile", "cpus", "bringup", "park_cstate")     # named by the key, not the header


@dataclass(frozen=True)
class X86KexecGroup:
    """One configuration's run in a sweep file."""

    cpus: int
    bringup: str
    cstate: str                  # NO_CSTATE for a design that waits in none
    outcome: str
    smp_init_ns: int | None
    downtime_ns: int | None
    cpus_online: int
    park_violations: int

    @property
    def variant(self) -> str:
        """The design as the table and the plot name it: `park-mwait C6`, `parallel`."""
        return self.bringup if self.cstate == NO_CSTATE else f"{self.bringup} {self.cstate}"


@dataclass(frozen=True)
class X86KexecSweep:
    """An x86 kexec sweep, checked. Build it with `parse()`."""

    profile: Profile
    cpus: tuple[range, ...]
    bringup: tuple[str, ...]
    cstates: tuple[str, ...]
    base: X86KexecConfig         # every run's config but for the per-run fields

    @classmethod
    def parse(cls, *, profile: str = "xeon-gold-6154", cpus: str = "8,16,32,64,128,256,512",
              bringup: str = ",".join(BRINGUPS), park_cstate: str = ",".join(CSTATES),
              **config: Any) -> X86KexecSweep:
        """A sweep from option text; `config` sets other `X86KexecConfig` fields
        (`kernel=`, `lpj=`, `console_loglevel=`). Raises `ConfigError` naming the field."""
        loaded = load_profile(profile)
        sweep = cls(loaded, parse_ints("cpus", cpus), parse_names("bringup", bringup, BRINGUPS),
                    parse_names("park_cstate", park_cstate, CSTATES),
                    X86KexecConfig(profile=profile, timeline=False, **config))
        if sweep.runs > MAX_RUNS:
            raise ConfigError("cpus", cpus, f"{sweep.runs:,} runs; a sweep takes at most {MAX_RUNS:,}")
        for design in sweep.bringup:                  # each design's own checks (its kernel, ...)
            for r in sweep.cpus:
                X86KexecConfig(**{**asdict(sweep.base), "bringup": design}).validate(r[0], loaded)
                X86KexecConfig(**{**asdict(sweep.base), "bringup": design}).validate(r[-1], loaded)
        for n in walk(sweep.cpus):                    # at most MAX_RUNS counts: each must fit the topology
            topology_of(loaded, n)
        return sweep

    def _variants(self) -> list[tuple[str, str]]:
        return [(d, c) for d in self.bringup for c in (self.cstates if d in CSTATE_DESIGNS else (NO_CSTATE,))]

    @property
    def runs(self) -> int:
        return count(self.cpus) * len(self._variants())

    @property
    def unchanged(self) -> tuple[str, ...]:
        """This sweep's designs the C-state axis leaves unchanged (run once per CPU count)."""
        return tuple(d for d in self.bringup if d not in CSTATE_DESIGNS)

    def inputs(self) -> dict[str, Any]:
        """What every run shares, for the sweep file's header."""
        shared = {f.name: getattr(self.base, f.name) for f in fields(X86KexecConfig) if f.name not in _PER_RUN}
        return {"scenario": "kexec-x86", "model": model_version(),
                "profile": {"name": self.profile.name, "sha256": profile_digest(self.profile)},
                "config": shared, "cstate_designs": list(CSTATE_DESIGNS), "row": list(X86_KEXEC_KEEP)}

    def key(self, cpus: int, bringup: str, cstate: str) -> str:
        return f"{self.profile.name}/cpus={cpus:05d}/{bringup}/{cstate}"

    def _points(self) -> Iterator[tuple[int, str, str]]:
        variants = self._variants()
        for n in walk(self.cpus):
            for design, cstate in variants:
                yield n, design, cstate

    def items(self) -> Iterator[tuple[str, tuple]]:
        """(key, job) for `run_items(kexec_x86_row, ...)`: the run's config as a
        dict, the profile and the model's digest."""
        base, profile, digest = asdict(self.base), profile_state(self.profile), model_digest()
        for n, design, cstate in self._points():
            cfg = {**base, "cpus": n, "bringup": design}
            if cstate != NO_CSTATE:
                cfg["park_cstate"] = cstate
            yield self.key(n, design, cstate), (cfg, profile, digest)

    def todo(self, done: set[str]) -> int:
        return self.runs - sum(self.key(*p) in done for p in self._points()) if done else self.runs

    def summary(self, path: str | Path) -> list[X86KexecGroup]:
        """This sweep's configurations in the file at `path`, by design and
        C-state as the options gave them, then CPU count."""
        wanted = {self.key(*p): p for p in self._points()}
        groups: dict[tuple[int, str, str], X86KexecGroup] = {}
        each_row(path, lambda row: groups.__setitem__(wanted[row["key"]], _group(wanted[row["key"]], row["result"]))
                 if row["key"] in wanted else None)
        variants = self._variants()
        return [groups[p] for p in sorted(groups, key=lambda p: (variants.index((p[1], p[2])), p[0]))]


def _group(point: tuple[int, str, str], r: dict) -> X86KexecGroup:
    n, design, cstate = point
    return X86KexecGroup(n, design, cstate, r["outcome"], r["smp_init_ns"], r["downtime_ns"], r["cpus_online"],
                         len(r["park_violations"]))


def kexec_x86_row(job: tuple) -> dict:
    """One sweep run (module-level, so that worker processes can unpickle it)."""
    cfg, state, digest = job
    with paused_gc():           # as run_kexec_x86(): a run makes no cycles worth collecting
        r = simulate_kexec_x86(X86KexecConfig(**cfg), worker_profile(state, digest)).result
    return {k: r[k] for k in X86_KEXEC_KEEP}
