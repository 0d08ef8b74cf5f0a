"""Where profiles come from (issue 6 #22): package data, then $HALTLAB_PROFILES
first; a profile calibrate cannot rewrite is refused before any measuring."""

import os
import subprocess
from importlib import resources
from pathlib import Path

import pytest

import haltlab.machine.profile as profile_mod
from haltlab.errors import UserError
from haltlab.machine.profile import check_profile_writable, load_profile, shipped_profiles_dir


def test_the_shipped_profiles_are_package_data():
    shipped = {p.name for p in (resources.files("haltlab") / "profiles").iterdir()}
    assert {"kvm-x86.toml", "qemu-tcg-x86.toml", "xeon-gold-6154.toml", "arm64-server-24.toml"} <= shipped
    assert shipped_profiles_dir() == Path(profile_mod.__file__).resolve().parents[1] / "profiles"


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only file system (root passes every permission check, so a
    chmod would not do): a tmpfs, filled, then remounted read-only."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount(2) for a read-only tmpfs")
    try:
        (path / "qemu-tcg-x86.toml").write_bytes(
            (shipped_profiles_dir() / "qemu-tcg-x86.toml").read_bytes())
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_profile_on_a_read_only_file_system_is_refused_up_front(read_only_dir, monkeypatch):
    monkeypatch.setenv("HALTLAB_PROFILES", str(read_only_dir))
    profile = load_profile("qemu-tcg-x86")
    assert Path(profile.path).parent == read_only_dir
    with pytest.raises(UserError, match=r"cannot write the calibrated profile here "
                                        r"\(Read-only file system\)$"):
        check_profile_writable(profile)


def test_a_read_only_shipped_profile_names_haltlab_profiles(read_only_dir, monkeypatch):
    """An install in a read-only site-packages: the hint says how to calibrate a copy."""
    monkeypatch.setattr(profile_mod, "shipped_profiles_dir", lambda: read_only_dir)
    monkeypatch.delenv("HALTLAB_PROFILES", raising=False)
    with pytest.raises(UserError, match="set HALTLAB_PROFILES to that directory, and calibrate the copy"):
        check_profile_writable(load_profile("qemu-tcg-x86"))


def test_a_writable_profile_passes_and_is_left_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setenv("HALTLAB_PROFILES", str(tmp_path))
    (tmp_path / "qemu-tcg-x86.toml").write_bytes((shipped_profiles_dir() / "qemu-tcg-x86.toml").read_bytes())
    assert check_profile_writable(load_profile("qemu-tcg-x86")).parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == ["qemu-tcg-x86.toml"]
