"""One sweep per output file: a second is refused in one line naming the holder
(pid, host, start), runs nothing and writes nothing; a lock left by a killed
sweep does not bind."""

import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.errors import ConfigError
from haltlab.sweep import PanicSweep, open_sweep, read_sweep, run_sweep
from haltlab.sweep.lock import lock_path, locked

ARGS = ["--cpus", "2", "--seeds", "0-1", "--observe", "0.01", "--workers", "1"]


def panic_inputs():
    return PanicSweep.parse(cpus="2", seeds="0-1", observe_ns=10_000_000).inputs()


def test_a_second_sweep_on_the_same_file_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "s.jsonl"
    with open_sweep(out, panic_inputs()):              # a sweep is running on it
        before = out.read_bytes()
        result = CliRunner().invoke(cli, ["sweep", "panic", "--output", str(out), *ARGS])
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"haltlab: error: --output {out}: in use by another sweep "
                                   f"(pid {os.getpid()} on {socket.gethostname()} since 20")
        assert out.read_bytes() == before              # nothing ran, nothing was written
    result = CliRunner().invoke(cli, ["sweep", "panic", "--output", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    assert len(read_sweep(out)) == 4 and len(out.read_text().splitlines()) == 5


def test_the_lock_records_its_holder_and_goes_when_done(tmp_path):
    out = tmp_path / "s.jsonl"
    with locked(out):
        holder = json.loads(lock_path(out).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(ConfigError, match="in use by another sweep") as e:
            with locked(out):
                pass
        assert e.value.field == "output"
    assert not lock_path(out).exists()


def test_a_lock_file_left_by_a_killed_sweep_does_not_bind(tmp_path):
    out = tmp_path / "s.jsonl"
    lock_path(out).write_text('{"pid": 999999999, "host": "gone", "started": "2026-12-01T00:00:00Z"}\n')
    with ThreadPoolExecutor(1) as pool:
        assert run_sweep(lambda x: {"x": x}, [("a", 1)], out, pool, inputs={}) == 1
    assert not lock_path(out).exists()


def test_a_lock_removed_under_a_waiting_sweep_is_taken_again_by_name(tmp_path, monkeypatch):
    """The unlink race: a sweep that opened the lock file just before its
    holder removed it must not hold a lock on a file no name points to."""
    import haltlab.sweep.lock as lock
    out = tmp_path / "s.jsonl"
    name = lock_path(out)
    real_flock = lock.fcntl.flock
    removed = []

    def flock_after_the_holder_left(fd, op):
        if not removed:                     # the old holder removes the file between open and flock
            os.unlink(name)
            removed.append(True)
        return real_flock(fd, op)

    monkeypatch.setattr(lock.fcntl, "flock", flock_after_the_holder_left)
    with locked(out):
        assert name.exists()                # the lock held is on the file the name points to
        held = os.stat(name).st_ino
        with pytest.raises(ConfigError, match="in use"):
            with locked(out):
                pass
        assert os.stat(name).st_ino == held
