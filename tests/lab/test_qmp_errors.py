"""QMP and QEMU start-up failures without QEMU: a fake QMP server on a UNIX socket,
and ordinary processes standing in for QEMU. A failed start must leak nothing
(a retry loop would add the leaks up) and must never outlast its deadline."""

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from haltlab.errors import UserError
from haltlab.lab.qmp import Qmp, QmpError
from haltlab.lab.runner import Guest

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
                    "capabilities": []}}


def _send(conn, msg) -> None:
    conn.sendall(json.dumps(msg).encode() + b"\n")


@contextlib.contextmanager
def qmp_server(script):
    """A one-connection server running `script(conn, lines)` on its own thread."""
    d = tempfile.mkdtemp(prefix="hlq-")   # short: a UNIX socket path has ~107 bytes
    path = Path(d) / "qmp.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn, conn.makefile("rb") as lines:
            script(conn, lines)

    t = threading.Thread(target=serve, name="fake-qmp", daemon=True)
    t.start()
    try:
        yield path
    finally:
        t.join(5)
        srv.close()
        shutil.rmtree(d)
    assert not t.is_alive()


@pytest.fixture
def sockets(monkeypatch):
    """Every socket made during the test (client, server, accepted), to check that
    each one is closed for real: a socket with a makefile() open keeps its fd."""
    made = []

    class Recorded(socket.socket):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(socket, "socket", Recorded)
    return made


def _all_closed(sockets) -> bool:
    return bool(sockets) and all(s.fileno() == -1 for s in sockets)


def _qmp_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "qmp"]


def _until_closed(conn, lines) -> None:
    """Until the client closes its end; a bounded wait, so a regression fails, not hangs."""
    conn.settimeout(10)
    with contextlib.suppress(OSError):
        lines.read()


@pytest.mark.parametrize("script", [
    lambda conn, lines: conn.sendall(b"this is not JSON\n"),
    lambda conn, lines: conn.sendall(b'{"no": "greeting"}\n'),
    lambda conn, lines: None,                                    # accepts, closes at once
], ids=["garbage", "wrong-json", "closed"])
def test_a_bad_greeting_is_a_qmp_error_and_leaks_nothing(script, sockets):
    with qmp_server(script) as path:
        with pytest.raises(QmpError, match="no QMP greeting"):
            Qmp(path, greeting_timeout=5)
    assert _qmp_threads() == []
    assert _all_closed(sockets)


def test_a_silent_server_cannot_hold_the_greeting_past_its_timeout(sockets):
    with qmp_server(_until_closed) as path:
        t0 = time.monotonic()
        with pytest.raises(QmpError, match="no QMP greeting"):
            Qmp(path, greeting_timeout=0.2)
        assert time.monotonic() - t0 < 2
    assert _all_closed(sockets)


def test_nothing_listening_is_a_qmp_error(tmp_path):
    with pytest.raises(QmpError):
        Qmp(tmp_path / "no-such.sock")


def test_closing_before_the_capabilities_reply_stops_the_reader(sockets):
    def greet_then_close(conn, lines):
        _send(conn, GREETING)
        lines.readline()   # qmp_capabilities, never answered

    with qmp_server(greet_then_close) as path:
        with pytest.raises(QmpError, match="qmp_capabilities"):
            Qmp(path, greeting_timeout=5)
    assert _qmp_threads() == []
    assert _all_closed(sockets)


def test_the_greeting_timeout_does_not_limit_the_connection(sockets):
    def qemu(conn, lines):
        _send(conn, GREETING)
        lines.readline()
        _send(conn, {"return": {}})
        lines.readline()                    # query-cpus-fast
        time.sleep(0.4)                     # longer than the greeting timeout
        _send(conn, {"event": "GUEST_PANICKED", "data": {"action": "pause"}})
        _send(conn, {"return": [{"thread-id": 42, "cpu-index": 0}]})
        _until_closed(conn, lines)

    with qmp_server(qemu) as path:
        q = Qmp(path, greeting_timeout=0.1)
        try:
            assert q.version == {"major": 7, "minor": 2, "micro": 0}
            assert q.vcpu_threads() == {42: 0}
            assert q.event("GUEST_PANICKED")[1]["data"]["action"] == "pause"
        finally:
            q.close()
    assert _qmp_threads() == []
    assert _all_closed(sockets)


# -- runner._connect with an ordinary process in QEMU's place -----------------------

def _guest_around(argv: list[str]) -> Guest:
    g = Guest.__new__(Guest)   # no QEMU: only what _connect and the reaper use
    g.stderr, g.exit_ns = b"", None
    g.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    g._reaper = threading.Thread(target=g._reap, name="qemu-reaper", daemon=True)
    g._reaper.start()
    return g


def test_a_qemu_that_exits_at_start_is_one_line_with_its_stderr(tmp_path):
    g = _guest_around(["sh", "-c", "echo 'qemu: could not load kernel' >&2; exit 1"])
    with pytest.raises(UserError, match="^QEMU exited at start: qemu: could not load kernel$"):
        g._connect(tmp_path / "qmp.sock", timeout_s=10)
    assert not g._reaper.is_alive() and g.proc.stderr.closed


def test_no_qmp_socket_in_time_is_a_user_error(tmp_path):
    g = _guest_around(["sleep", "30"])
    try:
        t0 = time.monotonic()
        with pytest.raises(UserError, match="did not open its QMP socket within 0.3 s"):
            g._connect(tmp_path / "qmp.sock", timeout_s=0.3)
        assert time.monotonic() - t0 < 2
    finally:
        g.proc.kill()
        g._reaper.join(5)
    assert g.proc.stderr.closed
