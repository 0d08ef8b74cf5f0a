"""The arm64 lab on real QEMU (qemu-system-aarch64, TCG) with Debian's arm64 kernel: one kexec.

One 2-vCPU run, 43 s under TCG with a warm lab cache (107 s cold, the downloads and unpacking
included) on the 2-core host at load average 10 (2026-12-01): the guest
boots Debian's arm64 kernel, which takes its secondary CPU down through CPU
hotplug and PSCI, kexecs into itself, and the second kernel brings both CPUs up.

And `lab calibrate --arch arm64 --runs 1 --dry-run`: two 2-vCPU guests with
the cpuhp trace (one idle, one busy; 141 s for the test with a warm cache at
load average 11, 2026-12-02), the kexec shutdown's per-phase costs fitted to
the real kernel's trace, and nothing written.
"""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli.root import cli
from haltlab.lab.arch import Arch
from haltlab.lab.classify import COMPLETED
from haltlab.lab.experiments import KexecConfig, run_kexec
from haltlab.lab.schema import KexecResult, conforms
from haltlab.machine.profile import shipped_profiles_dir

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def lab_tools():
    missing = [t for t in ("qemu-system-aarch64", "busybox", "apt-get", "dpkg-deb", "readelf") if not shutil.which(t)]
    if missing:
        pytest.skip(f"arm64 lab tools missing: {', '.join(missing)} (bin/test installs them as root)")


def test_arm64_kexec_takes_each_secondary_cpu_down_and_boots_again():
    r = run_kexec(KexecConfig(arch=Arch.ARM64, cpus=2, runs=1))
    assert conforms(r, KexecResult) == []
    (run,) = r["runs"]
    assert run["outcome"] == COMPLETED, run
    assert not Path(f"/proc/{run['qemu_pid']}").exists()
    assert r["kernel_release"].endswith("-arm64") and r["accelerator"] == "tcg" and r["arch"] == "arm64"
    # the old kernel: CPU 1 went down through PSCI, then machine_kexec() said Bye!
    assert run["killed_cpus"] == [1] and run["unclean_cpus"] == []
    assert len(run["psci_polled_ms"]) == 1 and run["psci_polled_ms"][0] % 4 == 0       # jiffies at HZ=250
    (per_cpu,) = run["per_cpu_shutdown_ns"]
    assert 0 < per_cpu < run["shutdown_ns"] < 10**9
    assert run["shutdown_ns"] == per_cpu + run["last_kill_to_bye_ns"]
    # the new kernel came up with both CPUs, and its init said so
    assert run["cpus_first"] == run["cpus_second"] == 2
    assert 0 < run["kexec_downtime_ns"] < run["kexec_to_second_init_ns"]
    assert r["runs_all_cpus_killed"] == 1 and r["per_cpu_shutdown_ns_all"] == [per_cpu]


def test_calibrate_arm64_dry_run_fits_the_real_trace():
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
            # the model recovers each span (one run is noisy: a span its trace outweighs is fitted as 0)
            assert abs(v["model"] - max(0, v["lab"])) <= 1, span
