"""The rich tables of `simulate panic` and the S1 chart."""

import io

from rich.console import Console

from haltlab.report.charts import s1_host_cpu_png
from haltlab.report.panic_view import host_table, panic_tables, states_table
from haltlab.scenarios.panic import PanicConfig, run_panic


def render(renderable) -> str:
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_small_machine_lists_every_cpu_and_vcpu_costs():
    r = run_panic(PanicConfig(observe_ns=200_000_000, others="busy"))
    text = render(panic_tables(r))
    assert "CPU7" in render(states_table(r))
    assert "whole guest" in text and "VMM background" in text
    assert "7 vCPUs cost the host nothing" in render(host_table(r))


def test_bare_metal_has_no_host_table_and_many_cpus_aggregate():
    r = run_panic(PanicConfig(profile="xeon-gold-6154", observe_ns=100_000_000))
    assert host_table(r) is None
    text = render(states_table(r))
    assert "71 others, summed" in text and "CPU5 " not in text


def test_s1_chart_is_a_png():
    rows = [{"id": i, "seed_value": s, "model_value": m, "lab_value": None} for i, s, m in (
        ("S1-samples-before", 55_000, 55_055), ("S1-samples-after", 51, 55),
        ("S1-cycles-before", 36e9, 35e9), ("S1-cycles-after", 37e6, 35e6),
        ("S1-reduction", 961.0, 1000.0))]
    assert s1_host_cpu_png(rows, 13.75, 4000, vmm_background_cpu_s_per_s=0,
                           dpi=40).startswith(b"\x89PNG")
