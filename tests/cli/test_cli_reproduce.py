"""`haltlab reproduce`: the S1 rows, the files, and byte-identical JSON."""

import json

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.report.reproduce import LAB_PENDING
from haltlab.validation.figures import FIGURES

S1_IDS = ["S1-samples-before", "S1-samples-after", "S1-cycles-before", "S1-cycles-after",
          "S1-reduction"]
FIELDS = {"id", "thread", "quantity", "unit", "seed_value", "seed_source", "model_value",
          "model_over_seed", "lab_value", "lab_note", "note"}


def reproduce(*args: str):
    return CliRunner().invoke(cli, ["reproduce", *args])


def test_json_has_the_s1_rows_and_identical_bytes_across_runs(tmp_path):
    first = reproduce("--json", "--lab", "skip", "--out", str(tmp_path / "a"))
    second = reproduce("--json", "--lab", "skip", "--out", str(tmp_path / "b"))
    assert first.exit_code == second.exit_code == 0, first.output
    report = json.loads(first.stdout)
    rows = {r["id"]: r for r in report["rows"]}
    assert [r["id"] for r in report["rows"] if r["thread"] == "S1"] == S1_IDS
    for row in rows.values():
        assert set(row) == FIELDS
        assert isinstance(row["model_value"], (int, float)) and not isinstance(row["model_value"], bool)
        assert row["model_over_seed"] == (row["model_value"] / row["seed_value"] if row["seed_value"] else None)
        assert row["lab_value"] is None
    # rows the lab measures say it was skipped (S1's, and S2's builds, issue 9); the others that none exists
    with_lab = {f.id for f in FIGURES if f.lab is not None}
    assert {"S2-hang-rate", "S2-tcg-s2-petr", "S2-tcg-s2-stephen"} <= with_lab
    for row in rows.values():
        assert ("skipped" in row["lab_note"]) if row["id"] in with_lab else row["lab_note"] == LAB_PENDING
    assert rows["S1-samples-before"]["seed_value"] == 55_000
    assert rows["S1-cycles-after"]["seed_value"] == 37_553_709
    assert "INFERRED" in rows["S1-samples-before"]["note"]
    assert "by construction" in rows["S1-cycles-before"]["note"]
    assert report["profiles"] == ["arm64-server-24", "kvm-x86", "qemu-tcg-x86", "xeon-gold-6154"] and report["haltlab_version"]
    a = (tmp_path / "a" / "reproduce.json").read_bytes()
    assert a == (tmp_path / "b" / "reproduce.json").read_bytes()
    assert a.decode() == first.stdout


def test_human_output_and_files_with_lab_skip(tmp_path):
    out = tmp_path / "out"
    result = reproduce("--lab", "skip", "--out", str(out))
    assert result.exit_code == 0, result.output
    for row_id in S1_IDS:
        assert row_id in result.stdout
    assert {p.name for p in out.iterdir()} == {
        "reproduce.json", "reproduce.md", "report.html", "s1_host_cpu.png", "s1_timeline.png",
        "s1_before_timeline.json", "s1_after_timeline.json", ".haltlab-set"}
    for png in ("s1_host_cpu.png", "s1_timeline.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    md = (out / "reproduce.md").read_text()
    assert "| S1-reduction | cycles before / cycles after | ratio | 961.0 |" in md
    assert json.loads((out / "reproduce.json").read_text())["lab"] == "skip"


@pytest.mark.lab
def test_lab_columns_come_from_real_guests(tmp_path):
    """--lab auto boots the stock and the pvpanic-paused guest: a stock panicked
    guest burns about one host CPU (55K-ish samples over S1's window), a paused
    one next to nothing."""
    result = reproduce("--json", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.stdout)["rows"]}
    before, after = rows["S1-samples-before"], rows["S1-samples-after"]
    assert before["lab_value"] is not None
    assert any(accel in before["lab_note"] for accel in ("tcg guest", "kvm guest"))
    # One spinning vCPU: about one host CPU, less if the host is busy with other
    # work (under a load average of 3-4 on 2 cores it got 0.47-0.64, README's lab
    # table); the same floor as tests/lab/test_real_qemu.py uses.
    assert 0.3 * 55_000 < before["lab_value"] < 1.05 * 55_000
    assert after["lab_value"] < 0.01 * before["lab_value"]


def test_out_must_be_a_directory(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = reproduce("--lab", "skip", "--out", str(target))
    assert result.exit_code == 2
    assert result.stderr.startswith("haltlab: error: ") and len(result.stderr.splitlines()) == 1


def test_progress_shows_in_a_log(tmp_path):
    """stderr not a terminal (here, CliRunner's): a line at the start, one per
    step at most every 5 s, one at the end, each naming the step (issue 6 #25)."""
    result = reproduce("--json", "--lab", "skip", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("haltlab: reproduce: 0/") and lines[-1].endswith(", done)")
    assert all(line.startswith("haltlab: reproduce: ") for line in lines)
