"""Tables never cut a number, at any width; `--format` prints the same table
model as rich tables, Markdown or CSV, and `--json` is `--format json`
(issue 6 #23)."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
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
