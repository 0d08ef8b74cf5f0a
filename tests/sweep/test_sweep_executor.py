"""Executors: the process pool and a real Dask cluster give the same rows; a bad
scheduler address is one line; workers are capped; and no worker outlives
haltlab, whether it gets SIGTERM or SIGKILL (real processes, found in /proc)."""

import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sweep_helpers import errors, haltlab_process, haltlab_run

from haltlab.cli import cli
from haltlab.errors import ConfigError
from haltlab.sweep import (check_scheduler_address, cpu_count, executor, read_sweep, run_sweep,
                           worker_count)
from haltlab.sweep.executor import slots

INPUTS = {"scenario": "squares"}


def square(x: int) -> dict:
    return {"x": x, "square": x * x}


def items(n):
    return [(f"k{i:03d}", i) for i in range(n)]


def test_process_pool_sweep_writes_every_row(tmp_path):
    path = tmp_path / "s.jsonl"
    with executor(workers=2) as pool:
        assert run_sweep(square, items(6), path, pool, inputs=INPUTS) == 6
    rows = read_sweep(path)
    assert [r["key"] for r in rows] == [f"k{i:03d}" for i in range(6)]
    assert [r["result"]["square"] for r in rows] == [i * i for i in range(6)]


def test_dask_cluster_gives_the_same_rows_as_the_pool(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  host="127.0.0.1", dashboard_address=":0") as cluster:
        with executor(scheduler=cluster.scheduler_address) as pool:
            assert slots(pool) == 2
            run_sweep(square, items(4), tmp_path / "d.jsonl", pool, inputs=INPUTS)
    with executor(workers=2) as pool:
        run_sweep(square, items(4), tmp_path / "p.jsonl", pool, inputs=INPUTS)
    assert read_sweep(tmp_path / "d.jsonl") == read_sweep(tmp_path / "p.jsonl")


def test_the_panic_sweep_on_a_dask_cluster_equals_the_pools(tmp_path):
    """The command with --scheduler: the same rows, byte for byte, as without."""
    distributed = pytest.importorskip("distributed")
    args = ["sweep", "panic", "--cpus", "2,4", "--seeds", "0-1", "--observe", "0.05"]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        on_dask = CliRunner().invoke(cli, [*args, "--output", str(tmp_path / "d.jsonl"),
                                           "--scheduler", cluster.scheduler_address])
    assert on_dask.exit_code == 0, on_dask.output
    local = CliRunner().invoke(cli, [*args, "--output", str(tmp_path / "p.jsonl"), "--workers", "2"])
    assert local.exit_code == 0, local.output
    assert len(read_sweep(tmp_path / "d.jsonl")) == 8
    assert read_sweep(tmp_path / "d.jsonl") == read_sweep(tmp_path / "p.jsonl")


@pytest.mark.parametrize("address, why", [
    ("bogus", "missing port number"),
    ("", "empty"),
    ("  ", "empty"),
    ("http://", "unknown scheme 'http'"),
    ("http://example.org:80", "unknown scheme 'http'"),
    ("tcp://", "missing port number"),
    ("tcp://host:port", "the port is not a number"),
    ("tcp://host:70000", "port 70000 is not 1-65535"),
    ("tcp://:8786", "no host"),
    ("[::1", "ipv6 needs brackets"),
    ("inproc://nothing", "cannot reach the Dask scheduler"),
])
def test_a_bad_scheduler_address_is_one_line_before_anything_is_written(tmp_path, address, why):
    pytest.importorskip("distributed")
    result = CliRunner().invoke(cli, ["sweep", "panic", "--output", str(tmp_path / "s.jsonl"),
                                      "--seeds", "0", "--scheduler", address])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("haltlab: error: --scheduler "), result.stderr
    assert why in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://sched.example:8786",
                                     "ws://[::1]:8786", "wss://h:1"])
def test_the_address_forms_distributed_dials_are_accepted(address):
    pytest.importorskip("distributed")
    assert check_scheduler_address(address) == address


