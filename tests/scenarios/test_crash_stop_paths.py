"""The crash (kdump) stop paths of `panic()`, per arch and kernel.

Truths from kernel-facts §1.2 (steps 9, 10, 15: `__crash_kexec()` before the
stop unless `crash_kexec_post_notifiers`, then `crash_smp_send_stop()` instead
of `smp_send_stop()`, the crash kexec after the notifiers), §3.4 (x86
`nmi_shootdown_cpus()`: NMI to all but self at once, up to 1000 x `mdelay(1)` on
`waiting_for_crash_ipi`, `crash_nmi_callback()` halts; once only) and §4.1
(arm64: since 6.12 `crash_stop` + `smp_send_stop()`, before it IPI_CPU_CRASH_STOP
and its counter; `ipi_cpu_crash_stop()`: CPU_OFF or the park loop), read against
7.1's arch/x86/kernel/{crash,reboot}.c, arch/arm64/kernel/{smp,machine_kexec}.c
and kernel/crash_core.c.
"""

import functools

import pytest

import haltlab.kernel.arch.x86_crash as x86_crash
import haltlab.kernel.crash_core as crash_core
import haltlab.scenarios.panic
from haltlab.engine.context import ktime_get_ns
from haltlab.engine.ops import Activity
from haltlab.engine.simulator import Simulator
from haltlab.errors import ConfigError
from haltlab.kernel.arch import arm64, x86
from haltlab.kernel.kernel import KernelConfig
from haltlab.scenarios.panic import PanicConfig, simulate_panic

MS = 1_000_000
SEC = 1_000_000_000
ARM = "arm64-server-24"
CRASH_VARS = ("cpus_stopped", "crash_stop", "crashing_cpu", "waiting_for_crash_ipi",
              "crash_ipi_issued", "emerg_handler")


def _run(**kw):
    cfg = dict(cpus=4, observe_ns=100 * MS, seed=0)
    cfg.update(kw)
    run = simulate_panic(PanicConfig(**cfg))
    texts = [text for _, _, text in run.kernel.log.values()]
    return run, run.result, run.kernel.marks, texts


def _printed_at(run, text) -> int:
    return next(ts for ts, _, t in run.kernel.log.values() if t == text)


def _handlers(result, vector):
    return {key.split(":")[0] for key, n in result["handlers_after_panic"].items()
            if key.endswith(":" + vector) and n}


def _boot_option(monkeypatch, **options):
    """KernelConfig fields the CLI does not expose (`pseudo_nmi`, `hotplug_cpu`)."""
    config = functools.partial(haltlab.scenarios.panic.KernelConfig, **options)
    monkeypatch.setattr(haltlab.scenarios.panic, "KernelConfig", config)


# --- x86: the NMI shoot-down -----------------------------------------------------------

@pytest.mark.parametrize("kernel", ["v7.1", "v6.1"])
def test_x86_kdump_stops_irqsoff_cpus_by_nmi_at_once_and_enters_the_crash_kernel(kernel):
    run, r, marks, texts = _run(others="irqsoff", kernel=kernel, kdump=True)
    k = run.kernel
    # No REBOOT_VECTOR stage, so no 1 s wait and no "Shutting down cpus with NMI".
    assert not _handlers(r, "REBOOT") and "Shutting down cpus with NMI" not in texts
    assert _handlers(r, "NMI") == {"CPU1", "CPU2", "CPU3"}
    assert r["smp_send_stop_ns"] < 100_000                     # NMI latency and the callback
    # nmi_shootdown_cpus() looks at its counter between mdelay(1)s: its first
    # test finds CPUs outstanding, so it returns after the first millisecond.
    assert 1 * MS <= marks["crash_kexec"] - marks["smp_send_stop"] < 1 * MS + 100_000
    assert k.waiting_for_crash_ipi.value == 0 and k.crash_ipi_issued.value == 1
    assert k.cpu_online_mask.value == 0b1111                   # the crash path clears no online bit
    assert k.parked == {1, 2, 3}
    for cpu in run.machine.cpus[1:]:                           # halted inside the NMI, APIC off
        assert (cpu.state, cpu.in_nmi, cpu.apic_enabled) == ("halted", True, False)
    # The run ends in the kdump kernel: no end line, the result says so.
    assert run.driver.reset_reason == "crash_kexec" and r["outcome"] == "crash-kexec"
    assert r["crash_kexec_after_ns"] == marks["crash_kexec"] - marks["panic_entry"]
    assert r["time_to_end_ns"] is None and "panic_end" not in marks
    assert not any(t.startswith("---[ end Kernel panic") for t in texts)


