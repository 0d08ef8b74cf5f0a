"""Start one QEMU, watch it, and always stop it: the only module that owns a process.

Life cycle of a `Guest` (a context manager):
  make a locked private temp dir -> launch paused (-S) -> connect QMP -> read
  vCPU threads -> `cont` -> the experiment waits on the guest's channels ->
  close: SIGTERM, SIGKILL after a grace period, reap, join the reader threads,
  remove the private temp dir.
Close runs in a `finally`, so a timeout, an exception, Ctrl-C or (under
lifetime.terminate_cleanly) SIGTERM never leaves a QEMU behind; it signals
only the PID this object started. Against SIGKILL of haltlab itself, QEMU is
started to die with its parent (PR_SET_PDEATHSIG) and holds its directory's
lock, so the next run's `sweep_stale_guests()` can tell the directory is dead.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from haltlab.errors import UserError
from haltlab.lab import lifetime
from haltlab.lab.classify import Observation
from haltlab.lab.parse import PANIC_END, PANIC_START
from haltlab.lab.qemu import GuestSpec, build_args
from haltlab.lab.qmp import Qmp, QmpError
from haltlab.lab.sampler import VcpuTrace
from haltlab.lab.serial import SerialLog

__all__ = ["Guest", "GRACE_S", "TMP_PREFIX", "sweep_stale_guests"]

GRACE_S = 2.0  # between SIGTERM and SIGKILL
TMP_PREFIX = "haltlab-qemu-"  # each guest's private directory in the temp dir (the QMP socket)


def sweep_stale_guests() -> list:
    """Remove the private directories of guests whose haltlab and QEMU are dead."""
    return lifetime.sweep_stale(TMP_PREFIX)


class Guest:
    """One QEMU process and its three channels: console, progress, QMP."""

    def __init__(self, spec: GuestSpec, *, bulk: Callable[[str], bool] | None = None, trace_vcpus: bool = False):
        """`trace_vcpus`: also sample each vCPU thread's host CPU time every
        10 ms from before the guest runs (`vcpu_trace`, for a timeline)."""
        self.spec = spec
        self.vcpu_trace: VcpuTrace | None = None
        self.proc: subprocess.Popen | None = None
        self.qmp: Qmp | None = None
        self.exit_ns: int | None = None
        self.killed = False
        self.stderr = b""
        self._reaper: threading.Thread | None = None
        self._dir = lifetime.PrivateDir(TMP_PREFIX)
        self._tmp = self._dir.path
        try:
            self._launch(bulk)
            self.vcpus = self.qmp.vcpu_threads()
            if trace_vcpus:
                self.vcpu_trace = VcpuTrace(self.proc.pid, self.vcpus)
            self.start_ns = time.monotonic_ns()
            self.qmp.command("cont")
        except BaseException:
            self.close()
            raise

    def _launch(self, bulk: Callable[[str], bool] | None) -> None:
        con_r, con_w = os.pipe()
        prog_r, prog_w = os.pipe()
        qmp_path = self._tmp / "qmp.sock"
        args = build_args(self.spec, console_fd=con_w, progress_fd=prog_w, qmp_path=qmp_path)
        try:
            # QEMU holds the directory's lock too (lock_fd): it stays locked
            # while QEMU lives, even if haltlab is gone.
            self.proc = lifetime.spawn(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, pass_fds=(con_w, prog_w, self._dir.lock_fd),
            )
        except BaseException:
            for fd in (con_r, prog_r):
                os.close(fd)
            raise
        finally:
            os.close(con_w)  # QEMU holds the write ends now; EOF comes when it exits
            os.close(prog_w)
        self.console = SerialLog(con_r, "console", bulk)
        self.progress = SerialLog(prog_r, "progress")
        self._reaper = threading.Thread(target=self._reap, name="qemu-reaper", daemon=True)
        self._reaper.start()
        self.qmp = self._connect(qmp_path)

    def _reap(self) -> None:
        with self.proc.stderr:
            self.stderr = self.proc.stderr.read()
        self.proc.wait()
        self.exit_ns = time.monotonic_ns()

    def _connect(self, path: Path, timeout_s: float = 20.0) -> Qmp:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reaper.join(GRACE_S)  # it has read stderr to EOF
                msg = self.stderr.decode(errors="replace").strip().splitlines()
                raise UserError(f"QEMU exited at start: {msg[-1] if msg else self.proc.returncode}")
            if path.exists():
                try:
                    return Qmp(path, greeting_timeout=max(0.1, deadline - time.monotonic()))
                except QmpError:
                    pass  # not listening yet, or QEMU died: the poll above tells
            time.sleep(0.02)
        raise UserError(f"QEMU did not open its QMP socket within {timeout_s:g} s (an overloaded host?)")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self) -> bool:
        return self.exit_ns is not None

    def wait_until(self, done: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
        """Poll `done()` until it holds, QEMU exits, or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if self.exited():
                self.console.join(1)
                self.progress.join(1)
                return done()
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def panic_event(self) -> tuple[int, dict] | None:
        return self.qmp.event("GUEST_PANICKED") if self.qmp else None

    def trigger_ns(self, tag: str = "TRIGGER") -> int | None:
        """Host ns at which the guest was seen to trigger its panic, or None.

        The `tag` line on the progress port comes first; but a tty write is sent
        by the UART's interrupt, which a panic can overtake (the guest is then
        stopped, or paused by pvpanic, with the line still in its buffer). So the
        panic's own evidence also counts: its first console line, or pvpanic's
        GUEST_PANICKED event; the earliest of them is the trigger's time.
        """
        seen = [self.progress.lines[i][0] for i in [self.progress.seen(tag)] if i is not None]
        seen += [self.console.lines[i][0] for i in [self.console.seen(PANIC_START)] if i is not None]
        ev = self.panic_event()
        if ev is not None:
            seen.append(ev[0])
        return min(seen) if seen else None

    def tails(self, n: int = 6) -> dict[str, list[str]]:
        """The last lines of each channel: what a hung or failed run is judged by."""
        return {
            "console_tail": [text for _, text in self.console.lines[-n:]],
            "progress_tail": [text for _, text in self.progress.lines[-n:]],
            "qemu_stderr_tail": self.stderr.decode(errors="replace").strip().splitlines()[-n:],
        }

    def observation(self, timed_out: bool) -> Observation:
        """What classify() needs, read from the channels now."""
        ev = self.panic_event()
        return Observation(
            exit_status=self.proc.returncode if self.exited() and not self.killed else None,
            timed_out=timed_out,
            panic_seen=self.console.seen(PANIC_START) is not None or ev is not None,
            end_marker_seen=self.console.seen(PANIC_END) is not None,
            pvpanic_action=ev[1].get("data", {}).get("action") if ev else None,
            deadline_ns=time.monotonic_ns(),
            last_console_ns=self.console.last_ns,
        )

    def close(self) -> None:
        """Stop QEMU (only our PID), reap it, and release every resource."""
        if self.vcpu_trace is not None:
            self.vcpu_trace.stop()
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.killed = True
                self.proc.terminate()
                try:
                    self.proc.wait(GRACE_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self.proc is not None and self.proc.poll() is None:  # the wait above was interrupted
                self.killed = True
                self.proc.kill()
                self.proc.wait()
            if self.qmp is not None:
                self.qmp.close()
            if self._reaper is not None:
                self._reaper.join(GRACE_S)
            for log in (getattr(self, "console", None), getattr(self, "progress", None)):
                if log is not None:
                    log.join()
            self._dir.remove()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
