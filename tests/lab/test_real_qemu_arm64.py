"""The arm64 lab on real QEMU (qemu-system-aarch64, TCG) with Debian's arm64 kernel: one kexec.

One 2-vCPU run, 43 s under TCG with a warm lab cache (107 s cold, the downloads and unpacking
included) on the 2-core host at load average 10 (2026-12-01): the guest
boots Debian's arm64 kernel, which takes its secondary CPU down through CPU
hotplug and PSCI, kexecs into itself, and the second kernel brings both CPUs up.
"""

import shutil
from pathlib import Path

import pytest

from haltlab.lab.arch import Arch
from haltlab.lab.classify import COMPLETED
from haltlab.lab.experiments import KexecConfig, run_kexec
from haltlab.lab.schema import KexecResult, conforms

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
