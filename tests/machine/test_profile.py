"""Machine profiles: the shipped files load, and bad files fail in one line."""

import json

import pytest

from haltlab.errors import UserError
from haltlab.machine.profile import (
    Param,
    list_profiles,
    load_profile,
    profiles_dir,
    write_profile,
)

SHIPPED = ["arm64-server-24", "kvm-x86", "qemu-tcg-arm64", "qemu-tcg-x86", "xeon-gold-6154"]

GUEST = """\
[profile]
name = "t"
description = "test machine"
arch = "x86_64"
kind = "guest"

[machine]
cpus = { value = 4, source = "test" }
hz = { value = 250, source = "test" }
cpu_clock_hz = { value = "2.6 GHz", source = "test" }

[costs]
atomic_op_ns = { value = "40 ns", source = "test" }
cpu_relax_ns = { value = 54, source = "test" }
ipi_latency_ns = { value = "2 us", source = "test" }
nmi_latency_ns = { value = "1.5 µs", source = "test" }
irq_entry_exit_ns = { value = "1 us", source = "test" }
tick_handler_ns = { value = "3 us", source = "test" }
printk_store_ns = { value = "1 us", source = "test" }
console_ns_per_char = { value = "86806 ns", source = "test" }
stop_this_cpu_ns = { value = "0.005 ms", source = "test" }

[kernel]
panic_console_lines = { value = 41, source = "test" }
panic_console_chars = { value = 2424, source = "test" }

[hypervisor]
vm_exit_roundtrip_ns = { value = "1 us", source = "test" }
halt_wakeup_ns = { value = "5 us", source = "test" }
halt_poll_ns = { value = "200 us", source = "test" }
halt_poll_ns_grow = { value = 2, source = "test" }
halt_poll_ns_grow_start = { value = "10 us", source = "test" }
halt_poll_ns_shrink = { value = 0, source = "test" }
vmm_background_cpu_s_per_s = { value = "0.1 %", source = "test" }
perf_freq_hz = { value = "4 kHz", source = "test" }
host_cpu_hz = { value = "2600 MHz", source = "test" }
"""


