"""Issue 9: S1's build cases in validate: the model side comes from the patch set
(its model_kernel, and after_panic from its model_policy), the lab side from
`lab panic --build NAME` (stood in for here by recorded-shape results; the real
boot is tests/lab/test_build_real.py), and every row names the build."""

import pytest

from haltlab.lab.images import KernelImage
from haltlab.validation import s1_lab
from haltlab.validation import validate as validate_mod
from haltlab.validation.s1_lab import S1_BUILD_CASES, model_policies, s1_build_rows, s1_model_facts

BUILD = {"patch_set": "x", "source_package": "linux-source-6.1", "source_version": "6.1.192-3",
         "config_sha256": "eec74291e2d6" + "0" * 52}

def test_the_sets_say_which_model_they_are():
    assert model_policies("s1-safe-halt") == {"after_panic": "safe_halt"}
    assert model_policies("stock") == {}

def test_the_model_side_follows_the_patch_set():
    """The stock mdelay() loop spins one vCPU; S1's safe_halt() leaves it halted."""
    stock, setup = s1_model_facts(S1_BUILD_CASES[2], "qemu-tcg-x86", 3_000_000_000)
    assert "after_panic mdelay" in setup and "debian-6.1.0-56" in setup
    assert stock["vcpu_demand_s_per_s"] == pytest.approx(1.0, abs=0.01)
    patched, setup = s1_model_facts(S1_BUILD_CASES[0], "qemu-tcg-x86", 3_000_000_000)
    assert "after_panic safe_halt" in setup
    assert patched["vcpu_demand_s_per_s"] < 0.01 and patched["host_cpu_s_per_s"] < 0.01

@pytest.fixture
def recorded_build_lab(monkeypatch, tmp_path):
    booted = []

    def build(name):
        return KernelImage(tmp_path / name, None, "6.1.192", f"build:{name}@0", "linux-source-6.1", "6.1.192-3",
                           None, {**BUILD, "patch_set": name})

    def run_panic(config, progress=None, *, kernel=None):
        booted.append((config.build, config.cpus, config.accel, kernel.source))
        cpu = 0.31 if config.build == "stock" else 0.0
        stats = {"median": cpu, "min": cpu, "max": cpu, "n": config.runs}
        return {"host_cpu_s_per_s_stats": stats, "vcpu_demand_s_per_s": {**stats, "median": 1.0 if cpu else 0.0},
                "outcomes": {"panicked-and-finished": config.runs}, "kernel_build": kernel.build,
                "kernel_release": kernel.release, "kernel_package": kernel.package,
                "kernel_package_version": kernel.package_version, "kernel_source": kernel.source,
                "qemu_version": "7.2.22", "accelerator": "tcg"}

    monkeypatch.setattr(s1_lab, "build_and_resolve", build)
    monkeypatch.setattr(s1_lab, "lab_panic", run_panic)
    s1_lab.reset()
    yield booted
    s1_lab.reset()

def test_a_build_case_boots_its_build_and_names_it(recorded_build_lab):
    rows, meta = s1_build_rows(S1_BUILD_CASES[2], 2, None, profile="qemu-tcg-x86", window_ns=3_000_000_000)
    assert recorded_build_lab == [("stock", 2, "tcg", "build:stock@0")]
    assert [r["quantity"] for r in rows] == ["host_cpu_s_per_s", "vcpu_demand_s_per_s"]
    cpu, demand = rows
    assert cpu["build"] == "stock (linux-source-6.1 6.1.192-3, config eec74291e2d6)"
    assert cpu["lab_median"] == 0.31 and cpu["model"] == pytest.approx(1.0, abs=0.01)
    assert demand["lab_median"] == 1.0 and demand["relative_error"] == pytest.approx(0.0, abs=0.01)
    assert meta["kernel_source"] == "build:stock@0"

def test_validate_of_only_build_cases_resolves_no_debian_kernel(recorded_build_lab, monkeypatch):
    def no_apt(*a, **kw):
        raise AssertionError("a command of only build cases asked apt for a kernel")

    monkeypatch.setattr(validate_mod, "resolve_lab_kernel", no_apt)
    result = validate_mod.validate(S1_BUILD_CASES[:2], runs=1)
    assert [b for b, *_ in recorded_build_lab] == ["s1-safe-halt", "s1-safe-halt"]
    assert {r["case"] for r in result["rows"]} == {"s1-halt-cpus2", "s1-halt-cpus4"}
    assert result["lab"]["kernel_source"] == "build:s1-safe-halt@0"
    assert result["preset_matches_kernel"] is None
    assert all(r["model"] < 0.01 and r["lab_median"] == 0.0 for r in result["rows"])
