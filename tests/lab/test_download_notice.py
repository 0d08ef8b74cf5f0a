"""A kernel download is announced, with its size, before it starts (issue 6
#25): it is the one lab step that can take minutes before anything boots, and
`2> log` must show it. No network here: apt's answers and the download are
replaced at the lab's own boundary (`_apt_show`, `_run`)."""

import logging

import pytest
from click.testing import CliRunner

from haltlab.errors import UserError
from haltlab.lab import images

SHOW = """Package: linux-image-6.1.0-57-amd64
Source: linux-signed-amd64 (6.1.192+3)
Version: 6.1.192-3
Installed-Size: 407418
Size: 70591024
"""


def test_parse_size_reads_the_records_size():
    assert images.parse_size(SHOW) == 70_591_024
    assert images.parse_size("Package: x\nVersion: 1\n") is None


def _fake_apt(monkeypatch, calls):
    monkeypatch.setattr(images, "_apt_show", lambda spec: SHOW)

    def run(cmd, cwd):
        calls.append(cmd)
        raise UserError("download stopped here by the test")
    monkeypatch.setattr(images, "_run", run)


def test_the_download_is_announced_with_its_size_before_it_runs(tmp_path, monkeypatch, caplog):
    calls = []
    _fake_apt(monkeypatch, calls)
    with caplog.at_level(logging.INFO, logger="haltlab.lab"), pytest.raises(UserError):
        images.fetch_debian_kernel("linux-image-6.1.0-57-amd64", "6.1.192-3", cache=tmp_path)
    assert calls and calls[0][:2] == ["apt-get", "download"]
    (notice,) = [r.getMessage() for r in caplog.records]
    assert "linux-image-6.1.0-57-amd64=6.1.192-3 (67.3 MiB)" in notice
    assert str(tmp_path / "kernels") in notice


def test_a_cached_kernel_is_not_announced(tmp_path, monkeypatch, caplog):
    root = tmp_path / "kernels" / "linux-image-6.1.0-57-amd64_6.1.192-3"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1.0-57-amd64").write_bytes(b"x")
    (root / "lib/modules/6.1.0-57-amd64").mkdir(parents=True)
    calls = []
    _fake_apt(monkeypatch, calls)
    with caplog.at_level(logging.INFO, logger="haltlab.lab"):
        k = images.fetch_debian_kernel("linux-image-6.1.0-57-amd64", "6.1.192-3", cache=tmp_path)
    assert k.release == "6.1.0-57-amd64" and calls == [] and caplog.records == []


def test_the_cli_shows_the_notice_as_a_haltlab_line_on_stderr(monkeypatch):
    import haltlab.cli  # noqa: F401  (installs the stderr handler)
    from haltlab.cli.root import cli

    @cli.command("notice-probe", hidden=True)
    def probe():
        images.log.info("downloading kernel package p=v (1.0 MiB) into /c")

    try:
        result = CliRunner().invoke(cli, ["notice-probe"])
    finally:
        cli.commands.pop("notice-probe")
    assert result.exit_code == 0
    assert result.stderr == "haltlab: downloading kernel package p=v (1.0 MiB) into /c\n"


def test_offline_a_meta_package_pin_takes_the_cached_kernel(tmp_path):
    """Unpacks are named after the versioned package; a pin on the meta package
    (`linux-image-amd64`) must still find one, as no pin does."""
    root = tmp_path / "kernels" / "linux-image-6.1.0-57-amd64_6.1.192-3"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1.0-57-amd64").write_bytes(b"x")
    (root / "lib/modules/6.1.0-57-amd64").mkdir(parents=True)
    for spec in (None, "linux-image-amd64", "linux-image-6.1.0-57-amd64"):
        (k,) = images.cached_kernels(tmp_path, spec)
        assert k.release == "6.1.0-57-amd64", spec
    assert images.cached_kernels(tmp_path, "linux-image-6.1.0-50-amd64") == []
