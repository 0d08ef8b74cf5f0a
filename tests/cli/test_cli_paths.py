"""Path options that no file system can take, and profile files that are not
files: one line and exit 2 before any work, never a traceback or a hang
(issue 6 #1, #5, #6, #7)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli import cli

from cli_helpers import one_line_error
from haltlab.machine.profile import MAX_PROFILE_BYTES

SRC = Path(__file__).resolve().parents[2] / "src"




PATH_OPTIONS = [
    (["simulate", "panic"], "--trace"),
    (["reproduce", "--lab", "skip"], "--out"),
    (["validate"], "--output"),
    (["simulate", "panic"], "--profile"),
]


@pytest.mark.parametrize("command, option", PATH_OPTIONS)
@pytest.mark.parametrize("shape", ["component", "whole"])
def test_a_name_too_long_is_one_line(tmp_path, stub_work, command, option, shape):
    """#1: ENAMETOOLONG, whether one component is over 255 bytes or the whole
    path is over 4096, names the option and the limit."""
    path = (str(tmp_path / ("a" * 256)) if shape == "component"
            else str(tmp_path) + "/b" * 2100)
    result = CliRunner().invoke(cli, [*command, option, path])
    line = one_line_error(result, option, "File name too long")
    assert len(line) < 300                                  # the path is shortened in the message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, option", PATH_OPTIONS[:4])
def test_an_empty_path_is_refused(tmp_path, stub_work, monkeypatch, command, option):
    """#7: '' is not the current directory."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [*command, option, ""])
    one_line_error(result, option, "empty path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_profile_that_is_a_device_is_refused_unread(stub_work, device):
    """#5: a character device would be read without end."""
    result = CliRunner().invoke(cli, ["simulate", "panic", "--profile", device])
    one_line_error(result, device, "a character device, not a regular file")


def test_a_fifo_profile_does_not_block(tmp_path):
    """#5: a FIFO named x.toml with no writer: open(O_NONBLOCK), fstat, refuse.
    A real process, so that a blocking open shows as a timeout, not a hung suite."""
    fifo = tmp_path / "x.toml"
    os.mkfifo(fifo)
    run = subprocess.run([sys.executable, "-m", "haltlab", "simulate", "panic", "--profile", str(fifo)],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert run.returncode == 2
    assert run.stderr.splitlines() == [f"haltlab: error: {fifo}: cannot read: a FIFO, not a regular file"]


def test_a_profile_over_the_size_cap_is_refused(tmp_path, stub_work):
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_PROFILE_BYTES + 1))
    result = CliRunner().invoke(cli, ["simulate", "panic", "--profile", str(big)])
    one_line_error(result, "big.toml", "larger than 1024 KiB")


def test_a_profile_at_the_size_cap_is_read(tmp_path, stub_work):
    """The cap refuses only what is over it: a file of exactly the cap is parsed
    (and fails as TOML without a [profile] section, not on its size)."""
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * MAX_PROFILE_BYTES)
    result = CliRunner().invoke(cli, ["simulate", "panic", "--profile", str(big)])
    one_line_error(result, "big.toml", "[profile]: missing section")


@pytest.mark.parametrize("name", ["loop.toml", "loop"])
def test_a_profile_that_is_a_symlink_loop_is_one_line(tmp_path, stub_work, monkeypatch, name):
    """#6: Path.resolve() raises RuntimeError on a loop; the message is ELOOP's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).symlink_to(name)
    shown = name if name.endswith(".toml") else f"./{name}"
    result = CliRunner().invoke(cli, ["simulate", "panic", "--profile", shown])
    one_line_error(result, "Too many levels of symbolic links")


def test_an_output_file_that_is_a_device_is_never_replaced(stub_work):
    """The atomic writer renames over its target: /dev/null must not become a file."""
    result = CliRunner().invoke(cli, ["validate", "--output", "/dev/null"])
    one_line_error(result, "--output /dev/null: exists and is not a regular file (a character device)")
    assert Path("/dev/null").is_char_device()


def test_an_output_under_a_symlink_loop_is_one_line(tmp_path, stub_work):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for command, option in PATH_OPTIONS[:3]:
        result = CliRunner().invoke(cli, [*command, option, str(loop / "x")])
        one_line_error(result, option, "cannot write")
