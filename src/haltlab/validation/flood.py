"""S2's flood in `haltlab validate`: the model's kernel beside `lab flood`'s.

Each flood case (cases.py `FloodCase`) runs the model's stress test
(`scenarios.printk_flood`, profile `qemu-tcg-x86`, one flooder on CPU1 as the
lab's guest has it, the other CPUs idle) over `seeds` seeds, and reads a `lab
flood` result at the same vCPU count (a saved `lab flood --output FILE`, or a
fresh campaign). The kernel is the case's `FloodModel`: Debian's 6.1 package
(`debian-6.1.0-56`, stock console_spin) for the stock cases; for a case with a
`build`, the patch set's own `model_kernel` and `model_policy` (set.toml), the
model's description of what `lab build NAME` compiled, and the lab boots that
build (`lab flood --build NAME`). Every quantity is the same measure on both
sides, computed by one function from one run's dict:

* `hang_rate`: hung runs of the runs (a lab run counts when it reached its
  trigger; hung: no "---[ end Kernel panic" within the 60 s after it), with
  the 95% Wilson interval as its min and max. The model's is a campaign over
  the case's seeds, each run ending early when `livelock_proof()` holds. No
  input of the model is set from a hang rate: the profile's costs are the
  panic's and the stock flood's calibration, so every build case is a test;

* `records_per_drop_notice`: flood records dropped per "** N printk messages
  dropped **" notice after the trigger (the notices' N summed over the run,
  divided by their number; runs with no notice have none). While the ring
  laps, each notice is the records the flooder stored while the console
  printed one record: the ratio of the console's record time to the flood
  loop's iteration. The console's cost per character is calibrated from the
  panic (`lab calibrate`), so this ratio calibrates `devkmsg_user_ns`
  (calibrate_flood.py) and is calibration's own quantity, not evidence;
* `flood_records_per_s_before_trigger`: flood records on the console before
  the trigger per second of the trigger delay. The writer prints its own
  records then, so this is one record's console time plus one iteration:
  a test of the panic-calibrated console cost under the flood;
* `guard_fired_fraction`: runs whose 13fb0f74d702 guard fired, of the runs;
* `drop_notices_after_trigger`: the notices after the trigger, median over runs;
* `trigger_to_end_ns`: the trigger to "---[ end Kernel panic", median (and
  the min and max, and each side's whole list in the row).

`compare_flood()` refuses a lab result that is not a flood campaign of the
case's configuration (experiment, vCPUs, record length, delay range, hang
timeout, and the build: a build case takes only a result of that patch set,
a stock case only one of a Debian package), one line naming the file and field.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, fields
from pathlib import Path

from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.policies import ConsoleSpin, choose
from haltlab.lab.classify import HUNG_OUTPUT, HUNG_SILENT
from haltlab.lab.patchsets import PATCHES_DIR, load_patch_set
from haltlab.scenarios.printk_flood import NSEC_PER_SEC, PrintkFloodConfig, run_printk_flood
from haltlab.sweep.stats import wilson_interval
from haltlab.validation.lab_kernel import LAB_KERNEL_PRESET

__all__ = ["FLOOD_QUANTITIES", "FloodModel", "STOCK_MODEL", "build_model", "flood_config", "model_flood_runs",
           "lab_flood_runs", "flood_measures", "compare_flood", "check_lab_flood", "notes_4_holds",
           "records_per_drop_notice", "hang_count", "DEFAULT_SEEDS", "LAB_FLOODERS"]

DEFAULT_SEEDS = 40
LAB_FLOODERS = 1           # the lab's guest: one writer, `taskset -c 1` (lab/guest.py FLOOD_BODY)

FLOOD_QUANTITIES = ("hang_rate", "records_per_drop_notice", "flood_records_per_s_before_trigger",
                    "guard_fired_fraction", "drop_notices_after_trigger", "trigger_to_end_ns")


@dataclass(frozen=True)
class FloodModel:
    """The model's kernel for a flood case: a kernel spec and the console_spin
    policy, and the patch set they describe (None: Debian's package)."""

    kernel: str = LAB_KERNEL_PRESET
    console_spin: ConsoleSpin = ConsoleSpin.STOCK
    build: str | None = None


STOCK_MODEL = FloodModel()


def build_model(name: str, root: Path = PATCHES_DIR) -> FloodModel:
    """The model of patch set `name`: its set.toml's `model_kernel` and
    `model_policy` (`console_spin=...`, the only policy the flood has; any
    other, or a spec the model does not know, is a ConfigError naming the
    file's field)."""
    ps = load_patch_set(name, root)
    toml = root / name / "set.toml"
    commit_set(ps.model_kernel, f"{toml}: model_kernel")
    where = f"{toml}: model_policy"
    spin = ConsoleSpin.STOCK
    for item in ps.model_policy.split(",") if ps.model_policy else ():
        point, _, value = item.partition("=")
        if point != "console_spin":
            raise ConfigError(where, ps.model_policy, f"the flood has only the console_spin policy, not {point!r}")
        spin = ConsoleSpin(choose("console_spin", value, where).name)
    return FloodModel(ps.model_kernel, spin, name)


def flood_config(cpus: int, seed: int, profile: str = "qemu-tcg-x86", model: FloodModel = STOCK_MODEL
                 ) -> PrintkFloodConfig:
    """The model's run of a flood case: the lab's delays and record length, the case's kernel."""
    return PrintkFloodConfig(kernel=model.kernel, console_spin=model.console_spin, profile=profile, cpus=cpus,
                             flooders=LAB_FLOODERS, seed=seed)


def model_flood_runs(cpus: int, seeds: int = DEFAULT_SEEDS, profile=None, profile_name: str = "qemu-tcg-x86",
                     model: FloodModel = STOCK_MODEL) -> list[dict]:
    """The model's runs over seeds 0..seeds-1, each as the lab's run dict has it."""
    out = []
    for seed in range(seeds):
        r = run_printk_flood(flood_config(cpus, seed, profile_name, model), profile)
        out.append({"guard_fired": r["guard_fired"], "drop_notices_after_trigger": r["drop_notices_after_trigger"],
                    "dropped_after_trigger": r["dropped_after_trigger"], "trigger_to_end_ns": r["trigger_to_end_ns"],
                    "flood_lines_before_trigger": r["flood_records_on_console_before_trigger"],
                    "delay_s": r["trigger_ns"] / NSEC_PER_SEC, "hung": r["hung"]})
    return out


_LAB_HUNG = (HUNG_OUTPUT, HUNG_SILENT)


def lab_flood_runs(lab: dict) -> list[dict]:
    """The lab's runs that reached their trigger (the others measure a boot, not
    a panic), each with `hung` as the model's run has it (lab flood's own test)."""
    return [r | {"hung": r["outcome"] in _LAB_HUNG} for r in lab["runs"] if r.get("triggered")]


def hang_count(runs: list[dict]) -> tuple[int, int]:
    """(hung, runs) over runs shaped as `model_flood_runs()` or `lab_flood_runs()` give them."""
    return sum(bool(r["hung"]) for r in runs), len(runs)


def records_per_drop_notice(run: dict) -> float | None:
    n = run["drop_notices_after_trigger"]
    return run["dropped_after_trigger"] / n if n else None


def _per_s_before(run: dict) -> float | None:
    return run["flood_lines_before_trigger"] / run["delay_s"] if run.get("delay_s") else None


def _spread(values: list) -> dict:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "all": []}
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "n": len(vals), "all": vals}


