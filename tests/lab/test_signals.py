"""Issue 6 #10 with a real QEMU: `haltlab lab panic` killed by PID while its guest
boots leaves no QEMU and no `haltlab-qemu-*` directory behind.

Each test starts the real command as a subprocess (in its own session, so the
signal reaches haltlab alone, as `kill PID` does), finds its QEMU among its
children, waits until that QEMU is running the guest, and kills haltlab.
QEMU's PID and its private directory (from its `-qmp unix:DIR/qmp.sock`
argument) are then checked directly, and /proc is scanned for any process
still naming the directory.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import haltlab
from haltlab.lab import lifetime
from haltlab.lab.experiments.common import prepare
from haltlab.lab.experiments.panic import PanicConfig, _entries

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SRC = str(Path(haltlab.__file__).parents[1])


@pytest.fixture(scope="module", autouse=True)
def lab_tools():
    missing = [t for t in ("qemu-system-x86_64", "busybox", "apt-get", "dpkg-deb") if not shutil.which(t)]
    if missing:
        pytest.skip(f"lab tools missing: {', '.join(missing)} (bin/test installs them as root)")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _running_qemu(haltlab_proc: subprocess.Popen, timeout_s: float = 600.0) -> tuple[int, Path]:
    """(QEMU's PID, its private directory) once the guest has run for a while.

    The first lab run of a machine downloads the kernel package: hence the
    long timeout; the QEMU then needs half a CPU-second to be well into boot.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert haltlab_proc.poll() is None, haltlab_proc.stderr.read()
        for pid in _children(haltlab_proc.pid):
            try:
                if not Path(f"/proc/{pid}/comm").read_text().startswith("qemu-system"):
                    continue
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if _cpu_s(pid) < 0.5:
                    continue
            except OSError:
                continue
            qmp = next(a for a in argv if a.startswith(b"unix:")).decode()[len("unix:"):].split(",")[0]
            return pid, Path(qmp).parent
        time.sleep(0.1)
    raise AssertionError("no running QEMU under haltlab")


def _start() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from haltlab.cli import main; main()", "lab", "panic", "--window", "60"],
        env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)


def _wait_dead(pid: int, timeout_s: float = 15.0) -> bool:
    """Gone or a zombie (this machine's PID 1 may not reap orphans)."""
    deadline = time.monotonic() + timeout_s
    while lifetime.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not lifetime.pid_alive(pid)


def _kill_leftovers(qemu: int) -> None:
    if lifetime.pid_alive(qemu):
        os.kill(qemu, signal.SIGKILL)   # only the PID this test found; fail, but leave nothing


def test_sigterm_stops_qemu_and_removes_its_directory():
    proc = _start()
    qemu, private = _running_qemu(proc)
    try:
        assert private.is_dir()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 143               # the command unwound (see cli/root.py) and exited
        assert not lifetime.pid_alive(qemu), "QEMU outlived haltlab's SIGTERM"
        assert not lifetime._named_by_a_process(private)
        assert not private.exists(), f"{private} left behind"
    finally:
        _kill_leftovers(qemu)


def test_sigkill_takes_qemu_along_and_the_next_run_sweeps_the_directory():
    proc = _start()
    qemu, private = _running_qemu(proc)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert _wait_dead(qemu), "QEMU outlived haltlab's SIGKILL"
        assert not lifetime._named_by_a_process(private)
        assert private.is_dir()                   # nothing in haltlab ran: the directory stays ...
        prepare(PanicConfig(), _entries)          # ... until the next run prepares
        assert not private.exists(), f"{private} not swept"
    finally:
        _kill_leftovers(qemu)
