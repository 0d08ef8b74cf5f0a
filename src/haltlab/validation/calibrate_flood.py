"""`haltlab lab calibrate --flood FILE`: the flood loop's cost from a `lab flood` campaign.

What `lab flood` measures that says how fast S2's writer goes once the panic
has started: the "** N printk messages dropped **" notices after the trigger.
While the ring laps, the console (the panic CPU) prints one record between two
gap events and the writer stores N in that time, so N is the console's record
time over the writer's iteration. The console's cost per character is the
panic's calibration (`lab calibrate`), so the iteration, and with it
`devkmsg_user_ns` (the loop outside `vprintk_emit()`), follows. Solved, like
the IPI latency, on the model itself: the model's median records per notice
over `seeds` seeds is a function of `devkmsg_user_ns` whose reciprocal is
close to linear (the iteration is `devkmsg_user_ns` plus the store), so a
secant on 1/N converges in a few steps.

Not used: the pre-trigger record rate. Before the trigger the writer prints
its own records, so that rate is console time plus one iteration, about 99 %
console time: `devkmsg_user_ns` would be the difference of two nearly equal
numbers. It is validated instead (validate's `flood_records_per_s_before_trigger`),
a test of the panic-calibrated console cost under a flood. Nor are the
guard's firing, the notices' count or the trigger-to-end times: those are
what validate compares.
"""

from __future__ import annotations

import datetime
import json
import statistics
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.machine.profile import Profile, load_profile
from haltlab.validation.calibrate import _with_values
from haltlab.validation.flood import (
    DEFAULT_SEEDS, check_lab_flood, lab_flood_runs, model_flood_runs, records_per_drop_notice,
)
from haltlab.validation.save import check_rewritable, write_or_keep

__all__ = ["calibrate_flood", "read_lab_result", "model_records_per_notice", "FLOOD_KEY", "CALIBRATION_CPUS"]

FLOOD_KEY = "devkmsg_user_ns"
CALIBRATION_CPUS = 2             # validate's `flood-cpus2`: the campaign calibration reads
_TOLERANCE = 0.05                # stop when the model's median is within 5 % of the lab's (seed noise)
_STEPS = 6


def read_lab_result(path: str | Path, what: str = "--flood", *, campaigns_ok: bool = False) -> dict:
    """A saved `lab flood --output FILE` result, or a one-line error naming it.
    `campaigns_ok`: a JSON array of results (`lab kexec` with several CPU
    counts saves one) is accepted as `{"campaigns": [...]}`."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"{what} {path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise UserError(f"{what} {path}: not JSON ({e})") from None
    if campaigns_ok and isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        return {"campaigns": data}
    if not isinstance(data, dict):
        raise UserError(f"{what} {path}: not a lab result (a JSON object)")
    return data


def model_records_per_notice(profile: Profile, user_ns: int, seeds: int) -> float | None:
    trial = _with_values(profile, {FLOOD_KEY: user_ns}, "calibration trial")
    values = [records_per_drop_notice(r) for r in model_flood_runs(CALIBRATION_CPUS, seeds, trial)]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _solve(profile: Profile, target: float, seeds: int) -> tuple[int, float, list]:
    """devkmsg_user_ns with the model's median records per notice at `target`."""
    u0 = max(1000, profile.cost_ns(FLOOD_KEY))
    points = [(u, model_records_per_notice(profile, u, seeds)) for u in (u0, 4 * u0)]
    for _ in range(_STEPS):
        (ua, na), (ub, nb) = points[-2:]
        if na is None or nb is None or na == nb:
            raise UserError(f"calibration: the model's runs gave no drop notices at {FLOOD_KEY} = "
                            f"{ua if na is None else ub} ns, or none that vary: cannot solve")
        u = round(ua + (1 / target - 1 / na) * (ub - ua) / (1 / nb - 1 / na))
        u = max(0, u)
        points.append((u, model_records_per_notice(profile, u, seeds)))
        if points[-1][1] is not None and abs(points[-1][1] - target) <= _TOLERANCE * target:
            return u, points[-1][1], points
    raise UserError(f"calibration: {FLOOD_KEY} did not converge in {_STEPS} steps ({points})")


def calibrate_flood(path: str | Path, profile_name: str = "qemu-tcg-x86", *, write: bool = True,
                    seeds: int = DEFAULT_SEEDS) -> dict:
    """Solve `devkmsg_user_ns` from the `lab flood` result in `path` (2 vCPUs)
    and (with `write`) rewrite the profile, the value carrying its provenance."""
    if not isinstance(seeds, int) or seeds < 4:
        raise ConfigError("seeds", seeds, "must be an integer >= 4")
    profile = load_profile(profile_name)
    if not profile.is_guest:
        raise ConfigError("profile", profile_name, "calibration measures a guest; this profile is bare metal")
    lab = read_lab_result(path)
    check_lab_flood(lab, CALIBRATION_CPUS, f"--flood {path}")
    if write:
        check_rewritable(profile.path)
    per_notice = [v for v in map(records_per_drop_notice, lab_flood_runs(lab)) if v is not None]
    if not per_notice:
        raise UserError(f"--flood {path}: no run has a drop notice after the trigger (the ring never wrapped), "
                        f"so it says nothing about the flood's rate: keep the estimate")
    target = statistics.median(per_notice)
    user_ns, model_n, trials = _solve(profile, target, seeds)
    provenance = (f"lab measurement: haltlab lab calibrate --profile {profile_name} --flood {Path(path).name} "
                  f"({datetime.date.today().isoformat()}; `lab flood --cpus {lab['cpus']} --runs {lab['n_runs']}`, "
                  f"kernel {lab['kernel_release']} ({lab['kernel_package']} {lab['kernel_package_version']}), "
                  f"QEMU {lab['qemu_version']}, {lab['accelerator']}; median of the {len(per_notice)} runs with drop "
                  f"notices, {target:.1f} records per notice): solved so the model's median records per drop "
                  f"notice after the trigger ({seeds} seeds) equals the lab's, with console_ns_per_char as "
                  f"calibrated")
    result = {"profile": profile_name, "path": str(profile.path), "written": write,
              "values": {FLOOD_KEY: user_ns}, "previous": {FLOOD_KEY: profile.get(FLOOD_KEY)},
              "provenance": provenance, "lab_records_per_notice": target, "model_records_per_notice": model_n,
              "trials": [{"devkmsg_user_ns": u, "records_per_notice": n} for u, n in trials],
              "lab": {k: lab.get(k) for k in ("kernel_release", "kernel_package", "kernel_package_version",
                                              "qemu_version", "accelerator", "cpus", "n_runs")}}
    if write:
        calibrated = _with_values(profile, {FLOOD_KEY: user_ns}, provenance)
        write_or_keep(calibrated, profile.path, result)
    return result