def write(tmp_path, text, name="x.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path):
    with pytest.raises(UserError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert "x.toml" in message
    return message


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_and_cites_every_number(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.params
    for key, param in profile.params.items():
        assert param.source.strip(), key
    json.dumps(profile.to_dict())


def test_shipped_profiles_are_listed():
    assert set(SHIPPED) <= set(list_profiles())
    assert (profiles_dir() / "kvm-x86.toml").is_file()


def test_kvm_x86_carries_the_kvm_defaults():
    profile = load_profile("kvm-x86")
    assert profile.is_guest and profile.arch == "x86_64"
    assert profile.cost_ns("halt_poll_ns") == 200_000
    assert profile.cost_ns("halt_poll_ns_grow_start") == 10_000
    assert profile.get("halt_poll_ns_grow") == 2.0
    assert profile.get("perf_freq_hz") == 4000
    assert profile.get("cpus") >= 6  # S1 shows "CPU 5/KVM"


def test_bare_metal_profiles_have_no_hypervisor_keys():
    for name in ("xeon-gold-6154", "arm64-server-24"):
        profile = load_profile(name)
        assert not profile.is_guest
        assert "halt_poll_ns" not in profile.params
    assert load_profile("xeon-gold-6154").get("cpus") == 72
    assert load_profile("arm64-server-24").arch == "arm64"


def test_unit_strings_convert(tmp_path):
    profile = load_profile(str(write(tmp_path, GUEST)))
    assert profile.cost_ns("ipi_latency_ns") == 2000
    assert profile.cost_ns("nmi_latency_ns") == 1500
    assert profile.cost_ns("stop_this_cpu_ns") == 5000
    assert profile.get("cpu_clock_hz") == 2_600_000_000
    assert profile.get("perf_freq_hz") == 4000
    assert profile.get("vmm_background_cpu_s_per_s") == pytest.approx(0.001)
    assert isinstance(profile.get("halt_poll_ns_shrink"), float)
    assert profile.params["cpu_relax_ns"] == Param(54, "test", "ns")
    assert profile.params["cpus"].unit == "cpus"


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    text = GUEST.replace("ipi_latency_ns =", "ipi_latency_us =")
    message = error_of(write(tmp_path, text))
    assert "[costs] ipi_latency_us" in message
    assert "did you mean ipi_latency_ns?" in message


def test_unknown_section(tmp_path):
    message = error_of(write(tmp_path, GUEST + "\n[cost]\nx = 1\n"))
    assert "[cost]" in message and "did you mean costs?" in message


def test_key_in_wrong_section(tmp_path):
    text = GUEST.replace('hz = { value = 250, source = "test" }\n', "")
    text = text.replace("[costs]\n", '[costs]\nhz = { value = 250, source = "test" }\n')
    assert "belongs in [machine]" in error_of(write(tmp_path, text))


def test_missing_key(tmp_path):
    text = GUEST.replace('tick_handler_ns = { value = "3 us", source = "test" }\n', "")
    message = error_of(write(tmp_path, text))
    assert "tick_handler_ns" in message and "missing" in message


def test_negative_value(tmp_path):
    text = GUEST.replace('value = 54,', 'value = -54,')
    message = error_of(write(tmp_path, text))
    assert "cpu_relax_ns" in message and "-54" in message and "negative" in message


def test_negative_value_string(tmp_path):
    text = GUEST.replace('value = "40 ns"', 'value = "-40 ns"')
    assert "negative" in error_of(write(tmp_path, text))


def test_wrong_unit(tmp_path):
    text = GUEST.replace('value = "2 us"', 'value = "3 GHz"')
    message = error_of(write(tmp_path, text))
    assert "ipi_latency_ns" in message and "'3 GHz'" in message and "wrong unit" in message


def test_zero_cpus_and_zero_hz(tmp_path):
    message = error_of(write(tmp_path, GUEST.replace("value = 4,", "value = 0,")))
    assert "cpus" in message and "greater than zero" in message
    message = error_of(write(tmp_path, GUEST.replace("value = 250,", "value = 0,")))
    assert "hz" in message and "greater than zero" in message


def test_hz_that_rounds_to_zero_or_ticks_under_a_nanosecond(tmp_path):
    message = error_of(write(tmp_path, GUEST.replace("value = 250,", 'value = "0.4 Hz",')))
    assert "hz = '0.4 Hz'" in message and "greater than zero" in message
    message = error_of(write(tmp_path, GUEST.replace("value = 250,", 'value = "2 GHz",')))
    assert "hz = '2 GHz'" in message and "under 1 ns" in message
    assert load_profile(str(write(tmp_path, GUEST.replace("value = 250,", 'value = "1 GHz",')))).get("hz") == 10**9


def test_a_directory_is_not_a_profile(tmp_path):
    (tmp_path / "x.toml").mkdir()
    assert "cannot read: Is a directory" in error_of(tmp_path / "x.toml")


def test_non_numeric_value(tmp_path):
    message = error_of(write(tmp_path, GUEST.replace('value = "40 ns"', 'value = "fast"')))
    assert "atomic_op_ns" in message and "'fast'" in message
    message = error_of(write(tmp_path, GUEST.replace('value = "40 ns"', "value = true")))
    assert "not a number" in message


def test_missing_or_empty_source(tmp_path):
    message = error_of(write(tmp_path, GUEST.replace('value = 54, source = "test"', "value = 54")))
    assert "cpu_relax_ns" in message and "source" in message
    message = error_of(write(tmp_path, GUEST.replace('value = 54, source = "test"',
                                                     'value = 54, source = "  "')))
    assert "empty source" in message


def test_malformed_toml_reports_line(tmp_path):
    message = error_of(write(tmp_path, GUEST.replace("cpus = {", "cpus {")))
    assert "malformed TOML" in message and "line 8" in message


def test_hypervisor_section_on_bare_metal_rejected(tmp_path):
    message = error_of(write(tmp_path, GUEST.replace('kind = "guest"', 'kind = "bare-metal"')))
    assert "[hypervisor]" in message and "bare-metal" in message


def test_guest_needs_hypervisor_section(tmp_path):
    text = GUEST.split("[hypervisor]")[0]
    assert "vm_exit_roundtrip_ns" in error_of(write(tmp_path, text))


def test_bad_arch_and_kind(tmp_path):
    message = error_of(write(tmp_path, GUEST.replace('"x86_64"', '"riscv64"')))
    assert "arch" in message and "riscv64" in message
    message = error_of(write(tmp_path, GUEST.replace('kind = "guest"', 'kind = "vm"')))
    assert "kind" in message and "'vm'" in message


def test_unknown_profile_name_suggests():
    with pytest.raises(UserError) as info:
        load_profile("kvm-x68")
    assert "did you mean kvm-x86?" in str(info.value)


def test_write_profile_round_trips(tmp_path):
    for name in SHIPPED:
        profile = load_profile(name)
        copy = load_profile(str(write_profile(profile, tmp_path / f"{name}.toml")))
        assert copy == profile
        assert copy.to_dict()["params"] == profile.to_dict()["params"]


def test_write_profile_escapes_sources(tmp_path):
    profile = load_profile("kvm-x86").with_overrides(
        cpus=Param(4, 'lab measurement: echo "a\\b"', "cpus"))
    copy = load_profile(str(write_profile(profile, tmp_path / "y.toml")))
    assert copy.source("cpus") == 'lab measurement: echo "a\\b"'


def test_with_overrides_validates_and_keeps_provenance():
    base = load_profile("kvm-x86")
    fast = base.with_overrides(ipi_latency_ns="2 us", cpus=16)
    assert fast.cost_ns("ipi_latency_ns") == 2000 and fast.get("cpus") == 16
    assert "override" in fast.source("ipi_latency_ns")
    assert base.cost_ns("ipi_latency_ns") == 1300
    with pytest.raises(UserError, match="did you mean ipi_latency_ns"):
        base.with_overrides(ipi_latency_us=1)
    with pytest.raises(UserError, match="wrong unit"):
        base.with_overrides(ipi_latency_ns="3 GHz")
    with pytest.raises(UserError, match="kind"):
        load_profile("xeon-gold-6154").with_overrides(halt_poll_ns=0)


def test_absent_key_raises_user_error_not_key_error():
    bare = load_profile("xeon-gold-6154")
    with pytest.raises(UserError, match="xeon-gold-6154.*halt_poll_ns"):
        bare.cost_ns("halt_poll_ns")
    with pytest.raises(UserError, match="not a cost"):
        bare.cost_ns("cpus")


def test_profiles_dir_env_override(tmp_path, monkeypatch):
    write(tmp_path, GUEST, "mine.toml")
    monkeypatch.setenv("HALTLAB_PROFILES", str(tmp_path))
    assert list_profiles() == sorted(["mine", *SHIPPED])    # the user's, then the shipped ones
    assert load_profile("mine").name == "t"
    write(tmp_path, GUEST.replace('name = "t"', 'name = "kvm-x86"'), "kvm-x86.toml")
    assert load_profile("kvm-x86").cost_ns("halt_poll_ns") == 200_000
    assert load_profile("kvm-x86").get("cpus") == 4          # the user's copy shadows the shipped one


def test_docs_table_lists_every_kvm_x86_parameter():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "profiles.md").read_text("utf-8")
    rows = {line.split(" | ")[0][3:-1]: line.split(" | ", 3)[3][:-2]
            for line in docs.splitlines() if line.startswith("| `") and " | [" in line}
    profile = load_profile("kvm-x86")
    for key in profile.params:
        assert key in rows, key
        assert rows[key] == profile.source(key), f"docs/profiles.md's {key} row cites another source"
