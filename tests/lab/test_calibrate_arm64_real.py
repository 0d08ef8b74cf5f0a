"""`lab calibrate --arch arm64 --runs 1 --dry-run` on real QEMU: the fit from fresh guests.

Boots two 2-vCPU arm64 guests with the cpuhp trace (one idle, one busy; about
25 s each under TCG with a warm lab cache on a quiet 2-core host,
2026-12-02), fits the kexec shutdown's per-phase costs, and checks that
the calibrated model reproduces each span of the real kernel's trace and
that nothing was written.
"""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli.root import cli
from haltlab.machine.profile import shipped_profiles_dir

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def lab_tools():
    missing = [t for t in ("qemu-system-aarch64", "busybox", "apt-get", "dpkg-deb", "readelf") if not shutil.which(t)]
    if missing:
        pytest.skip(f"arm64 lab tools missing: {', '.join(missing)} (bin/test installs them as root)")


def test_calibrate_arm64_dry_run_fits_the_real_trace():
    import json
    profile = shipped_profiles_dir() / "qemu-tcg-arm64.toml"
    before = profile.read_bytes()
    r = CliRunner().invoke(cli, ["lab", "calibrate", "--arch", "arm64", "--runs", "1", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["written"] is False and profile.read_bytes() == before
    assert out["lab_spans"]["samples"] == 1                      # one idle run, CPU 1
    assert out["busy_check"]["samples"] == 1                     # one busy run, checked only
    assert out["lab"][0]["kernel_release"].endswith("-arm64") and out["lab"][0]["accelerator"] == "tcg"
    assert 0 < out["lab_spans"]["trace_ns_per_char"] < 100_000  # the PL011 under TCG, microseconds at most
    for span, v in out["fit"].items():
        if span.endswith("_ns"):
            assert v["lab"] >= 0 and abs(v["model"] - v["lab"]) <= 1, span
    assert Path(out["path"]).name == "qemu-tcg-arm64.toml"