def test_x86_kdump_beats_the_reboot_vector_second_by_three_orders():
    """The same irqs-off CPUs: without kdump the stop waits out REBOOT_VECTOR's second."""
    _, plain, _, _ = _run(others="irqsoff")
    _, kdump, _, _ = _run(others="irqsoff", kdump=True)
    assert plain["smp_send_stop_ns"] > 1 * SEC
    assert plain["smp_send_stop_ns"] > 1000 * kdump["smp_send_stop_ns"]


def test_x86_kdump_without_post_notifiers_never_runs_the_notifiers():
    run, r, marks, texts = _run(kdump=True)
    assert not set(x86.PANIC_NOTIFIER_LINES) & set(texts)      # __crash_kexec() came first (9)
    assert marks["panic_entry"] < marks["smp_send_stop"] < marks["crash_kexec"]


@pytest.mark.parametrize("profile, lines", [("kvm-x86", x86.PANIC_NOTIFIER_LINES),
                                            (ARM, arm64.PANIC_NOTIFIER_LINES)])
def test_post_notifiers_print_the_notifiers_before_the_crash_kexec(monkeypatch, profile, lines):
    """The notifier lines are stored after the stop (10) returned and printed
    before the crash kexec (15). What orders them is the return: the panic CPU
    goes on once its wait sees every other CPU gone (x86: waiting_for_crash_ipi
    at 0; arm64 since 6.12: their online bits clear). Not the `others_stopped`
    mark, when the last CPU reaches its park loop: arm64's ipi_cpu_crash_stop()
    clears its online bit, then masks SDEI and tries CPU_OFF before
    cpu_park_loop(), so the kernel does not order that before the panic CPU's
    next printk; in the model both fall on one instant, and a record's time is
    taken where vprintk_store() takes it (`ts_nsec = local_clock()`, before
    the text is formatted)."""
    returned = {}
    entry = crash_core.crash_smp_send_stop

    async def noted_entry(k):
        await entry(k)
        returned.setdefault("at", (ktime_get_ns(), len(k.log)))   # the first call: step 10

    monkeypatch.setattr(haltlab.kernel.panic, "crash_smp_send_stop", noted_entry)
    run, r, marks, texts = _run(profile=profile, kdump=True, crash_kexec_post_notifiers=True)
    returned_ns, records_before = returned["at"]
    seqs = [seq for seq, (_, _, text) in run.kernel.log.items() if text in lines]
    assert len(seqs) == len(lines)
    assert min(seqs) >= records_before                         # stored after the stop returned
    assert returned_ns <= min(_printed_at(run, t) for t in lines)
    assert max(_printed_at(run, t) for t in lines) < marks["crash_kexec"]
    assert marks["others_stopped"] < marks["crash_kexec"]
    assert r["outcome"] == "crash-kexec"


def test_x86_post_notifiers_without_kdump_shoot_down_and_finish_the_panic():
    """crash_kexec_post_notifiers alone: panic() stops the others with
    crash_smp_send_stop() (the NMI shoot-down), finds no crash kernel, and goes
    on to its end line."""
    run, r, marks, texts = _run(others="irqsoff", crash_kexec_post_notifiers=True)
    assert _handlers(r, "NMI") == {"CPU1", "CPU2", "CPU3"} and not _handlers(r, "REBOOT")
    assert r["smp_send_stop_ns"] < 100_000
    assert "crash_kexec" not in marks and r["crash_kexec_after_ns"] is None
    assert r["outcome"] == "panicked-and-finished"
    assert run.kernel.crash_ipi_issued.value == 1


