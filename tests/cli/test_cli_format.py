"""Tables never cut a number, at any width; `--format` prints the same table
model as rich tables, Markdown or CSV, and `--json` is `--format json`
(issue 6 #23): simulate panic, reproduce, explore panic-race, and the lab's
panic, kexec, flood and calibrate and validate, on recorded-shape lab runs."""

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.lab.experiments import flood as lab_flood
from haltlab.lab.experiments import kexec as lab_kexec
from haltlab.lab.experiments import panic as lab_panic
from haltlab.lab.experiments.common import Prepared
from haltlab.lab.images import KernelImage
from haltlab.lab.sampler import CLK_TCK, cpu_usage, no_cpu_usage
from haltlab.lab.schema import FloodResult, KexecResult, PanicResult, conforms
from haltlab.report.reproduce import fmt_value
from haltlab.report.tables import Column, Table, min_width, render, rich_table


@pytest.fixture(scope="module")
def s1_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "out"
    result = CliRunner().invoke(cli, ["reproduce", "--json", "--lab", "skip", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def reproduce_text(out, columns: int, *args: str) -> str:
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(
        cli, ["reproduce", "--lab", "skip", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("columns", [60, 80])
def test_every_number_of_the_s1_rows_appears_whole(s1_report, columns):
    report, out = s1_report
    text = reproduce_text(out, columns)
    rows = [r for r in report["rows"] if r["thread"] == "S1"]
    assert rows
    for r in rows:
        assert r["id"] in text                          # S1-samples-before, not S1-samples-bef…
        for value in (r["seed_value"], r["model_value"]):
            assert fmt_value(value) in text, (r["id"], fmt_value(value))
        assert f"{r['model_over_seed']:.3f}" in text
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= columns


@pytest.mark.parametrize("columns", [60, 80])
def test_simulate_tables_keep_every_number_whole(columns):
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, ["simulate", "panic", "--observe", "1"])
    assert result.exit_code == 0, result.output
    r = json.loads(CliRunner().invoke(cli, ["simulate", "panic", "--observe", "1", "--json"]).stdout)
    for figure in (f"{r['cycles']:,}", f"{r['perf_samples']:,}", f"{r['host_cpu_s_per_s']:.6f}",
                   f"{r['state_ns']['1']['halted'] / 1e6:,.3f}"):
        assert figure in result.stdout, figure
    assert "…" not in result.stdout
    assert max(map(len, result.stdout.splitlines())) <= columns


def test_markdown_and_csv_carry_the_same_rows(s1_report):
    report, out = s1_report
    md = reproduce_text(out, 80, "--format", "markdown")
    assert "| id | quantity | unit | thread | model | model/thread | lab | note |" in md
    assert "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |" in md
    lines = reproduce_text(out, 80, "--format", "csv").splitlines()
    assert lines[0].startswith("# haltlab ")
    table = list(csv.reader(line for line in lines[1:] if line and not line.startswith("#")))
    assert table[0] == ["id", "quantity", "unit", "thread", "model", "model/thread", "lab", "note"]
    assert [row[0] for row in table[1:]] == [r["id"] for r in report["rows"]]
    assert [row[3] for row in table[1:]] == [fmt_value(r["seed_value"]) for r in report["rows"]]
    assert "written to" not in "\n".join(lines)         # CSV is data only


@pytest.mark.parametrize("command", [["simulate", "panic", "--observe", "0.2"],
                                     ["explore", "panic-race"]])
def test_json_is_short_for_format_json(command):
    a = CliRunner().invoke(cli, [*command, "--json"])
    b = CliRunner().invoke(cli, [*command, "--format", "json"])
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout and json.loads(a.stdout)
    clash = CliRunner().invoke(cli, [*command, "--json", "--format", "csv"])
    assert clash.exit_code == 2 and len(clash.stderr.splitlines()) == 1
    assert "--json is short for --format json" in clash.stderr


def test_a_table_too_narrow_for_its_numbers_becomes_one_block_per_row():
    t = Table("t", [Column("name"), Column("a", numeric=True), Column("b", numeric=True)])
    t.add_row("first row", "123,456,789,012", "987,654,321,098")
    assert min_width(t) > 30
    from rich.console import Console
    console = Console(file=io.StringIO(), width=30)
    console.print(t)
    text = console.file.getvalue()
    assert "123,456,789,012" in text and "987,654,321,098" in text
    assert max(map(len, text.splitlines())) <= 30
    assert rich_table(t, None).columns                  # with room, a grid
    assert render([t], "csv") == "# t\nname,a,b\nfirst row,\"123,456,789,012\",\"987,654,321,098\"\n"


def test_cells_are_never_markup():
    t = Table("[bold]x[/]", [Column("where")])
    t.add_row("panic_on_other_cpu:100: [red]")
    from rich.console import Console
    console = Console(file=io.StringIO(), width=80)
    console.print(t)
    text = console.file.getvalue()
    assert "panic_on_other_cpu:100: [red]" in text and "[bold]x[/]" in text


# --- the lab and validation commands (issue 6 #23) ------------------------------------
#
# The lab's boundary is stubbed, nothing else: `prepare` (kernel, accelerator,
# initramfs) and `repeat` (boot a guest per run) in each experiment module hand
# back run dicts shaped like real ones (the sampler's own cpu_usage() makes the
# host-CPU figures from tick counts), so run_panic/run_kexec/run_flood, calibrate
# and validate summarize and print them as they would a real measurement.

KERNEL = KernelImage(Path("/nonexistent/vmlinuz"), None, "6.1.0-57-amd64", "debian:linux-image-6.1.0-57-amd64=6.1.192-3",
                     "linux-image-6.1.0-57-amd64", "6.1.192-3")
WINDOW_NS = 3_000_000_000


def _usage(i: int, cpus: int, spinning: bool) -> dict:
    """What the sampler reads over a 3 s window: vCPU 0 spins in panic()'s
    mdelay() loop (or, paused, nothing runs); the others are stopped."""
    ticks = [round(CLK_TCK * 3 * share) for share in (0.49, 0.47, 0.64)][i % 3] if spinning else 0
    tids = {1000 + c: c for c in range(cpus)}
    before = SimpleNamespace(ns=0, process=0, threads=dict.fromkeys(tids, 0), sched=dict.fromkeys(tids, (0, 0)))
    after = SimpleNamespace(ns=WINDOW_NS, process=ticks + 2,
                            threads={t: ticks if c == 0 else 0 for t, c in tids.items()},
                            sched={t: (ticks * 10**9 // CLK_TCK, WINDOW_NS - ticks * 10**9 // CLK_TCK)
                                   if c == 0 and spinning else (123_456 * (c + 1), 0) for t, c in tids.items()})
    return cpu_usage(before, after, tids, 4000)


def _panic_run(i: int, spec) -> dict:
    pause, reset_s = spec.pvpanic == "pause", int(spec.cmdline.split("panic=")[1].split()[0])
    end = None if pause else [19_812_345, 9_234_567, 20_912_345][i % 3]
    gap = None if pause else [2_731_192, 2_901_234, 2_650_000][i % 3]
    return {
        "outcome": "panicked-and-finished", "qemu_pid": 4000 + i, "triggered": True,
        **(no_cpu_usage() if reset_s else _usage(i, spec.cpus, spinning=not pause)),
        "panic_message": "sysrq triggered crash", "pvpanic_event": spec.pvpanic,
        "boot_to_trigger_ns": [6_251_234_567, 5_632_100_001, 6_381_000_123][i % 3],
        "panic_to_end_ns": None if pause else 8_590_000 + i, "trigger_to_end_ns": end,
        "panic_to_end_host_ns": None if pause else end - 1_234_567,
        "panic_console_lines": None if pause else 36, "panic_console_chars": None if pause else 2178,
        "panic_max_line_gap_ns": gap,
        "trigger_to_pvpanic_ns": [12_234_567, 7_712_345, 27_345_678][i % 3],
        "panic_to_reset_ns": reset_s * 10**9 + [1_280_123_456, 1_100_234_567, 3_090_345_678][i % 3] if reset_s else None,
        "lab_timeline": {"cpus": [{"cpu": c, "intervals": [[-200_000_000, 3_500_000_000, "running" if c == 0 else "halted"]]}
                                  for c in range(spec.cpus)],
                         "marks_ns": {"trigger": 0, "panic_line": 1_234_567}, "sample_interval_ns": 10_000_000,
                         "running_min_share": 0.1},
    }


def _kexec_run(i: int, spec) -> dict:
    return {"outcome": "completed", "qemu_pid": 5000 + i,
            "cold_boot_to_first_line_ns": [6_251_234_567, 3_971_234_567, 7_971_234_567][i % 3],
            "kexec_downtime_ns": [7_151_234_567, 6_541_234_567, 7_681_234_567][i % 3],
            "marker_to_starting_ns": 12_345_678 + i, "starting_to_first_line_ns": 7_138_888_889 + i,
            "smp_init_first_ns": [160_712_345, 139_412_345, 206_912_345][i % 3],
            "smp_init_second_ns": [160_812_345, 136_012_345, 161_212_345][i % 3],
            "cpus_first": spec.cpus, "cpus_second": spec.cpus,
            "kexec_to_second_init_ns": 9_876_543_210 + i, "boot_to_kexec_ns": 11_234_567_890 + i}


def _flood_run(i: int, spec) -> dict:
    """Run 1 hangs after its trigger; run 2 never reaches it."""
    hung, never = i % 4 == 1, i % 4 == 2
    end = None if hung or never else [313_456_789, 175_012_345, 417_654_321, 256_789_012][i % 4]
    run = {"outcome": "hung-with-output" if hung else "hung-silent" if never else "panicked-and-finished",
           "qemu_pid": 6000 + i, "triggered": not never, "trigger_marker": None if never else "sysrq",
           "flood_lines_before_trigger": [1290, 702, 0, 1725][i % 4],
           "flood_lines_after_trigger": [168, 15_171, 0, 19][i % 4],
           "flood_lines_total": [1458, 15_873, 0, 1744][i % 4], "console_bytes": [1_301_234, 15_873_001, 0, 1_744_321][i % 4],
           "dropped_messages": [284, 510, 0, 65][i % 4],
           "drop_notices_before_trigger": [0, 0, 0, 1][i % 4], "dropped_before_trigger": [0, 0, 0, 2][i % 4],
           "drop_notices_after_trigger": [12, 13, 0, 11][i % 4], "dropped_after_trigger": [284, 510, 0, 63][i % 4],
           "guard_fired": i % 4 in (0, 1), "trigger_to_guard_ns": [235_470_514, 98_765_432, None, None][i % 4],
           "trigger_to_guard_printk_ns": [9_233_000, 14_815_000, None, None][i % 4],
           "panic_to_end_ns": None if end is None else end - 4_321,
           "trigger_to_end_ns": end, "trigger_to_pvpanic_ns": None if never else 12_345_678 + i}
    if hung or never:
        run.update({"console_tail": ["flood 991 xxxx"], "progress_tail": ["HB 3"], "qemu_stderr_tail": []})
    return run


@pytest.fixture
def recorded_lab(monkeypatch):
    """The lab with its boot replaced by recorded-shape runs (see above)."""
    def prepare(config, entries, kernel=None):
        if getattr(config, "build", None):          # a flood case's own build (issue 9)
            kernel = replace(KERNEL, build={"patch_set": config.build, "source_package": "linux-source-6.1",
                                            "source_version": "6.1.192-3", "config_sha256": "c0" * 32})
        return Prepared(kernel or KERNEL, "tcg", "7.2.22", Path("/nonexistent/initrd.img"))

    for module, make in ((lab_panic, _panic_run), (lab_kexec, _kexec_run), (lab_flood, _flood_run)):
        def repeat(n, spec, once, progress, *, make=make, **kw):
            runs = [make(i, spec(i) if callable(spec) else spec) for i in range(n)]
            for i, run in enumerate(runs):
                if progress:
                    progress(i, n, run)
            return runs
        monkeypatch.setattr(module, "prepare", prepare)
        monkeypatch.setattr(module, "repeat", repeat)
    import haltlab.validation.calibrate
    import haltlab.validation.validate
    for module in (haltlab.validation.calibrate, haltlab.validation.validate):
        monkeypatch.setattr(module, "resolve_lab_kernel", lambda package=None: KERNEL)
    import haltlab.validation.s1_lab           # S1's build cases: the built kernel stands in too
    monkeypatch.setattr(haltlab.validation.s1_lab, "build_and_resolve", lambda name: KERNEL)
    haltlab.validation.s1_lab.reset()
    yield
    haltlab.validation.s1_lab.reset()          # no stand-in stays cached for the next test


def _invoke(args: list[str], columns: int = 80):
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def _ms(v, digits=1):
    return f"{v / 1e6:,.{digits}f}"


def _summaries(r: dict, fields: dict) -> list[str]:
    """Every figure a lab table shows: median, min and max of each summary."""
    out = []
    for key, show in fields.items():
        stats = r[key]
        assert stats, key                                   # the recorded runs give every figure
        out += [show(stats[k]) for k in ("median", "min", "max")]
    return out


def _panic_figures(r: dict) -> list[str]:
    fields = {"host_cpu_s_per_s_stats": lambda v: f"{v:,.3f}", "vcpu_demand_s_per_s": lambda v: f"{v:,.3f}",
              "perf_samples_per_s": lambda v: f"{v:,.0f}", "trigger_to_end_ns": _ms, "trigger_to_pvpanic_ns": _ms}
    per_vcpu = [f"{v['host_cpu_s_per_s'][k]:,.3f}" for v in r["per_vcpu"] for k in ("median", "min", "max")]
    return _summaries(r, fields) + per_vcpu


def _kexec_figures(r: dict) -> list[str]:
    s = lambda v: f"{v / 1e9:,.3f}"  # noqa: E731
    return _summaries(r, {"cold_boot_to_first_line_ns": s, "kexec_downtime_ns": s,
                          "smp_init_first_ns": _ms, "smp_init_second_ns": _ms})


def _flood_figures(r: dict) -> list[str]:
    whole = lambda v: f"{v:,.0f}"  # noqa: E731
    triggered = r["n_runs"] - r["never_triggered"]
    return _summaries(r, {"trigger_to_end_ns": _ms, "flood_lines_before_trigger": whole,
                          "flood_lines_after_trigger": whole, "drop_notices_after_trigger": whole,
                          "dropped_after_trigger": whole, "dropped_messages": whole,
                          "trigger_to_guard_ns": _ms, "trigger_to_guard_printk_ns": _ms}) + [
        f"{r['hangs']} of {r['n_runs']} runs", f"{r['guard_fired_runs']} of {triggered} triggered runs:"]


LAB_COMMANDS = {
    "panic": (["lab", "panic", "--runs", "3"], PanicResult, _panic_figures),
    "panic-reset": (["lab", "panic", "--runs", "3", "--panic-timeout", "5"], PanicResult,
                    lambda r: _summaries(r, {"panic_to_reset_ns": lambda v: f"{v / 1e9:,.3f}"})),
    "kexec": (["lab", "kexec", "--runs", "3", "--cpus", "4"], KexecResult, _kexec_figures),
    "flood": (["lab", "flood", "--runs", "4"], FloodResult, _flood_figures),
}


@pytest.mark.parametrize("name", LAB_COMMANDS)
def test_the_recorded_lab_results_are_real_shaped(name, recorded_lab):
    args, schema, _ = LAB_COMMANDS[name]
    assert conforms(json.loads(_invoke([*args, "--json"])), schema) == []


@pytest.mark.parametrize("columns", [60, 80])
@pytest.mark.parametrize("name", LAB_COMMANDS)
def test_lab_tables_keep_every_number_whole(name, columns, recorded_lab):
    args, _, figures = LAB_COMMANDS[name]
    r = json.loads(_invoke([*args, "--json"]))
    text = _invoke(args, columns)
    for figure in figures(r):
        assert figure in text, (figure, text)
    assert all(outcome in text for outcome in r["outcomes"])
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= columns


def _csv_tables(text: str) -> dict[str, list[list[str]]]:
    """report.tables' CSV: `# title`, then the rows, `# ` notes, a blank line."""
    tables, title = {}, None
    for block in text.split("\n\n"):
        lines = block.strip("\n").splitlines()
        title = lines[0].removeprefix("# ")
        assert lines[0].startswith("# ") and title not in tables
        tables[title] = list(csv.reader(line for line in lines[1:] if not line.startswith("# ")))
    return tables


@pytest.mark.parametrize("name", LAB_COMMANDS)
def test_lab_markdown_and_csv_carry_the_same_figures(name, recorded_lab):
    args, _, figures = LAB_COMMANDS[name]
    r = json.loads(_invoke([*args, "--json"]))
    md = _invoke([*args, "--format", "markdown"])
    assert "| quantity | median | min | max | runs |\n| --- | ---: | ---: | ---: | ---: |" in md
    assert all(figure in md for figure in figures(r))
    tables = _csv_tables(_invoke([*args, "--format", "csv"]))
    summary, outcomes = tables.values()
    assert summary[0] == ["quantity", "median", "min", "max", "runs"]
    cells = {cell for row in summary[1:] for cell in row}
    assert all(figure in cells for figure in figures(r) if " of " not in figure)
    assert outcomes[0] == ["outcome", "runs"]
    assert {row[0]: int(row[1]) for row in outcomes[1:]} == r["outcomes"]


@pytest.mark.parametrize("name", LAB_COMMANDS)
def test_lab_json_is_short_for_format_json(name, recorded_lab):
    args, _, _ = LAB_COMMANDS[name]
    assert _invoke([*args, "--json"]) == _invoke([*args, "--format", "json"])


def test_lab_output_gets_the_json_whatever_stdout_gets(recorded_lab, tmp_path):
    out = tmp_path / "r.json"
    text = _invoke(["lab", "panic", "--runs", "2", "--format", "csv", "--output", str(out)])
    assert text.startswith("# haltlab lab panic: ")
    assert out.read_text() == _invoke(["lab", "panic", "--runs", "2", "--json"])


# the flood quantities' digits (ns ones in ms); the panic ones: host CPU to 4, ms to 2
_FLOOD_DIGITS = {"records_per_drop_notice": 1, "flood_records_per_s_before_trigger": 0, "guard_fired_fraction": 2,
                 "drop_notices_after_trigger": 1, "trigger_to_end_ns": 1, "hang_rate": 3,
                 "psci_polled_ms": 0}   # S3 kexec cases: shutdown_ns and per_cpu_shutdown_ns in ms to 2, as the panic ones


def _share(v, q):
    if v is None:
        return "-"
    if q in _FLOOD_DIGITS:
        return f"{v / (1e6 if q.endswith('_ns') else 1):,.{_FLOOD_DIGITS[q]}f}"
    return f"{v:,.4f}" if q in ("host_cpu_s_per_s", "vcpu_demand_s_per_s") else f"{v / 1e6:,.2f}"


def _error(row: dict) -> str:
    """The error column: "-" where the lab's median is 0 or absent (a hang rate of 0)."""
    return "-" if row["relative_error"] is None else f"{row['relative_error']:+.0%}"


def _validate_figures(r: dict) -> list[str]:
    out = []
    for row in r["rows"]:
        q = row["quantity"]
        out += [*(_share(row[k], q) for k in ("model", "lab_median", "lab_min", "lab_max")), _error(row)]
    return out


def _calibrate_figures(r: dict) -> list[str]:
    def shown(v):
        return f"{v:,}" if isinstance(v, int) else f"{v:,.6f}"
    return [s for k, v in r["values"].items() for s in (shown(v), shown(r["previous"][k]))]


VALIDATION_COMMANDS = {
    "validate": (["validate", "--runs", "2"], _validate_figures),
    "calibrate": (["lab", "calibrate", "--runs", "3", "--dry-run"], _calibrate_figures),
}


@pytest.fixture(scope="module")
def validation_json():
    """Each command's JSON once (validate runs the model on every case)."""
    return {}


def _validation_result(name: str, cache: dict) -> dict:
    if name not in cache:
        cache[name] = json.loads(_invoke([*VALIDATION_COMMANDS[name][0], "--json"]))
    return cache[name]


@pytest.mark.parametrize("columns", [60, 80])
@pytest.mark.parametrize("name", VALIDATION_COMMANDS)
def test_validation_tables_keep_every_number_whole(name, columns, recorded_lab, validation_json):
    args, figures = VALIDATION_COMMANDS[name]
    r = _validation_result(name, validation_json)
    text = _invoke(args, columns)
    for figure in figures(r):
        assert figure in text, (figure, text)
    assert r["preset_match_reason"].split()[0] in text
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= columns


def test_validate_markdown_and_csv_carry_every_row(recorded_lab, validation_json):
    r = _validation_result("validate", validation_json)
    md = _invoke(["validate", "--runs", "2", "--format", "markdown"])
    assert all(figure in md for figure in _validate_figures(r))
    assert "| quantity | model | lab median | min | max | runs | error |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |" in md
    head, *cases = _csv_tables(_invoke(["validate", "--runs", "2", "--format", "csv"])).items()
    assert head[1][0][0] == "model" and r["kernel_preset"] in head[1][0][1]
    assert [title.split(":")[0] for title, _ in cases] == list(dict.fromkeys(row["case"] for row in r["rows"]))
    rows = [row for _, table in cases for row in table[1:]]
    assert all(table[0] == ["quantity", "model", "lab median", "min", "max", "runs", "error"] for _, table in cases)
    assert [row[1:] for row in rows] == [
        [*(_share(row[k], row["quantity"]) for k in ("model", "lab_median", "lab_min", "lab_max")),
         str(row["lab_runs"]), _error(row)] for row in r["rows"]]


def test_calibrate_markdown_and_csv_carry_every_value(recorded_lab, validation_json):
    r = _validation_result("calibrate", validation_json)
    args = VALIDATION_COMMANDS["calibrate"][0]
    md = _invoke([*args, "--format", "markdown"])
    assert "| parameter | before | measured |\n| --- | ---: | ---: |" in md and r["provenance"] in md
    text = _invoke([*args, "--format", "csv"])
    (title, table), = _csv_tables(text).items()
    assert title == f"calibrate {r['profile']} (dry run: not written)"
    assert table[0] == ["parameter", "before", "measured"]
    shown = iter(_calibrate_figures(r))                 # measured, before; per parameter
    assert {row[0]: (row[2], row[1]) for row in table[1:]} == {k: (next(shown), next(shown)) for k in r["values"]}
    assert f"# {r['provenance']}" in text.splitlines()


def test_a_calibration_written_says_where(recorded_lab, tmp_path):
    from haltlab.machine.profile import profiles_dir
    profile = tmp_path / "qemu-tcg-x86.toml"
    profile.write_bytes((profiles_dir() / "qemu-tcg-x86.toml").read_bytes())
    text = _invoke(["lab", "calibrate", "--runs", "1", "--profile", str(profile), "--format", "csv"])
    assert text.startswith(f"# calibrate {profile}: written to {profile}\n")


@pytest.mark.parametrize("command", [["lab", "panic"], ["lab", "kexec"], ["lab", "flood"], ["lab", "calibrate"],
                                     ["validate"]], ids=" ".join)
def test_lab_json_with_another_format_is_one_line(command, recorded_lab):
    clash = CliRunner().invoke(cli, [*command, "--json", "--format", "csv"])
    assert clash.exit_code == 2 and clash.stdout == ""
    assert len(clash.stderr.splitlines()) == 1
    assert "--json is short for --format json; it cannot go with --format csv" in clash.stderr


def test_a_figure_id_is_never_folded():
    """An id is a key a person searches for (`S1-samples-before`), not prose:
    it stays on one line at 120 columns, as numbers do."""
    from haltlab.report.tables import Column, Table, rich_table
    from rich.console import Console

    t = Table("figures", [Column("id", whole=True), Column("quantity"), Column("value", numeric=True)])
    t.add_row("S1-samples-before", "perf samples, stock mdelay() loop, whole guest " * 3, "55,000")
    console = Console(width=60, record=True, file=open("/dev/null", "w"))
    console.print(rich_table(t, 60))
    text = console.export_text()
    assert "S1-samples-before" in text and "55,000" in text
