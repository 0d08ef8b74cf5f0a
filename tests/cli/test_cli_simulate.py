"""`haltlab simulate panic`: real runs through click's CliRunner."""

import json

import pytest
from click.testing import CliRunner

from haltlab.cli import cli

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args: str):
    return CliRunner().invoke(cli, ["simulate", "panic", *args])


def run_json(*args: str) -> dict:
    result = run("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_parses_and_has_the_host_view():
    r = run_json("--observe", "1")
    assert r["outcome"] == "panicked-and-finished"
    assert r["cpus"] == 8                                   # kvm-x86's default
    assert r["window_ns"] == 1_000_000_000
    assert isinstance(r["host_cpu_s_per_s"], float)
    assert [v["cpu"] for v in r["per_vcpu"]] == list(range(8))


@pytest.mark.parametrize("after_panic, low, high", [
    ("mdelay", 0.95, 1.05),       # the busy loop keeps the panicked vCPU on a host CPU
    ("safe_halt", 0.0, 0.01),     # S1's patch: the vCPU halts
])
def test_panicked_vcpu_host_cost(after_panic, low, high):
    r = run_json("--after-panic", after_panic, "--observe", "2")
    panicked = r["per_vcpu"][r["config"]["panic_cpu"]]
    assert low <= panicked["host_cpu_s_per_s"] <= high


def test_same_seed_gives_identical_bytes():
    args = ("--json", "--others", "busy", "--seed", "7", "--observe", "0.5")
    first, second = run(*args), run(*args)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout


def test_trace_writes_every_file(tmp_path):
    out = tmp_path / "trace"
    result = run("--json", "--observe", "0.5", "--trace", str(out))
    assert result.exit_code == 0, result.output
    names = {"dmesg.txt", "console.txt", "interrupts.txt", "timeline.png", "timeline.json",
             "report.html", "result.json", ".haltlab-set"}     # the set's manifest (report/_files.py)
    assert {p.name for p in out.iterdir()} == names
    from haltlab.cli.simulate import TRACE_NAMES            # the names checked before the run
    assert set(TRACE_NAMES) | {".haltlab-set"} == names
    assert (out / "timeline.png").read_bytes().startswith(PNG)
    dmesg = (out / "dmesg.txt").read_text()
    assert "---[ end Kernel panic - not syncing: sysrq triggered crash ]---" in dmesg
    assert dmesg.startswith("[    0.010")           # printk's [%5lu.%06lu]
    assert "][    C0] " in dmesg                      # CONFIG_PRINTK_CALLER, CPU form
    assert "end Kernel panic" in (out / "console.txt").read_text()
    assert "REBOOT" in (out / "interrupts.txt").read_text()
    assert (out / "result.json").read_text() == result.stdout


@pytest.mark.parametrize("args", [
    ("--cpus", "0"),
    ("--cpus", "-3"),
    ("--profile", "nope"),
    ("--after-panic", "nope"),
    ("--others", "sleepy"),
    ("--observe", "0"),
    ("--observe", "nan"),
    ("--observe", "inf"),
    ("--observe", "1e-12"),
    ("--cpus", "9000"),
    ("--kernel", "v2.6"),
    ("--panic-cpu", "8"),
    ("--panic-timeout", "-1"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args):
    out = tmp_path / "trace"
    result = run(*args, "--trace", str(out))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("haltlab: error: "), result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "1e-12"])
def test_observe_with_no_whole_nanosecond_names_the_value(value):
    lines = run("--observe", value).stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"haltlab: error: --observe {value}: ")


def test_profile_that_is_a_directory_is_one_line():
    from haltlab.machine.profile import profiles_dir
    result = run("--profile", f"{profiles_dir()}/")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith("profiles: cannot read: Is a directory")


def test_trace_into_a_file_is_refused(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    result = run("--trace", str(target))
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert target.read_text() == "keep me"


def test_human_output_has_every_table():
    result = run("--observe", "1", "--panic-timeout", "0")
    assert result.exit_code == 0, result.output
    for title in ("Panic run", 'time to "end Kernel panic"', "Time per CPU state",
                  "Host view", "Interrupt handlers run after panic", "Blink:"):
        assert title in result.stdout


def test_many_cpus_are_aggregated_and_bare_metal_has_no_host_view():
    result = run("--profile", "xeon-gold-6154", "--observe", "0.2")
    assert result.exit_code == 0, result.output
    assert "CPU0 (panic)" in result.stdout
    assert "71 others, summed" in result.stdout
    assert "bare metal" in result.stdout


def test_panic_timeout_reports_the_reboot():
    r = run_json("--panic-timeout", "1")
    assert r["outcome"] == "rebooted"
    assert 1_000_000_000 <= r["reboot_after_ns"] < 1_100_000_000
    result = run("--panic-timeout", "1")
    assert "reboot after" in result.stdout


@pytest.mark.parametrize("flags, kdump, post", [
    ((), False, False), (("--no-kdump",), False, False), (("--kdump",), True, False),
    (("--kdump", "--post-notifiers"), True, True), (("--post-notifiers",), False, True)])
def test_kdump_flags_reach_the_run_and_its_json(flags, kdump, post):
    r = run_json("--cpus", "2", "--observe", "0.1", *flags)
    assert (r["config"]["kdump"], r["config"]["crash_kexec_post_notifiers"]) == (kdump, post)
    if kdump:       # the result times the crash kexec instead of the end line
        assert r["outcome"] == "crash-kexec" and r["time_to_end_ns"] is None
        assert r["crash_kexec_after_ns"] == r["marks_ns"]["crash_kexec"] - r["marks_ns"]["panic_entry"]
    else:
        assert r["outcome"] == "panicked-and-finished" and r["crash_kexec_after_ns"] is None


def test_kdump_table_shows_the_crash_kexec_time():
    result = run("--cpus", "2", "--kdump", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "panic() entry to machine_kexec() (kdump kernel)" in result.stdout
    assert "end Kernel panic" not in result.stdout
    assert "bare metal" not in result.stdout        # a guest whose run ended in the kdump kernel


@pytest.mark.parametrize("field, flag", [("kdump", "--kdump"), ("crash_kexec_post_notifiers", "--post-notifiers")])
def test_a_crash_field_error_names_its_flag(field, flag):
    from haltlab.cli.options import render_config_error
    from haltlab.errors import ConfigError
    assert render_config_error(ConfigError(field, "yes", "must be true or false")).startswith(f"{flag} yes")
