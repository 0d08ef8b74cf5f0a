"""report.html in a real headless browser: Debian's chromium loads the file from
disk (file://, offline), the page's script draws the swimlanes, and a screenshot
of it is not blank. A second test drives the page through the DevTools
protocol (over --remote-debugging-pipe, no network port) to zoom, pan, reset and
hover as a person would.

bin/test installs chromium when run as root (haltlab_test_packages in
bin/_setup.sh). Not root and no chromium: skipped, saying so. Root and no
chromium: a failure, since bin/test would have installed it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from haltlab.report.lanes import STATE_COLOURS, lab_lanes, model_lanes
from haltlab.report.page import reproduce_html
from haltlab.report.reproduce import run_reproduce
from haltlab.report.swimlanes import absent_panel, panel
from haltlab.report.trace import trace_files
from haltlab.scenarios.panic import PanicConfig, simulate_panic

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--disable-extensions", "--mute-audio"]
TIMEOUT_S = 120
LAB_TIMELINE = {"cpus": [{"cpu": 0, "intervals": [[2_000_000, 8_000_000, "running"],
                                                   [8_000_000, 19_000_000, "irqs_off"],
                                                   [19_000_000, 40_000_000, "running"]]},
                         {"cpu": 1, "intervals": [[2_000_000, 12_000_000, "halted"],
                                                   [12_000_000, 12_500_000, "in_nmi"],
                                                   [12_500_000, 40_000_000, "irqs_off"]]}],
                "marks_ns": {"panic_entry": 8_000_000, "stop_failed": 12_000_000,
                             "panic_end": 19_000_000}}


def chromium() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and, not being root, this cannot install it: "
                    "run bin/test as root (it installs Debian's chromium)")
    pytest.fail("chromium is missing although this runs as root: bin/test installs it "
                "(haltlab_test_packages in bin/_setup.sh)")


def run_chromium(args: list[str], profile: Path) -> str:
    """Run chromium to completion in its own process group; kill the group if it hangs."""
    proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    return out


class Lanes(HTMLParser):
    """Counts, per drawn panel, its lanes, the state rects in each, and the marks."""

    def __init__(self) -> None:
        super().__init__()
        self.panels: dict[int, dict] = {}
        self.current: dict | None = None
        self.lane: list | None = None
        self.in_subset = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "").split()
        if tag == "div" and "panel" in cls and "data-panel" in a:
            self.current = self.panels.setdefault(int(a["data-panel"]), {
                "rendered": a.get("data-rendered"), "lanes": [], "marks": [], "subset": ""})
        elif self.current is None:
            return
        elif tag == "g" and "lane" in cls:
            self.lane = []
            self.current["lanes"].append((int(a["data-cpu"]), self.lane))
        elif tag == "rect" and "st" in cls and self.lane is not None:
            self.lane.append((a["data-state"], a["fill"]))
        elif tag == "line" and "mark" in cls:
            self.current["marks"].append(a["data-mark"])
        elif tag == "p" and "subset" in cls:
            self.in_subset = True

    def handle_data(self, data):
        if self.in_subset:
            self.current["subset"] += data

    def handle_endtag(self, tag):
        if tag == "p":
            self.in_subset = False


def drawn(dom: str) -> dict[int, dict]:
    parser = Lanes()
    parser.feed(dom)
    return parser.panels


def check_screenshot(path: Path, size: tuple[int, int], states: list[str]) -> None:
    image = Image.open(path).convert("RGB")
    assert image.size == size
    colours = dict((c, n) for n, c in image.getcolors(maxcolors=1 << 24))
    assert len(colours) > 50, "a blank page"
    for state in states:     # lanes of this state are on screen, in its own colour
        rgb = tuple(int(STATE_COLOURS[state][k:k + 2], 16) for k in (1, 3, 5))
        assert colours.get(rgb, 0) > 2000, (state, colours.get(rgb, 0))


def test_simulate_report_draws_its_lanes(tmp_path):
    trace = simulate_panic(PanicConfig(observe_ns=500_000_000))
    page = tmp_path / "report.html"
    page.write_text(trace_files(trace)["report.html"])
    dom = run_chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    (model,) = drawn(dom).values()
    assert model["rendered"] == "1"
    assert [cpu for cpu, _ in model["lanes"]] == list(range(8))
    for cpu, rects in model["lanes"]:
        assert rects, f"CPU{cpu} has no state drawn"
        assert all(STATE_COLOURS[state] == fill for state, fill in rects)
    lanes = model_lanes(trace)
    lo, hi = lanes.zoom_ns
    assert sorted(model["marks"]) == sorted(n for n, ns in lanes.marks_ns.items() if lo <= ns <= hi)
    shot = tmp_path / "report.png"
    run_chromium([f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri()],
                 tmp_path / "profile")
    check_screenshot(shot, (1400, 1000), ["running", "irqs_off", "halted"])


def test_reproduce_report_has_model_and_lab_side_by_side(tmp_path):
    """The reproduce page with a lab timeline (as the lab's sampler gives it)
    beside the model, a run with a lab that did not run, and 72 CPUs."""
    report, files = run_reproduce("skip")
    after = simulate_panic(PanicConfig(after_panic="safe_halt", observe_ns=1_000_000_000))
    big = simulate_panic(PanicConfig(profile="xeon-gold-6154", panic_cpu=40,
                                     observe_ns=100_000_000))
    sections = [
        ("with a lab run", "a.json", [panel("model", "model time", model_lanes(after)),
                                      panel("lab: kernel 6.1.0-56-amd64, tcg", "lab time",
                                            lab_lanes(LAB_TIMELINE))]),
        ("72 CPUs, no lab", "b.json", [panel("model", "model time", model_lanes(big)),
                                       absent_panel("lab", "no lab run (--lab skip)")]),
    ]
    images = [(n, files[n], n) for n in ("s1_host_cpu.png", "s1_timeline.png")]
    page = tmp_path / "report.html"
    page.write_text(reproduce_html(report, images, sections))
    panels = drawn(run_chromium(["--dump-dom", page.as_uri()], tmp_path / "profile"))
    assert sorted(panels) == [0, 1, 2]
    assert all(p["rendered"] == "1" for p in panels.values())
    lab = panels[1]
    assert [cpu for cpu, _ in lab["lanes"]] == [0, 1]
    assert {s for _cpu, rects in lab["lanes"] for s, _f in rects} == \
        {"running", "irqs_off", "halted", "in_nmi"}
    assert sorted(lab["marks"]) == ["panic_end", "panic_entry", "stop_failed"]
    assert [cpu for cpu, _ in panels[2]["lanes"]] == list(range(16)) + [40]
    assert "showing CPUs 0-15 and the panic CPU40 of 72" in panels[2]["subset"]
    shot = tmp_path / "report.png"
    run_chromium([f"--screenshot={shot}", "--window-size=1400,4800", page.as_uri()],
                 tmp_path / "profile")
    check_screenshot(shot, (1400, 4800), ["running", "irqs_off", "halted"])


class DevTools:
    """The DevTools protocol over --remote-debugging-pipe: JSON messages ending in
    NUL, read by chromium on its fd 3 and written on its fd 4 (bash puts our
    pipe ends there before exec'ing it)."""

    def __init__(self, profile: Path) -> None:
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        shell = f'exec 3<&{to_child} 4>&{from_child} {to_child}<&- {from_child}>&-; exec "$@"'
        self.proc = subprocess.Popen(
            ["bash", "-c", shell, "bash", chromium(), *FLAGS, f"--user-data-dir={profile}",
             "--window-size=1400,1000", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_child, from_child), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id, self.session = b"", 0, None

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        os.close(self._w)
        os.close(self._r)

    def call(self, method: str, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            while b"\0" not in self._buf:
                left = deadline - time.monotonic()
                assert left > 0 and select.select([self._r], [], [], left)[0], f"{method}: no answer"
                chunk = os.read(self._r, 1 << 16)
                assert chunk, "chromium closed the pipe"
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"],
                                 flatten=True)["sessionId"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def until(self, expression: str, timeout_s: float = 20):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"never true: {expression}")

    def mouse(self, kind: str, x: float, y: float, **extra) -> None:
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.mouse(kind, x, y, button="left", clickCount=1)


VIEW = "document.querySelector('.panel[data-panel=\"0\"]').getAttribute('data-view')"


def _view(dt: DevTools) -> tuple[int, int]:
    a, b = dt.js(VIEW).split()
    return int(a), int(b)


def _changed(dt: DevTools, old: tuple[int, int]) -> tuple[int, int]:
    dt.until(f"{VIEW} !== '{old[0]} {old[1]}'")
    return _view(dt)


def _centre(dt: DevTools, selector: str) -> tuple[float, float]:
    r = dt.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
              ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    return r[0], r[1]


def test_zoom_pan_reset_and_hover_work_in_the_browser(tmp_path):
    trace = simulate_panic(PanicConfig(observe_ns=500_000_000))
    lanes = model_lanes(trace)
    page = tmp_path / "report.html"
    page.write_text(trace_files(trace)["report.html"])
    dt = DevTools(tmp_path / "profile")
    try:
        dt.open(page.as_uri())
        dt.until("document.querySelector('.panel[data-rendered]') !== null")
        dt.js("document.querySelector('.panel[data-panel=\"0\"]').scrollIntoView()")
        home = _view(dt)
        assert home == lanes.zoom_ns
        # the buttons: zoom in halves the span around the middle
        dt.click(*_centre(dt, ".panel[data-panel='0'] .toolbar button:nth-of-type(1)"))
        zin = _changed(dt, home)
        assert abs((zin[1] - zin[0]) * 2 - (home[1] - home[0])) <= 2
        # the wheel over the lanes zooms in further
        x, y = _centre(dt, ".panel[data-panel='0'] g.lane[data-cpu='3'] rect.bg")
        dt.mouse("mouseWheel", x, y, deltaX=0, deltaY=-400)
        wheel = _changed(dt, zin)
        assert wheel[1] - wheel[0] < zin[1] - zin[0]
        # dragging left moves the view later in time, same span
        dt.mouse("mousePressed", x, y, button="left", clickCount=1)
        dt.mouse("mouseMoved", x - 300, y, button="left")
        dt.mouse("mouseReleased", x - 300, y, button="left", clickCount=1)
        dragged = _changed(dt, wheel)
        assert dragged[0] > wheel[0]
        assert abs((dragged[1] - dragged[0]) - (wheel[1] - wheel[0])) <= 2
        # "whole run", then "reset" back to the panic
        dt.click(*_centre(dt, ".panel[data-panel='0'] .toolbar button:nth-of-type(3)"))
        assert _changed(dt, dragged) == (lanes.start_ns, lanes.end_ns)
        dt.click(*_centre(dt, ".panel[data-panel='0'] .toolbar button:nth-of-type(4)"))
        assert _changed(dt, (lanes.start_ns, lanes.end_ns)) == home
        # hover on the panic CPU between panic() entry and the stop: irqs_off
        t = (lanes.marks_ns["panic_entry"] + lanes.marks_ns["others_stopped"]) // 2
        bx = dt.js("document.querySelector(\".panel[data-panel='0'] g.lane[data-cpu='0'] "
                   "rect.bg\").getBoundingClientRect().toJSON()")
        hx = bx["x"] + (t - home[0]) / (home[1] - home[0]) * bx["width"]
        dt.mouse("mouseMoved", hx, bx["y"] + bx["height"] / 2)
        tip = dt.until("(() => { const t = document.querySelector('.panel .tip'); "
                       "return t.style.display === 'block' && t.textContent; })()")
        start, end, state = next(iv for iv in lanes.cpus[0] if iv[0] <= t < iv[1])
        assert tip.splitlines()[0] == f"CPU0 (panic): {state}" == "CPU0 (panic): irqs_off"
        assert f"start {start / 1e6:.6f} ms" in tip and "duration " in tip
    finally:
        dt.close()
