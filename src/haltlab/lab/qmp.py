"""A minimal QMP client: commands in order, events kept with their host time.

QMP (QEMU's JSON machine protocol) is how the host asks QEMU which thread runs
which vCPU (`query-cpus-fast`), resumes a guest started paused (`cont`), and
learns that the guest panicked (`GUEST_PANICKED`, sent by the pvpanic device)
without reading the guest's console.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

__all__ = ["QmpError", "Qmp"]


class QmpError(RuntimeError):
    pass


class Qmp:
    """One connection; a reader thread splits replies from events."""

    def __init__(self, path: Path, timeout: float = 10.0, *, greeting_timeout: float | None = None):
        """A failed start closes everything it opened: a caller retries, so leaks would add up.

        `greeting_timeout` (default `timeout`) bounds the wait for QEMU's greeting,
        so a caller that retries until its own deadline is not held past it.
        """
        self.events: list[tuple[int, dict]] = []
        self._replies: list[dict] = []
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        self._timeout = timeout
        self._file = None
        self._thread = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._greet(path, timeout if greeting_timeout is None else greeting_timeout)
            self._thread = threading.Thread(target=self._read, name="qmp", daemon=True)
            self._thread.start()
            self.command("qmp_capabilities")
        except BaseException:
            self.close()
            raise

    def _greet(self, path: Path, timeout: float) -> None:
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(str(path))
            self._file = self._sock.makefile("rb")
            greeting = json.loads(self._file.readline())
            self.version = greeting["QMP"]["version"]["qemu"]
        except (OSError, ValueError, LookupError, TypeError) as e:
            raise QmpError(f"no QMP greeting from {path}: {str(e) or type(e).__name__}") from e
        self._sock.settimeout(None)  # the reader thread blocks until QEMU closes

    def _read(self) -> None:
        try:
            for raw in self._file:
                msg = json.loads(raw)
                with self._cond:
                    if "event" in msg:
                        self.events.append((time.monotonic_ns(), msg))
                    else:
                        self._replies.append(msg)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        with self._cond:
            self._replies.append({"error": {"desc": "QMP connection closed"}})
            self._cond.notify_all()

    def command(self, name: str, **arguments) -> object:
        """Send one command and wait for its reply (one at a time, so replies match)."""
        with self._lock:
            msg = {"execute": name, **({"arguments": arguments} if arguments else {})}
            try:
                self._sock.sendall(json.dumps(msg).encode() + b"\n")
            except OSError as e:  # QEMU went away: the same failure as a missing reply
                raise QmpError(f"{name}: {e}") from e
            with self._cond:
                if not self._cond.wait_for(lambda: self._replies, self._timeout):
                    raise QmpError(f"no reply to {name}")
                reply = self._replies.pop(0)
        if "error" in reply:
            raise QmpError(f"{name}: {reply['error'].get('desc')}")
        return reply.get("return")

    def event(self, name: str) -> tuple[int, dict] | None:
        """The first event called `name`, with its host arrival time, if any."""
        with self._cond:
            return next(((t, e) for t, e in self.events if e["event"] == name), None)

    def vcpu_threads(self) -> dict[int, int]:
        """Host thread id -> vCPU index, from query-cpus-fast."""
        return {c["thread-id"]: c["cpu-index"] for c in self.command("query-cpus-fast")}

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._thread is not None:
            self._thread.join(2)
        if self._file is not None:
            self._file.close()
