"""Shared fixtures, kept tiny: the S1 machine profile, loaded once; S2's
reproduce campaigns at a few runs each. And where each test runs when the suite
is spread over the cores (bin/test: `-n auto --dist loadgroup`)."""

import os

import pytest

from haltlab.machine.profile import load_profile


def pytest_configure(config):
    """A pytest-xdist worker starts with COLUMNS=80 in its environment; the
    commands' tables are pinned at the width they get on a pipe without it (120,
    cli/console.py), as in a run without workers."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.pop("COLUMNS", None)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist every `lab` test runs on one worker, one after the
    other, as they did before the suite was spread: they share the lab's cache
    (a first run fills it: kernel packages, initramfs, userland), the kernel
    build that tests/lab/conftest.py starts in the background, and the host's
    cores, which two TCG guests at once would split (a guest's timeouts are
    set for one). Everything else is spread over the workers."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("lab") is not None:
            item.add_marker(pytest.mark.xdist_group("lab"))


@pytest.fixture(scope="session")
def kvm():
    """The kvm-x86 profile (HZ=250, KVM halt polling 200 us / grow 2 / start 10 us)."""
    return load_profile("kvm-x86")


@pytest.fixture(scope="session", autouse=True)
def small_s2_campaigns():
    """`reproduce`'s S2 rows at 8 runs a campaign, not 200 + 3 x 100: the
    tests that run `reproduce` check its rows' shape and bytes, not the hang
    rate, and would otherwise each pay the whole campaign (about 10-40 s;
    benchmarks/README.md times the real one). tests/validation/
    test_s2_figures.py checks what the rows say against campaigns run beside."""
    import haltlab.validation.figures  # noqa: F401  (first: it imports s2_figures at its end)
    from haltlab.validation import s2_figures
    with pytest.MonkeyPatch.context() as mp:        # session-wide, so module fixtures see it too
        mp.setattr(s2_figures, "S2_RUNS", 8)
        mp.setattr(s2_figures, "S2_SENSITIVITY_RUNS", 8)
        yield


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size_kib=64, ro=False, files={}) -> a fresh tmpfs under tmp_path,
    holding `files` (name -> bytes); `mount.readonly(path)` remounts it read-only.

    A real read-only or full file system, for tests of what a failed write does:
    permission bits cannot make one (root passes every access() check). Needs
    root and CAP_SYS_ADMIN; the test is skipped without them. Unmounted after.
    """
    import os
    import subprocess

    mounted = []

    def readonly(path):
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)

    def mount(name: str = "mnt", size_kib: int = 64, ro: bool = False, files: dict | None = None):
        path = tmp_path / name
        path.mkdir()
        opts = f"size={size_kib}k,mode=0755"
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                                               capture_output=True).returncode != 0:
            pytest.skip("needs root and mount(2) for a real tmpfs")
        mounted.append(path)
        for file, data in (files or {}).items():
            (path / file).write_bytes(data)
        if ro:
            readonly(path)
        return path

    mount.readonly = readonly
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
