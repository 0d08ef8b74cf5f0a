"""`--trace DIR` and `reproduce --out DIR` hold one complete set of files: after
a write that fails midway, exactly the old set (issue 6 #19)."""

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import haltlab.report._files as files_mod
from haltlab.cli import cli
from haltlab.report._files import MANIFEST, write_files


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def fail_on_the_nth_write(monkeypatch, n: int):
    real, count = files_mod._write, [0]

    def flaky(path, data):
        count[0] += 1
        if count[0] == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(files_mod, "_write", flaky)
    return count


def simulate(out: Path, seed: int):
    return CliRunner().invoke(cli, ["simulate", "panic", "--json", "--observe", "0.2",
                                    "--seed", str(seed), "--others", "busy", "--trace", str(out)])


def no_temporaries(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_trace_write_failing_midway_leaves_the_old_set(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(files_mod, "_exchange", lambda a, b: False)
    out = tmp_path / "trace"
    first = simulate(out, seed=1)
    assert first.exit_code == 0, first.output
    old = snapshot(out)
    assert set(old[MANIFEST].decode().splitlines()) == set(old) - {MANIFEST}
    fail_on_the_nth_write(monkeypatch, 3)
    second = simulate(out, seed=2)
    assert second.exit_code == 2
    assert second.stderr.splitlines() == [f"haltlab: error: --trace {out}: cannot write "
                                          "(No space left on device)"]
    assert snapshot(out) == old                     # the whole old set, nothing of the new
    assert no_temporaries(tmp_path)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_second_complete_write_replaces_the_whole_set(tmp_path, monkeypatch, exchange):
    swaps = []
    real = files_mod._exchange
    monkeypatch.setattr(files_mod, "_exchange",
                        lambda a, b: swaps.append(exchange and real(a, b)) or swaps[-1])
    out = tmp_path / "set"
    write_files(out, {"a.txt": "old a", "gone.txt": "only in the old set"})
    write_files(out, {"a.txt": "new a", "b.bin": b"\x00new"})
    if exchange and hasattr(files_mod._libc(), "renameat2"):
        assert swaps == [True]                      # one atomic RENAME_EXCHANGE, here on tmp_path's fs
    assert snapshot(out) == {"a.txt": b"new a", "b.bin": b"\x00new", MANIFEST: b"a.txt\nb.bin\n"}
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    assert no_temporaries(tmp_path)


def test_a_reproduce_write_failing_midway_leaves_the_old_set(tmp_path, monkeypatch):
    """The same for `reproduce --out`; its work is stubbed (the write is the point)."""
    import haltlab.report.reproduce as rp
    rendered = iter([{"reproduce.json": "{}\n", "reproduce.md": "# one\n", "s1_host_cpu.png": b"1",
                      "s1_timeline.png": b"1"},
                     {"reproduce.json": "{}\n", "reproduce.md": "# two\n", "s1_host_cpu.png": b"2",
                      "s1_timeline.png": b"2"}])
    report = {"rows": [], "files": list(rp.FILES), "haltlab_version": "0", "profiles": []}
    monkeypatch.setattr(rp, "run_reproduce", lambda mode, step, **kw: (report, next(rendered)))
    out = tmp_path / "reproduce"
    assert CliRunner().invoke(cli, ["reproduce", "--json", "--out", str(out)]).exit_code == 0
    old = snapshot(out)
    fail_on_the_nth_write(monkeypatch, 2)
    second = CliRunner().invoke(cli, ["reproduce", "--json", "--out", str(out)])
    assert second.exit_code == 2 and "No space left on device" in second.stderr
    assert snapshot(out) == old and old["reproduce.md"] == b"# one\n"
    assert no_temporaries(tmp_path)


def test_a_directory_with_the_users_own_files_is_refused_before_the_work(tmp_path, monkeypatch):
    import haltlab.scenarios.panic

    def no_work(*_a, **_k):
        raise AssertionError("the run started")

    monkeypatch.setattr(haltlab.scenarios.panic, "simulate_panic", no_work)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (mine / MANIFEST).write_text("dmesg.txt\n")     # even with a manifest, notes.txt is not in it
    result = CliRunner().invoke(cli, ["simulate", "panic", "--trace", str(mine)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"haltlab: error: --trace {mine}: holds files that are not a haltlab set (notes.txt); "
        "it would be replaced whole: give a new or empty directory"]
    assert (mine / "notes.txt").read_text() == "keep me"


def test_the_current_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in (".", str(tmp_path.parent)):
        result = CliRunner().invoke(cli, ["simulate", "panic", "--trace", path])
        assert result.exit_code == 2
        assert "is the current directory or holds it" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_legacy_set_without_a_manifest_is_replaced(tmp_path):
    """A trace directory written before manifests: every file is one of the set's."""
    out = tmp_path / "trace"
    out.mkdir()
    (out / "dmesg.txt").write_text("old")
    result = simulate(out, seed=0)
    assert result.exit_code == 0, result.output
    assert (out / "dmesg.txt").read_text() != "old" and (out / MANIFEST).is_file()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_interrupt_between_the_two_renames_puts_the_old_set_back(tmp_path, monkeypatch):
    """Without renameat2 the swap is two renames; ^C (or SIGTERM, or an error)
    after the first must leave the old set at DIR, not only at .DIR.old-*."""
    out = tmp_path / "trace"
    files_mod.write_files(out, {"a.txt": "old a\n", "b.txt": "old b\n"})
    monkeypatch.setattr(files_mod, "_exchange", lambda a, b: False)
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 3:                 # (1: onto a non-empty DIR, refused; 2: old set aside)
            raise KeyboardInterrupt         # 3: the new set onto DIR, interrupted
            raise KeyboardInterrupt
        return real_rename(src, dst)
    monkeypatch.setattr(files_mod.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        files_mod.write_files(out, {"a.txt": "new a\n", "b.txt": "new b\n"})
    monkeypatch.setattr(files_mod.os, "rename", real_rename)
    assert (out / "a.txt").read_text() == "old a\n" and (out / "b.txt").read_text() == "old b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trace"]     # no .trace.old-* or .tmp-* left


def test_a_mount_point_is_refused_before_the_work(tmpfs, monkeypatch):
    """The set is written beside DIR and renamed onto it: onto a mount point that
    fails (EBUSY) after the run, so it is refused up front."""
    mnt = tmpfs("trace")
    monkeypatch.setattr("haltlab.scenarios.panic.simulate_panic",
                        lambda *a, **k: pytest.fail("the run started"))
    result = CliRunner().invoke(cli, ["simulate", "panic", "--trace", str(mnt)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("haltlab: error: --trace ") and "mount point" in result.stderr
