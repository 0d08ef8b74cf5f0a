"""Issue 6 #3: a HALTLAB_CACHE the lab cannot write is one line naming it, before
anything downloads or boots (no QEMU is started here: the check comes first)."""

import os

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.errors import UserError
from haltlab.lab import initramfs
from haltlab.lab.cache import check_cache


def _one_line(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("haltlab: error: HALTLAB_CACHE ") and needle in result.stderr
    assert "Traceback" not in result.output


def _lab_panic(cache) -> object:
    return CliRunner().invoke(cli, ["lab", "panic"], env={"HALTLAB_CACHE": str(cache)})


def test_a_cache_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    _one_line(_lab_panic(tmp_path / "f"), f"{tmp_path / 'f'}: exists and is not a directory")


def test_a_cache_under_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    _one_line(_lab_panic(tmp_path / "f" / "c"), f"{tmp_path / 'f' / 'c'}: cannot write (Not a directory)")


def test_a_cache_under_proc():
    _one_line(_lab_panic("/proc/haltlab-cache"), "/proc/haltlab-cache: cannot write")


def test_a_read_only_cache(tmpfs):
    ro = tmpfs("ro", ro=True)
    _one_line(_lab_panic(ro), f"{ro}: cannot write (Read-only file system)")
    _one_line(_lab_panic(ro / "sub"), f"{ro / 'sub'}: cannot write (Read-only file system)")


def test_a_cache_that_fills_up_while_building(tmpfs, monkeypatch):
    # The check passes (a probe needs no data blocks); the image then does not fit.
    small = tmpfs("small", size_kib=16)
    monkeypatch.setenv("HALTLAB_CACHE", str(small))
    assert check_cache() == small
    entries = [initramfs.file("/big", os.urandom(64 * 1024))]   # random: gzip cannot shrink it
    with pytest.raises(UserError, match=rf"^HALTLAB_CACHE {small}: cannot write \(No space left on device\)"):
        initramfs.build(entries, small)
    assert list(small.rglob("*.cpio.gz*")) == []   # no partial image left behind
