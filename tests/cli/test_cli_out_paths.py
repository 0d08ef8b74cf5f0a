"""Output paths: one that cannot take the result fails in one line before any
work runs (the work is stubbed to prove it), and a write that fails anyway after
the work is one line too, never a traceback."""

import errno
from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli import cli

from cli_helpers import one_line_error



def bad_paths(tmp_path: Path) -> list[str]:
    (tmp_path / "a-file").write_text("keep me")
    paths = [str(tmp_path / "a-file" / "x"), str(tmp_path / "a-file" / "x" / "y")]
    if Path("/proc").is_dir():
        paths.append("/proc/x")          # root passes access(), mkdir still fails
    return paths



@pytest.mark.parametrize("command, option", [
    (["simulate", "panic"], "--trace"),
    (["reproduce", "--lab", "skip"], "--out"),
    (["validate"], "--output"),
])
def test_an_output_path_that_cannot_be_made_fails_before_the_work(tmp_path, stub_work, command, option):
    for path in bad_paths(tmp_path):
        result = CliRunner().invoke(cli, [*command, option, path])
        one_line_error(result, f"{option} {path}: cannot write")
        assert result.stdout == ""
    assert (tmp_path / "a-file").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_validate_out_that_is_a_directory_fails_before_the_work(tmp_path, stub_work):
    result = CliRunner().invoke(cli, ["validate", "--output", str(tmp_path)])
    one_line_error(result, f"--output {tmp_path}: is a directory")


def test_the_probe_leaves_no_directory_behind(tmp_path, stub_work):
    out = tmp_path / "new" / "deeper"
    result = CliRunner().invoke(cli, ["simulate", "panic", "--trace", str(out)])
    assert result.exit_code == 1 and isinstance(result.exception, AssertionError)  # reached the work
    assert list(tmp_path.iterdir()) == []


def test_a_write_failing_after_the_run_is_one_line(tmp_path, monkeypatch):
    import haltlab.report._files

    def full_disk(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(haltlab.report._files, "_write", full_disk)
    out = tmp_path / "trace"
    result = CliRunner().invoke(cli, ["simulate", "panic", "--observe", "0.1", "--trace", str(out)])
    one_line_error(result, f"--trace {out}: cannot write (No space left on device)")