def test_an_unreachable_scheduler_is_one_line_and_leaves_no_file(tmp_path):
    pytest.importorskip("distributed")
    result = CliRunner().invoke(cli, ["sweep", "panic", "--output", str(tmp_path / "never.jsonl"),
                                      "--scheduler", "tcp://127.0.0.1:9", "--seeds", "0",
                                      "--scheduler-timeout", "0.5"])
    assert result.exit_code == 2
    assert "--scheduler tcp://127.0.0.1:9: cannot reach the Dask scheduler" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_workers_are_capped_at_the_cpus_and_the_runs():
    cpus = cpu_count()
    assert worker_count(None, 10_000) == (cpus, None)
    n, note = worker_count(256, 10_000)
    assert n == cpus and note == f"{cpus} workers, not 256: 10000 runs to do on {cpus} CPUs"
    n, note = worker_count(256, 1)
    assert n == 1 and "not 256: 1 runs to do" in note
    assert worker_count(None, 1) == (1, None)
    with pytest.raises(ConfigError, match="must be at least 1"):
        worker_count(0, 5)


def test_the_command_says_when_it_caps_workers(tmp_path, monkeypatch):
    import haltlab.cli.sweep as cli_sweep
    started = []
    real = cli_sweep.executor

    def recording(scheduler, workers, timeout_s):
        started.append(workers)
        return real(scheduler, workers, timeout_s)

    monkeypatch.setattr(cli_sweep, "executor", recording)
    result = CliRunner().invoke(cli, ["sweep", "panic", "--output", str(tmp_path / "s.jsonl"), "--cpus", "2",
                                      "--seeds", "0", "--observe", "0.01", "--workers", "256"])
    assert result.exit_code == 0, result.output
    assert started == [min(2, cpu_count())]                 # 2 runs to do
    assert f"haltlab: sweep: {started[0]} workers, not 256: 2 runs to do on {cpu_count()} CPUs" in result.stderr


# --- no worker outlives haltlab -------------------------------------------------------

def _children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is `pid`."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue                        # gone
        if state != "Z":                    # a zombie holds nothing; its reaper is PID 1
            alive.add(pid)
    return alive


def _wait_for(predicate, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def long_sweep(tmp_path):
    """A sweep that runs for minutes, once its pool works: (process, its
    children: 2 workers, and the pool's resource tracker if it has one yet,
    output file)."""
    out = tmp_path / "s.jsonl"
    p = haltlab_process("sweep", "panic", "--output", str(out), "--cpus", "64", "--seeds", "0-4999",
                        "--workers", "2")

    def pool_up():
        kids = _children(p.pid)
        return kids if len(kids) >= 2 else None

    workers: set[int] = set()
    try:
        workers |= _wait_for(pool_up, 60) or set()
        assert workers, "the pool did not start"
        assert _wait_for(lambda: out.exists() and out.read_bytes().count(b"\n") >= 2, 30), "no run finished"
        yield p, workers, out
    finally:                                # a failing test leaves no process either
        if p.poll() is None:
            workers |= _children(p.pid)
            p.kill()
        for pid in _alive(workers):
            os.kill(pid, signal.SIGKILL)
        p.communicate()


def _resumes(out: Path) -> bool:
    again = haltlab_run("sweep", "panic", "--output", str(out), "--cpus", "64", "--seeds", "0-3")
    return again.returncode == 0 and f"runs in {out}" in again.stdout


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("signum, status, line", [
    (signal.SIGTERM, 143, "haltlab: error: terminated (SIGTERM)"),
    (signal.SIGINT, 130, "haltlab: error: interrupted"),
])
def test_sigterm_stops_the_pool_and_says_so_in_one_line(long_sweep, signum, status, line):
    p, workers, out = long_sweep
    p.send_signal(signum)
    _, err = p.communicate(timeout=30)
    assert p.returncode == status
    # no blank line either: click's own ^C handler (which prints one) is never reached
    assert errors(err) == [line], err
    assert _wait_for(lambda: not _alive(workers), 5), f"alive after {signum!r}: {_alive(workers)}"
    assert out.read_bytes().endswith(b"\n") and not out.with_name("s.jsonl.lock").exists()
    assert _resumes(out)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigkill_takes_the_workers_with_it(long_sweep):
    p, workers, out = long_sweep
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)               # returns once no worker holds its stdout
    assert p.returncode == -signal.SIGKILL
    assert _wait_for(lambda: not _alive(workers), 5), f"alive after SIGKILL: {_alive(workers)}"
    assert _resumes(out)                    # a stale lock file and a torn line are no obstacle


def test_workers_with_a_scheduler_is_refused_not_ignored():
    from haltlab.errors import ConfigError
    from haltlab.sweep.executor import check_executor
    with pytest.raises(ConfigError, match="the cluster has its own workers"):
        check_executor("tcp://127.0.0.1:8786", workers=4)
    check_executor("tcp://127.0.0.1:8786")          # alone, it is fine
