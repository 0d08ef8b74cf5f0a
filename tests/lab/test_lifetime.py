"""Issue 6 #10, the parts that need no QEMU: children die with haltlab, SIGTERM
cleans up like Ctrl-C, and only directories of provably dead runs are swept.

Real processes throughout (python and sleep children killed by PID); the same
with a real QEMU is in test_signals.py.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import haltlab
from haltlab.lab import lifetime

SRC = str(Path(haltlab.__file__).parents[1])


def _python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, "PYTHONPATH": SRC},
                            stdout=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _wait_dead(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while lifetime.pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_child_dies_when_haltlab_is_killed():
    parent = _python("""
        from haltlab.lab import lifetime
        child = lifetime.spawn(["sleep", "300"])
        print(child.pid, flush=True)
        import time; time.sleep(300)
    """)
    child = int(parent.stdout.readline())
    try:
        assert lifetime.pid_alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert _wait_dead(child), f"sleep {child} outlived its SIGKILLed parent"
    finally:
        if lifetime.pid_alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_child_whose_parent_died_before_the_prctl_kills_itself(monkeypatch):
    # The race: the parent dies between fork and prctl(), so the death signal is
    # never sent. The child sees another parent and ends itself before exec.
    real_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1_000_000)  # "the parent" is someone else
    preexec = lifetime.die_with_parent()
    monkeypatch.undo()
    proc = subprocess.Popen(["sleep", "300"], preexec_fn=preexec)
    assert proc.wait(10) == -signal.SIGKILL


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_cleans_up_like_ctrl_c_then_exits_by_the_signal(tmp_path, signum):
    marker = tmp_path / "cleaned"
    proc = _python(f"""
        import time
        from haltlab.lab.lifetime import terminate_cleanly
        with terminate_cleanly():
            try:
                print("ready", flush=True)
                time.sleep(300)
            finally:
                open({str(marker)!r}, "w").write("finally ran")
    """)
    assert proc.stdout.readline() == "ready\n"
    os.kill(proc.pid, signum)
    assert proc.wait(10) == -signum      # the sender sees the signal it sent
    assert marker.read_text() == "finally ran"


def test_a_handler_the_caller_set_is_left_alone():
    proc = _python("""
        import signal
        from haltlab.lab.lifetime import terminate_cleanly
        signal.signal(signal.SIGTERM, lambda *a: None)
        with terminate_cleanly():
            print(signal.getsignal(signal.SIGTERM).__name__, signal.getsignal(signal.SIGHUP).__name__, flush=True)
    """)
    assert proc.stdout.read() == "<lambda> handler\n" and proc.wait(10) == 0


def test_a_held_private_dir_is_kept_and_a_dead_ones_swept(tmp_path):
    owner = _python(f"""
        from haltlab.lab import lifetime
        d = lifetime.PrivateDir("t-", {str(tmp_path)!r})
        print(d.path, flush=True)
        import time; time.sleep(300)
    """)
    path = Path(owner.stdout.readline().strip())
    assert path.is_dir() and path.name.startswith("t-") and (path / lifetime.LOCK_NAME).is_file()
    assert lifetime.sweep_stale("t-", tmp_path) == [] and path.is_dir()      # its owner lives
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait(10)
    assert lifetime.sweep_stale("t-", tmp_path) == [path] and not path.exists()


def test_the_lock_is_held_while_a_child_that_inherited_it_lives(tmp_path):
    d = lifetime.PrivateDir("t-", tmp_path)
    child = subprocess.Popen(["sleep", "300"], pass_fds=(d.lock_fd,))
    os.close(d.lock_fd)          # haltlab is gone; its QEMU is not
    d.lock_fd = -1
    try:
        assert lifetime.sweep_stale("t-", tmp_path) == [] and d.path.is_dir()
    finally:
        child.kill()
        child.wait()
    assert lifetime.sweep_stale("t-", tmp_path) == [d.path]


def test_an_unlocked_dir_goes_only_when_old_and_named_by_no_process(tmp_path):
    young, named, old = (tmp_path / f"t-{n}" for n in ("young", "named", "old"))
    for d in (young, named, old):
        d.mkdir()
    past = time.time() - lifetime.STALE_AFTER_S - 5
    for d in (named, old):
        os.utime(d, (past, past))
    holder = subprocess.Popen(["sh", "-c", "sleep 300; true", str(named / "qmp.sock")],  # like -qmp unix:...
                              start_new_session=True)
    try:
        while str(named).encode() not in Path(f"/proc/{holder.pid}/cmdline").read_bytes():
            time.sleep(0.01)   # until the fork has exec'd sh
        assert lifetime.sweep_stale("t-", tmp_path) == [old]
        assert young.is_dir() and named.is_dir()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)   # sh and its sleep
        holder.wait()


def test_partial_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = tmp_path / f".x.cpio.gz.{os.getpid()}"
    theirs = tmp_path / f".x.cpio.gz.{dead.pid}"
    for f in (mine, theirs):
        f.write_bytes(b"partial")
    assert lifetime.sweep_orphan_files(tmp_path, ".*.cpio.gz.*") == [theirs]
    assert mine.exists() and not theirs.exists()