def flood_measures(runs: list[dict]) -> dict:
    """Every flood quantity over runs (model or lab alike): `{quantity: spread}`."""
    fired = [r["guard_fired"] for r in runs]
    hung, n = hang_count(runs)
    low, high = wilson_interval(hung, n) if n else (None, None)
    return {
        "hang_rate": {"median": hung / n if n else None, "min": low, "max": high, "n": n, "all": [hung]},
        "records_per_drop_notice": _spread([records_per_drop_notice(r) for r in runs]),
        "flood_records_per_s_before_trigger": _spread([_per_s_before(r) for r in runs]),
        "guard_fired_fraction": {"median": sum(fired) / len(fired) if fired else None, "min": None, "max": None,
                                 "n": len(fired), "all": [sum(fired)]},
        "drop_notices_after_trigger": _spread([r["drop_notices_after_trigger"] for r in runs]),
        "trigger_to_end_ns": _spread([r["trigger_to_end_ns"] for r in runs]),
    }


def _lab_options(lab: dict) -> dict:
    return lab.get("options") or {}


def check_lab_flood(lab: dict, cpus: int, where: str = "lab result", build: str | None = None) -> None:
    """A ConfigError unless `lab` is a `lab flood` campaign of the model's flood
    configuration at `cpus` vCPUs (what the model runs is fixed: flood_config())
    on the kernel `build` names (None: a Debian package, no build)."""
    if lab.get("experiment") != "flood":
        raise ConfigError(where, lab.get("experiment"), "is not a `lab flood` result (experiment must be flood)")
    if lab.get("cpus") != cpus:
        raise ConfigError(f"{where}: cpus", lab.get("cpus"), f"the case runs {cpus} vCPUs")
    built = (lab.get("kernel_build") or {}).get("patch_set")
    if built != build:
        raise ConfigError(f"{where}: kernel_build.patch_set", built,
                          f"the case boots {f'the build {build}' if build else 'a Debian kernel package'}")
    model = {f.name: f.default for f in fields(PrintkFloodConfig)}
    opts = _lab_options(lab)
    for lab_key, model_key in (("line_len", "line_len"), ("delay_min_s", "delay_min_s"),
                               ("delay_max_s", "delay_max_s"), ("timeout_s", "hang_after_s")):
        if opts.get(lab_key) != model[model_key]:
            raise ConfigError(f"{where}: options.{lab_key}", opts.get(lab_key),
                              f"the model runs {model_key} = {model[model_key]:g}")
    runs = lab.get("runs")
    if not isinstance(runs, list) or not any(r.get("triggered") for r in runs):
        raise ConfigError(f"{where}: runs", len(runs) if isinstance(runs, list) else runs, "no run reached its trigger")
    missing = [k for k in ("outcome", "guard_fired", "drop_notices_after_trigger", "dropped_after_trigger",
                           "trigger_to_end_ns", "flood_lines_before_trigger", "delay_s") if k not in runs[0]]
    if missing:
        raise ConfigError(f"{where}: runs[0]", ", ".join(missing), "missing (a result from before lab flood "
                                                                   "parsed the notices after the trigger)")


