"""Shared fixtures, kept tiny: the S1 machine profile, loaded once."""

import pytest

from haltlab.machine.profile import load_profile


@pytest.fixture(scope="session")
def kvm():
    """The kvm-x86 profile (HZ=250, KVM halt polling 200 us / grow 2 / start 10 us)."""
    return load_profile("kvm-x86")


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
