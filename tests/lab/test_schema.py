"""The lab's typed result schema (lab/schema.py): the checker itself, and the
results the pure summarizing steps build. Real results are checked against it
in test_real_qemu.py."""

from haltlab.lab.experiments.common import Prepared, header
from haltlab.lab.experiments.panic import PanicConfig, first_timeline, summarize_panic
from haltlab.lab.images import KernelImage
from haltlab.lab.sampler import no_cpu_usage
from haltlab.lab.schema import SCHEMA_VERSION, Header, PanicRun, Summary, VcpuSummary, conforms


def test_the_checker_sees_missing_unknown_and_mistyped_fields():
    assert conforms({"median": 1, "min": 1, "max": 2, "n": 2}, Summary) == []
    assert conforms({"median": 1, "min": 1, "max": 2}, Summary) == ["result: missing n"]
    assert conforms({"median": 1, "min": 1, "max": 2, "n": 2, "mean": 1}, Summary) == ["result: unknown field mean"]
    assert conforms({"median": "1", "min": 1, "max": 2, "n": True}, Summary) == [
        "result.median: expected float or int, got str", "result.n: expected int, got bool"]
    assert conforms([{"cpu_index": 0, "host_cpu_s_per_s": None, "perf_samples_per_s": None}], list[VcpuSummary]) == [
        "result[0]: missing host_cpu_demand_s_per_s"]


def _run(**kw) -> dict:
    base = {"outcome": "panicked-and-finished", "qemu_pid": 7, "triggered": True, **no_cpu_usage(),
            "panic_message": "sysrq triggered crash", "pvpanic_event": "pause", "boot_to_trigger_ns": 1,
            "panic_to_end_ns": None, "trigger_to_end_ns": None, "panic_to_end_host_ns": None,
            "panic_console_lines": None, "panic_console_chars": None, "panic_max_line_gap_ns": None,
            "trigger_to_pvpanic_ns": 5, "panic_to_reset_ns": None,
            "lab_timeline": {"cpus": [{"cpu": 0, "intervals": [[0, 10, "halted"]]}], "marks_ns": {"trigger": 0},
                             "sample_interval_ns": 10, "running_min_share": 0.1}}
    return base | kw


def test_a_run_without_a_window_has_every_field():
    assert conforms(_run(), PanicRun) == []
    hung = _run(outcome="hung-silent", lab_timeline=None, console_tail=[], progress_tail=["HB 3"],
                qemu_stderr_tail=[], boot_retries=[_run(triggered=False)])
    assert conforms(hung, PanicRun) == []


def test_the_summary_and_header_conform(tmp_path):
    k = KernelImage(tmp_path / "vmlinuz", None, "6.1.0-57-amd64", "debian:p=1", "p", "1")
    h = header("panic", PanicConfig(), Prepared(k, "tcg", "7.2.22", tmp_path / "i"))
    assert h["schema_version"] == SCHEMA_VERSION and conforms(h, Header) == []
    runs = [_run(), _run()]
    out = summarize_panic(runs, 2)
    assert out["per_vcpu"] == [{"cpu_index": i, "host_cpu_s_per_s": None, "perf_samples_per_s": None,
                                "host_cpu_demand_s_per_s": None} for i in range(2)]
    assert conforms(out["per_vcpu"], list[VcpuSummary]) == []
    assert first_timeline(runs)["run"] == 0