@pytest.mark.parametrize("profile", ["kvm-x86", ARM])
@pytest.mark.parametrize("kernel", ["v7.1", "v6.1"])
def test_never_a_second_shoot_down(monkeypatch, profile, kernel):
    """With post-notifiers and kdump, crash_smp_send_stop() is called twice (step
    10, then machine_crash_shutdown() in step 15); the second does nothing."""
    calls = {"entry": 0, "x86": 0}
    entry = crash_core.crash_smp_send_stop
    shoot = x86_crash.kdump_nmi_shootdown_cpus

    async def counted_entry(k):
        calls["entry"] += 1
        await entry(k)

    async def counted_shoot(k):
        calls["x86"] += 1
        await shoot(k)

    monkeypatch.setattr(haltlab.kernel.panic, "crash_smp_send_stop", counted_entry)
    monkeypatch.setattr(x86_crash.crash_core, "crash_smp_send_stop", counted_entry)
    monkeypatch.setattr(arm64.crash_core, "crash_smp_send_stop", counted_entry)
    monkeypatch.setattr(x86_crash, "kdump_nmi_shootdown_cpus", counted_shoot)
    run, r, marks, _ = _run(profile=profile, kernel=kernel, kdump=True, crash_kexec_post_notifiers=True)
    assert calls["entry"] == 2
    assert calls["x86"] == (1 if profile == "kvm-x86" else 0)
    assert all(n == 1 for n in r["handlers_after_panic"].values())    # one stop interrupt each
    assert r["outcome"] == "crash-kexec"


# --- arm64: the crash stop IPI -----------------------------------------------------------

@pytest.mark.parametrize("kernel, vector, online", [
    ("v7.1", "IPI_CPU_STOP", 0b0001),        # 6.12+: crash_stop + smp_send_stop(); offline
    ("v6.1", "IPI_CPU_CRASH_STOP", 0b1111),  # before: its own IPI and counter; still online
])
def test_arm64_kdump_crash_stops_the_others_and_they_power_off(kernel, vector, online):
    run, r, marks, texts = _run(profile=ARM, kernel=kernel, kdump=True)
    k = run.kernel
    assert _handlers(r, vector) == {"CPU1", "CPU2", "CPU3"}
    assert k.cpu_online_mask.value == online and k.parked == {1, 2, 3}
    for cpu in run.machine.cpus[1:]:                   # __cpu_try_die(): PSCI CPU_OFF
        assert cpu.activity is Activity.GONE
    assert texts.index("SMP: stopping secondary CPUs") < texts.index("Starting crashdump kernel...")
    assert texts[-1] == "Bye!" and "Some CPUs may be stale, kdump will be unreliable." not in texts
    assert r["smp_send_stop_ns"] < 10 * MS and r["outcome"] == "crash-kexec"


def test_arm64_without_cpu_die_the_crash_stopped_cpus_park(monkeypatch):
    _boot_option(monkeypatch, hotplug_cpu=False)
    run, r, _, _ = _run(profile=ARM, kdump=True)
    for cpu in run.machine.cpus[1:]:
        assert (cpu.activity, cpu.state, cpu.irqs_enabled) == (Activity.HALTED, "halted", False)
    assert r["outcome"] == "crash-kexec"


@pytest.mark.parametrize("kernel", ["v7.1", "v6.1"])
def test_arm64_kdump_without_pseudo_nmi_leaves_irqsoff_cpus_and_warns(kernel):
    run, r, marks, texts = _run(profile=ARM, kernel=kernel, others="irqsoff", kdump=True)
    assert "SMP: failed to stop secondary CPUs" in texts
    assert "Some CPUs may be stale, kdump will be unreliable." in texts
    assert 1 * SEC <= marks["stop_failed"] - marks["smp_send_stop"] < 1_050 * MS
    for cpu in run.machine.cpus[1:]:
        assert cpu.state == "irqs_off"                 # still executing when the crash kernel starts
    assert r["outcome"] == "crash-kexec"