def _relative(model, lab):
    return (model - lab) / lab if model is not None and lab else None


def compare_flood(case, model_runs: list[dict], lab: dict, where: str = "lab result") -> list[dict]:
    """One row per quantity: the model's and the lab's spread, the relative error
    (for `hang_rate`, min and max are the 95% Wilson interval)."""
    check_lab_flood(lab, case.cpus, where, case.build)
    model, measured = flood_measures(model_runs), flood_measures(lab_flood_runs(lab))
    rows = []
    for q in FLOOD_QUANTITIES:
        m, lb = model[q], measured[q]
        rows.append({"case": case.name, "cpus": case.cpus, "build": case.build, "pvpanic": "none",
                     "panic_timeout_s": 0, "calibrated_on": q in case.calibrated_quantities, "quantity": q,
                     "model": m["median"], "model_min": m["min"], "model_max": m["max"], "model_runs": m["n"],
                     "model_seeds": len(model_runs),
                     "model_all": m["all"], "lab_median": lb["median"], "lab_min": lb["min"], "lab_max": lb["max"],
                     "lab_runs": lb["n"], "lab_all": lb["all"], "lab_outcomes": lab.get("outcomes"),
                     "relative_error": _relative(m["median"], lb["median"])})
    return rows


def notes_4_holds(runs: list[dict]) -> dict:
    """kernel-notes §4's prediction, run by run: the ring wrapped and the guard
    fired with >= 12 notices after the trigger, or no notice and no guard."""
    def fits(r):
        n = r["drop_notices_after_trigger"]
        return (r["guard_fired"] and n >= 12) or (not r["guard_fired"] and n == 0)
    misfits = [i for i, r in enumerate(runs) if not fits(r)]
    return {"runs": len(runs), "fit": len(runs) - len(misfits), "misfits": misfits}
