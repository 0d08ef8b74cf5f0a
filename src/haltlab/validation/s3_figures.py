"""S3's figures beside the model: how long arm64's kexec takes the CPUs down.

S3 ("[PATCH] arm64: kexec: Use smp_send_stop in machine_shutdown", seeds/002,
Henry Willard, November 2020; kernel-facts §4.3 and §6): through CPU hotplug
(`smp_shutdown_nonboot_cpus()`) "a best case of .02 to .03 seconds per CPU",
"about .65 seconds" for 23 CPUs on an idle system, "several seconds" on a
busy one; with `smp_send_stop()` "less than 5 msecs". The model's rows run
`scenarios.kexec` on the arm64-server-24 profile (S3's 24 CPUs; the SoC is
not named, its costs are labelled estimates) with the `v5.17` preset, the
closest to S3's 5.10: the same hotplug shape, in particular 5.x's
`cpu_wait_death()` (jiffy sleeps) rather than 6.5's `cpuhp_bp_sync_dead()`.
Console at loglevel 7 (the default; each `psci: CPUn killed` line is printed
on a 115200 serial console, the profile's assumption) and, as a sensitivity
row, at 4 (quiet). Nothing here is fitted to S3's numbers: each note says
which inputs make the gap.

Where a range or a bound is all the thread gives, the row's thread value is
stated as such: the middle of ".02 to .03", the bound 5 ms of "less than 5
msecs", and 2 s for "several seconds", the least the words can mean (so the
model/thread ratio of that row is an upper bound).

The lab column reads saved `lab kexec --arch arm64` campaigns given as
`reproduce --lab-result kexec-arm64-idle=FILE` (and `kexec-arm64-busy=FILE`):
Debian's 6.1 arm64 kernel in a QEMU TCG guest of 2 to 8 vCPUs, not S3's
hardware, so only the per-CPU row takes a lab value (the campaign with the
most vCPUs), and the others say what the lab measured instead. The per-CPU
row's note adds the model of the lab's own guest (`qemu-tcg-arm64`) at the
same vCPU count, so the lab value sits beside a model of the same machine.
"""

from __future__ import annotations

import functools

from haltlab.errors import ConfigError
from haltlab.scenarios.kexec import KexecConfig, run_kexec
from haltlab.validation.cases import KexecCase
from haltlab.validation.figures import Figure, LabValue, ModelValue
from haltlab.validation.kexec_arm64 import model_kexec_facts

__all__ = ["S3_FIGURES", "S3_PROFILE", "S3_KERNEL", "S3_CPUS", "S3_LAB_NAMES", "set_s3_lab_results",
           "split_lab_results", "s3_run", "reset_s3"]

S3_PROFILE = "arm64-server-24"
S3_KERNEL = "v5.17"                 # the preset closest to S3's 5.10 (cpu_wait_death(), no 6.5 hotplug sync)
S3_CPUS = 24                        # "23 CPUs" taken down, plus the boot CPU
S3_LAB_NAMES = ("kexec-arm64-idle", "kexec-arm64-busy")
_S3 = "S3"
_SRC = "seeds/002, Henry Willard, \"[PATCH] arm64: kexec: Use smp_send_stop in machine_shutdown\" (2020)"


@functools.cache
def s3_run(shutdown: str, others: str, loglevel: int) -> dict:
    """The model's kexec run on S3's machine (cached: several rows read one run)."""
    return run_kexec(KexecConfig(profile=S3_PROFILE, cpus=S3_CPUS, shutdown=shutdown, others=others,
                                 kernel=S3_KERNEL, console_loglevel=loglevel, timeline=False))


def reset_s3() -> None:
    s3_run.cache_clear()


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.2f} ms" if abs(ns) >= 100_000 else f"{ns / 1e3:.2f} us"