@pytest.mark.parametrize("kernel, kdump, at_once", [
    ("v6.9", False, True),    # d7402513c935: IPI_CPU_STOP itself is a pseudo-NMI (D1)
    ("v6.9", True, True),     # and so is IPI_CPU_CRASH_STOP
    ("v7.1", False, False),   # 6.12+: IRQ first, the NMI retry after 1 s
    ("v7.1", True, False),
    ("v6.1", True, None),     # no pseudo-NMI stop at all: the CPUs are never stopped
])
def test_arm64_pseudo_nmi_stop_per_kernel(monkeypatch, kernel, kdump, at_once):
    _boot_option(monkeypatch, pseudo_nmi=True)
    run, r, marks, texts = _run(profile=ARM, kernel=kernel, others="irqsoff", kdump=kdump)
    if at_once is None:
        assert not _handlers(r, "NMI") and "stop_failed" in marks
        return
    assert _handlers(r, "NMI") == {"CPU1", "CPU2", "CPU3"} and run.kernel.parked == {1, 2, 3}
    assert ("SMP: retry stop with NMI for CPUs" in texts) == (not at_once)
    assert "SMP: failed to stop secondary CPUs" not in texts
    if at_once:
        assert r["smp_send_stop_ns"] < 10 * MS
    else:
        assert 1 * SEC <= r["smp_send_stop_ns"] < 1_050 * MS


# --- runs without kdump or post-notifiers are as they were ---------------------------------

class _Recorder(Simulator):
    ops: list[str] = []

    def on_op(self, s, op) -> None:
        _Recorder.ops.append(op.describe())


@pytest.mark.parametrize("profile", ["kvm-x86", ARM])
@pytest.mark.parametrize("others", ["idle", "irqsoff"])
def test_without_kdump_no_crash_operation_runs(monkeypatch, profile, others):
    """No operation of a run without kdump or post-notifiers touches a crash
    variable or jumps: the crash paths add no schedule point to it. (With
    kdump the same recording sees them, so the check can fail.)"""
    monkeypatch.setattr(haltlab.scenarios.panic, "Simulator", _Recorder)

    def crash_ops(**kw) -> list[str]:
        _Recorder.ops = []
        _run(profile=profile, others=others, **kw)
        return [op for op in _Recorder.ops
                if any(f"({v})" in op for v in CRASH_VARS) or op.startswith(("relocate_kernel", "psci"))]

    assert crash_ops() == []
    assert crash_ops(kdump=True)


@pytest.mark.parametrize("field", ["kdump", "crash_kexec_post_notifiers", "hotplug_cpu"])
def test_crash_fields_must_be_booleans(field):
    with pytest.raises(ConfigError) as e:
        KernelConfig(**{field: "yes"})
    assert e.value.field == field
    if field != "hotplug_cpu":
        with pytest.raises(ConfigError) as e:
            PanicConfig(**{field: 1}).validate(4)
        assert e.value.field == field


@pytest.mark.parametrize("profile", ["kvm-x86", ARM])
@pytest.mark.parametrize("kernel", ["v7.1", "v6.1"])
def test_the_explorer_can_take_the_crash_kexec_as_its_goal(monkeypatch, profile, kernel):
    """Every interleaving of a panic race with a crash kernel loaded ends in the
    kdump kernel: a run that stops short of the ghost fact `crash_kexec` (its
    goal) would be a deadlock. Symmetry and POR on, so the crash paths' locals
    and footprints are declared."""
    import haltlab.scenarios.panic_race as race
    from haltlab.checks.properties import check, never_deadlock

    monkeypatch.setattr(race, "KernelConfig", functools.partial(KernelConfig, kdump=True))
    cfg = race.PanicRaceConfig(profile=profile, cpus=2, kernel=kernel)
    outcome = check(lambda: race.make_run(cfg), [never_deadlock()], reduce="all",
                    goal=lambda run: bool(run.kernel.ghost.get("crash_kexec")))
    assert outcome.verdict == "ok" and not outcome.exploration.truncated
