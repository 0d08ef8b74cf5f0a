"""The kernel build of tests/lab/test_build_real.py, overlapped with the suite.

A cold build of the s1-safe-halt kernel takes minutes on a 2-core machine
(README: "What a build costs"); the whole suite must stay under 15 minutes on a
cold machine. So when the build test is selected, the build starts as a child
process (`haltlab lab build s1-safe-halt`, niced by lab/build.py) as soon as
collection ends, and the build test is moved to the end of the run: it waits
for the child, which by then has had the rest of the suite to build in. On a
machine that built it before, the child finds the kernel in the lab cache and
exits in about a second. The child dies with pytest (lab/lifetime.py) and is
reaped at the end of the session. Spread over cores by pytest-xdist, the build
starts with the first lab test of the one worker that runs them all.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from haltlab.lab import lifetime
from haltlab.lab.cache import cache_dir

BUILD_TEST = "test_build_real.py"
BUILD_SET = "s1-safe-halt"
_background: dict = {}


def _is_build_test(item) -> bool:
    return Path(str(item.fspath)).name == BUILD_TEST


def pytest_collection_modifyitems(session, config, items):
    """The build test last (items are reordered in place, the others keep their order)."""
    mine = [i for i in items if _is_build_test(i)]
    if mine:
        items[:] = [i for i in items if not _is_build_test(i)] + mine


def pytest_collection_finish(session):
    """Start the build once collection ends, except on a pytest-xdist worker:
    every worker collects every test, but only the one that runs the lab's
    tests (tests/conftest.py puts them all on one) may build, so there the
    build starts with that worker's first lab test."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _background["wanted"] = any(_is_build_test(i) for i in session.items)
        return
    if any(_is_build_test(i) for i in session.items) and not session.config.option.collectonly:
        start_background_build()


def pytest_runtest_setup(item):
    if _background.get("wanted") and item.get_closest_marker("lab") is not None:
        start_background_build()


def start_background_build() -> None:
    if "proc" in _background:
        return
    log = cache_dir() / "builds" / f"{BUILD_SET}.test-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("w")
    _background.update(log=log, out=out, proc=lifetime.spawn(
        [sys.executable, "-m", "haltlab", "lab", "build", BUILD_SET, "--json"],
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT))


def wait_background_build(timeout_s: float) -> tuple[int, str]:
    """(exit status, the child's output) of the background build, once it ends."""
    start_background_build()
    proc = _background["proc"]
    proc.wait(timeout=timeout_s)
    _background["out"].flush()
    return proc.returncode, _background["log"].read_text()


@pytest.fixture(scope="session")
def background_build():
    """wait(timeout_s) -> (exit status, output) of the background build of BUILD_SET."""
    return wait_background_build


def pytest_sessionfinish(session, exitstatus):
    proc = _background.get("proc")
    if proc is not None and proc.poll() is None:
        proc.terminate()            # lab/build.py kills make's process group on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if "out" in _background:
        _background["out"].close()