def _per_cpu(r: dict) -> str:
    """What one secondary's _cpu_down() is made of, from the run (the median CPU's phases)."""
    downs = sorted((c for c in r["per_cpu"] if c["down_ns"] is not None), key=lambda c: c["down_ns"])
    if not downs:
        return ""
    mid = downs[len(downs) // 2]
    parts = ", ".join(f"{name} {_ms(ns)}" for name, ns in mid["phases_ns"].items() if name != "_cpu_down")
    return f" Median CPU{mid['cpu']}'s _cpu_down() {_ms(mid['down_ns'])}: {parts}."


def _setup(r: dict) -> str:
    cfg = r["config"]
    return (f"Model: {S3_PROFILE}, {r['cpus']} CPUs, kernel {S3_KERNEL} (the closest preset to S3's 5.10: the "
            f"same hotplug shape, cpu_wait_death()), --shutdown {cfg['shutdown']} --others {cfg['others']} "
            f"--loglevel {cfg['console_loglevel']}: outcome {r['outcome']}, machine_shutdown() "
            f"{_ms(r['shutdown_ns']) if r['shutdown_ns'] is not None else 'did not return'}.")


_GAP = ("What sets it: sched_cpu_deactivate()'s synchronize_rcu() is an estimated grace period "
        "((jiffies_till_first_fqs + 1) jiffies at HZ=250 = {gp}, kernel/rcu.py; S3's measured grace "
        "periods are unknown), the cpuhp callbacks are profile estimates (cpuhp_ap_callbacks_ns, "
        "cpuhp_dying_callbacks_ns, cpuhp_dead_callbacks_ns), and at loglevel 7 the control CPU prints "
        "'psci: CPUn killed' on the serial console each CPU (115200 baud assumed; S3-hotplug-idle-quiet, at "
        "loglevel 4, shows what that costs). A longer grace period "
        "on S3's machine (RCU callbacks queued, other CPUs' quiescent states late) or slower callbacks "
        "would close the gap; none has a source, so none is raised to match.")


def _hotplug_note(r: dict) -> str:
    return _setup(r) + _per_cpu(r) + " " + _GAP.format(gp=_ms(r["rcu_gp_ns"]))


def _per_cpu_idle() -> ModelValue:
    r = s3_run("hotplug", "idle", 7)
    return ModelValue(r["shutdown_ns"] / (r["cpus"] - 1) / 1e9, (
        f"machine_shutdown() / {r['cpus'] - 1} secondaries. " + _hotplug_note(r)))


def _total(others: str, loglevel: int) -> ModelValue:
    r = s3_run("hotplug", others, loglevel)
    note = _hotplug_note(r)
    if others == "busy":
        idle = s3_run("hotplug", "idle", loglevel)
        note += (f" Busy costs only context switches here ({_ms(r['shutdown_ns'] - idle['shutdown_ns'])} more "
                 "than idle): CFS lets the woken cpuhp/N thread preempt a CPU-bound user task at once "
                 "(kernel/sched.py), so the model has no way to 'several seconds'; S3 does not say what its "
                 "busy tasks were (priorities, RT, memory pressure, RCU load) and without such an input, "
                 "which has no source, the gap stays open.")
    return ModelValue(r["shutdown_ns"] / 1e9, note)


def _smp_send_stop() -> ModelValue:
    r = s3_run("smp-send-stop", "idle", 7)
    gone = sum(c["cpu_off_at_ns"] is not None for c in r["per_cpu"])
    return ModelValue(r["shutdown_ns"] / 1e9, _setup(r) + (
        f" {gone} of {r['cpus'] - 1} secondaries executed CPU_OFF from the stop IPI; the time is one IPI "
        "round and the wait on num_online_cpus(), far under S3's bound. Unsafe as `explore kexec` shows "
        f"(interrupts still routed to dead CPUs: {len(r['spis_routed_to_dead_cpus'])} here)."))


# --- the lab --------------------------------------------------------------------------

_LAB: dict[str, list[dict]] = {}


def split_lab_results(saved: dict[str, dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """`--lab-result` values as (S2's, S3's), by name."""
    s3 = {k: v for k, v in saved.items() if k in S3_LAB_NAMES}
    return {k: v for k, v in saved.items() if k not in s3}, s3


def set_s3_lab_results(results: dict[str, dict]) -> None:
    """Saved `lab kexec --arch arm64` campaigns (a result, or a list of them as
    `{"campaigns": [...]}`), each checked to be an arm64 kexec of the named load."""
    checked = {}
    for name, data in results.items():
        campaigns = data.get("campaigns", [data])
        want = name.rsplit("-", 1)[1]
        for c in campaigns:
            if not isinstance(c, dict) or c.get("experiment") != "kexec" or c.get("arch") != "arm64":
                raise ConfigError("lab result", name, "not a `lab kexec --arch arm64` result")
            if c.get("others") != want:
                raise ConfigError("lab result", name, f"a campaign with --others {c.get('others')}, not {want}")
        checked[name] = campaigns
    _LAB.clear()
    _LAB.update(checked)


def _campaigns(name: str) -> str:
    return "; ".join(
        f"{c['cpus']} vCPUs: per CPU {_ms(c['per_cpu_shutdown_ns']['median'])} (median of "
        f"{c['per_cpu_shutdown_ns']['n']}), shutdown {_ms(c['shutdown_ns']['median'])}"
        for c in sorted(_LAB[name], key=lambda c: c["cpus"]) if c.get("per_cpu_shutdown_ns") and c.get("shutdown_ns"))


def _label(c: dict) -> str:
    return (f"lab kexec --arch arm64 --others {c['others']}: kernel {c['kernel_release']}, {c['accelerator']}, "
            f"QEMU {c['qemu_version']} ({c['qemu_machine']}), not S3's hardware")


def _lab_per_cpu() -> LabValue:
    name = "kexec-arm64-idle"
    if name not in _LAB:
        return LabValue(None, f"no `lab kexec --arch arm64` result given (reproduce --lab-result {name}=FILE; "
                              "campaigns are kept in docs/lab-runs)")
    usable = [c for c in _LAB[name] if (c.get("per_cpu_shutdown_ns") or {}).get("median") is not None]
    if not usable:
        return LabValue(None, f"{name}: no campaign measured a per-CPU shutdown")
    big = max(usable, key=lambda c: c["cpus"])
    return LabValue(big["per_cpu_shutdown_ns"]["median"] / 1e9, (
        f"{_label(big)}; the value is the {big['cpus']}-vCPU campaign's median per-CPU shutdown; "
        f"all: {_campaigns(name)}; {_tcg_model(big['cpus'])}"))


def _tcg_model(cpus: int) -> str:
    """The lab's own machine in the model: qemu-tcg-arm64, calibrated on the
    2-vCPU cpuhp trace (validation/calibrate_kexec.py), at the campaign's vCPUs."""
    f = model_kexec_facts(KexecCase(f"kexec-arm64-cpus{cpus}", cpus))
    return (f"the model of that guest (qemu-tcg-arm64, calibrated on 2 vCPUs' cpuhp trace) at {cpus} vCPUs: "
            f"per CPU {_ms(f['per_cpu_shutdown_ns'])}, shutdown {_ms(f['shutdown_ns'])} (haltlab validate "
            f"--case kexec-arm64-cpus{cpus} puts the two side by side)")


def _lab_note_only(name: str, why: str):
    def lab() -> LabValue:
        if name not in _LAB:
            return LabValue(None, f"no lab value: {why}; no {name} result given")
        return LabValue(None, f"no lab value: {why}; the lab measured ({_label(_LAB[name][0])}) {_campaigns(name)}")
    return lab


_NO_24 = "the lab's TCG guests have 2 to 8 vCPUs, not S3's 24"
S3_FIGURES: list[Figure] = [
    Figure("S3-hotplug-per-cpu-idle", _S3, "hotplug shutdown per CPU taken down, idle", "s", 0.025,
           f"{_SRC}: \"a best case of .02 to .03 seconds per CPU\" (the middle of the range)",
           S3_PROFILE, _per_cpu_idle, _lab_per_cpu),
    Figure("S3-hotplug-idle", _S3, "hotplug shutdown, 23 CPUs, idle", "s", 0.65,
           f"{_SRC}: \"reduces the shutdown time for 23 CPUs from about .65 seconds on an idle system\"",
           S3_PROFILE, functools.partial(_total, "idle", 7), _lab_note_only("kexec-arm64-idle", _NO_24)),
    Figure("S3-hotplug-idle-quiet", _S3, "hotplug shutdown, 23 CPUs, idle, console loglevel 4", "s", 0.65,
           f"{_SRC}: \"about .65 seconds\" (S3 does not state its loglevel: this row shows what the console "
           "lines cost)", S3_PROFILE, functools.partial(_total, "idle", 4)),
    Figure("S3-hotplug-busy", _S3, "hotplug shutdown, 23 CPUs, busy (user tasks)", "s", 2.0,
           f"{_SRC}: \"On a busy system smp_shutdown_nonboot_cpus() may take several seconds\" (taken as 2 s, "
           "the least 'several' can mean: the ratio is an upper bound)",
           S3_PROFILE, functools.partial(_total, "busy", 7), _lab_note_only("kexec-arm64-busy", _NO_24)),
    Figure("S3-smp-send-stop", _S3, "smp_send_stop() shutdown (S3's patch), 23 CPUs", "s", 0.005,
           f"{_SRC}: \"to less than 5 msecs\" (a bound)", S3_PROFILE, _smp_send_stop),
]
