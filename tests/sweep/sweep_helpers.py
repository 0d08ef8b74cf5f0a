"""Helpers for the sweep tests: the command as a real process, and a tiny disk."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import haltlab

SRC = str(Path(haltlab.__file__).parents[1])


def haltlab_process(*args: str, **popen) -> subprocess.Popen:
    """`python -m haltlab ARGS` from this tree, as its own process."""
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "300"}   # tables unwrapped
    return subprocess.Popen([sys.executable, "-m", "haltlab", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def haltlab_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    p = haltlab_process(*args)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def refused(result, *needles: str) -> str:
    """A CliRunner result that is one `haltlab: error:` line holding each of `needles`, exit 2."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("haltlab: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def errors(stderr: str) -> list[str]:
    """stderr without the progress lines."""
    return [line for line in stderr.splitlines() if not line.startswith("haltlab: sweep: ")]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (needs root), unmounted afterwards; grow it with `grow(mnt)`."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def grow(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], check=True)
