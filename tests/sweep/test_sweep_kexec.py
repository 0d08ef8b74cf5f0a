"""`haltlab sweep kexec`: rows equal to `simulate_kexec`'s, resumes only what is
missing, writes the plot, and refuses bad input in one line naming the flag
before anything is written."""

from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.scenarios.kexec import KexecConfig, run_kexec
from haltlab.sweep import read_inputs, read_sweep
from haltlab.sweep.kexec import KexecSweep
from sweep_helpers import refused

FAST = ("--shutdown", "hotplug,smp-send-stop", "--others", "idle", "--workers", "1")


def sweep(out, *args: str):
    return CliRunner().invoke(cli, ["sweep", "kexec", "--output", str(out), *args])


def test_rows_are_the_runs_of_simulate_kexec(tmp_path):
    out = tmp_path / "k.jsonl"
    done = sweep(out, "--cpus", "3", *FAST, "--kernel", "v5.17", "--loglevel", "4")
    assert done.exit_code == 0, done.output
    rows = {r["key"]: r["result"] for r in read_sweep(out)}
    assert sorted(rows) == ["arm64-server-24/cpus=00003/hotplug/idle", "arm64-server-24/cpus=00003/smp-send-stop/idle"]
    for design in ("hotplug", "smp-send-stop"):
        alone = run_kexec(KexecConfig(cpus=3, shutdown=design, kernel="v5.17", console_loglevel=4, timeline=False))
        row = rows[f"arm64-server-24/cpus=00003/{design}/idle"]
        assert row["shutdown_ns"] == alone["shutdown_ns"] and row["outcome"] == alone["outcome"]
        assert row["down_ns"] == [c["down_ns"] for c in alone["per_cpu"]]
    assert read_inputs(out)["config"]["kernel"] == "v5.17"
    assert read_inputs(out)["config"]["console_loglevel"] == 4
    hotplug = f"{rows['arm64-server-24/cpus=00003/hotplug/idle']['shutdown_ns'] / 1e6:.3f}"
    assert hotplug in done.stdout                               # the table shows the row's time


def test_a_sweep_resumes_running_only_what_is_missing(tmp_path):
    out = tmp_path / "k.jsonl"
    assert sweep(out, "--cpus", "2", *FAST).exit_code == 0
    first = out.read_bytes()
    more = sweep(out, "--cpus", "2,3", *FAST)
    assert more.exit_code == 0, more.output
    assert f"sweep: 4 runs in {out} (2 new)" in more.stdout
    assert out.read_bytes().startswith(first)                   # appended, the old rows kept
    again = sweep(out, "--cpus", "2,3", *FAST)
    assert f"sweep: 4 runs in {out} (0 new)" in again.stdout
    assert len(out.read_text().splitlines()) == 1 + 4           # nothing ran twice
    refused(sweep(out, "--cpus", "2,3", *FAST, "--loglevel", "4"), "holds runs made with other inputs")


def test_plot_is_a_png_and_the_same_sweep_gives_the_same_bytes(tmp_path):
    out, png = tmp_path / "k.jsonl", tmp_path / "plots" / "k.png"
    done = sweep(out, "--cpus", "2,4", "--others", "idle,busy", "--workers", "1", "--plot", str(png))
    assert done.exit_code == 0, done.output
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    again = sweep(out, "--cpus", "2,4", "--others", "idle,busy", "--workers", "1", "--plot", str(png))
    assert "(0 new)" in again.stdout and png.read_bytes() == data


def test_summary_orders_by_design_then_load_as_given(tmp_path):
    out = tmp_path / "k.jsonl"
    assert sweep(out, "--cpus", "2,3", "--shutdown", "smp-send-stop,hotplug", "--others", "busy,idle",
                 "--workers", "1").exit_code == 0
    spec = KexecSweep.parse(cpus="2,3", shutdown="smp-send-stop,hotplug", others="busy,idle")
    got = [(g.shutdown, g.others, g.cpus) for g in spec.summary(out)]
    assert got == [(d, o, n) for d in ("smp-send-stop", "hotplug") for o in ("busy", "idle") for n in (2, 3)]


def test_bad_options_are_one_line_naming_the_flag_and_nothing_is_written(tmp_path):
    out = tmp_path / "k.jsonl"
    refused(sweep(out, "--shutdown", "hotplug,fast"), "--shutdown", "'fast'")
    refused(sweep(out, "--others", "sleepy"), "--others", "'sleepy'")
    refused(sweep(out, "--cpus", "1,8"), "--cpus", "2 to 4096")
    refused(sweep(out, "--cpus", "eight"), "--cpus")
    refused(sweep(out, "--profile", "kvm-x86"), "--profile", "arm64")
    refused(sweep(out, "--kernel", "v0.1"), "--kernel")
    (tmp_path / "dir.png").mkdir()
    refused(sweep(out, "--cpus", "2", "--plot", str(tmp_path / "dir.png")), "--plot", "is a directory")
    refused(CliRunner().invoke(cli, ["sweep", "kexec"]), "--output FILE is required")
    assert not out.exists()
