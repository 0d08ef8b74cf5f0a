"""`haltlab sweep kexec --arch x86` (S4): rows equal to single `simulate kexec
--arch x86` runs, the C-state axis crossing only park-mwait (and the designs it
skips indeed unchanged by it), resume, the plot, and bad input refused in one
line naming the flag before anything is written."""

import json

from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.scenarios.kexec_x86 import X86KexecConfig, run_kexec_x86
from haltlab.sweep import read_inputs, read_sweep
from haltlab.sweep.kexec_x86 import X86_KEXEC_KEEP, X86KexecSweep
from sweep_helpers import refused


def sweep(out, *args: str):
    return CliRunner().invoke(cli, ["sweep", "kexec", "--arch", "x86", "--output", str(out), *args])


def test_rows_are_the_runs_of_simulate_kexec_x86(tmp_path):
    out = tmp_path / "x.jsonl"
    done = sweep(out, "--cpus", "8,12", "--bringup", "init-sipi,park-mwait", "--park-cstate", "C1,C6", "--lpj",
                 "--workers", "1")
    assert done.exit_code == 0, done.output
    rows = {r["key"]: r["result"] for r in read_sweep(out)}
    assert sorted(rows) == sorted(f"xeon-gold-6154/cpus={n:05d}/{v}" for n in (8, 12)
                                  for v in ("init-sipi/-", "park-mwait/C1", "park-mwait/C6"))
    for key, row in rows.items():
        _, cpus, design, cstate = key.split("/")
        cfg = X86KexecConfig(cpus=int(cpus[5:]), bringup=design, lpj=True,
                             **({} if cstate == "-" else {"park_cstate": cstate}))
        alone = run_kexec_x86(cfg)
        assert row == {k: alone[k] for k in X86_KEXEC_KEEP}
    cli_run = CliRunner().invoke(cli, ["simulate", "kexec", "--arch", "x86", "--bringup", "park-mwait", "--cpus", "12",
                                       "--park-cstate", "C6", "--lpj", "--json"])
    assert cli_run.exit_code == 0, cli_run.output
    single = json.loads(cli_run.stdout)
    assert rows["xeon-gold-6154/cpus=00012/park-mwait/C6"] == {k: single[k] for k in X86_KEXEC_KEEP}
    assert read_inputs(out)["config"]["lpj"] is True
    smp = f"{rows['xeon-gold-6154/cpus=00012/init-sipi/-']['smp_init_ns'] / 1e6:.3f}"
    assert smp in done.stdout                                   # the table shows the row's time
    assert "C-state axis: init-sipi wait in no C-state" in done.stdout


def test_the_designs_the_cstate_axis_skips_do_not_read_it():
    """What makes running them once right: a C6 hint changes nothing for them
    (and does change park-mwait's run, so the comparison can tell)."""
    for design in ("init-sipi", "parallel", "park-spin"):
        c1, c6 = (run_kexec_x86(X86KexecConfig(cpus=8, bringup=design, park_cstate=c)) for c in ("C1", "C6"))
        assert c1 == {**c6, "config": c1["config"]}
    c1, c6 = (run_kexec_x86(X86KexecConfig(cpus=8, bringup="park-mwait", park_cstate=c)) for c in ("C1", "C6"))
    assert c1["downtime_ns"] != c6["downtime_ns"]


def test_counts_and_keys_cross_cstates_for_park_mwait_only():
    spec = X86KexecSweep.parse(cpus="8,16", bringup="parallel,park-mwait,park-spin", park_cstate="C6,C1")
    assert spec.runs == 2 * (1 + 2 + 1) and spec.unchanged == ("parallel", "park-spin")
    keys = [k for k, _ in spec.items()]
    assert keys[:4] == ["xeon-gold-6154/cpus=00008/parallel/-", "xeon-gold-6154/cpus=00008/park-mwait/C6",
                        "xeon-gold-6154/cpus=00008/park-mwait/C1", "xeon-gold-6154/cpus=00008/park-spin/-"]


def test_resume_and_the_plot_is_a_png_with_the_same_bytes_again(tmp_path):
    out, png = tmp_path / "x.jsonl", tmp_path / "plots" / "x.png"
    args = ("--cpus", "8,16", "--bringup", "init-sipi,parallel,park-mwait", "--park-cstate", "C1,C6", "--workers", "1")
    first = sweep(out, "--cpus", "8", *args[2:])
    assert first.exit_code == 0, first.output
    done = sweep(out, *args, "--plot", str(png))
    assert done.exit_code == 0, done.output
    assert f"sweep: 8 runs in {out} (4 new)" in done.stdout
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    again = sweep(out, *args, "--plot", str(png))
    assert "(0 new)" in again.stdout and png.read_bytes() == data
    assert len(out.read_text().splitlines()) == 1 + 8
    refused(sweep(out, *args, "--lpj"), "holds runs made with other inputs")


def test_bad_options_are_one_line_naming_the_flag_and_nothing_is_written(tmp_path):
    out = tmp_path / "x.jsonl"
    refused(sweep(out, "--bringup", "init-sipi,fast"), "--bringup", "'fast'")
    refused(sweep(out, "--park-cstate", "C9"), "--park-cstate", "'C9'")
    refused(sweep(out, "--cpus", "8,10"), "--cpus", "multiple of 4")
    refused(sweep(out, "--cpus", "1,8"), "--cpus", "2 to 8192")
    refused(sweep(out, "--cpus", "eight"), "--cpus")
    refused(sweep(out, "--profile", "arm64-server-24"), "--profile", "x86_64")
    refused(sweep(out, "--kernel", "v6.1", "--bringup", "init-sipi,parallel"), "--bringup", "v6.6")
    refused(sweep(out, "--shutdown", "hotplug"), "--shutdown", "arm64")
    refused(sweep(out, "--others", "busy"), "--others", "arm64")
    refused(CliRunner().invoke(cli, ["sweep", "kexec", "--output", str(out), "--bringup", "parallel"]),
            "--bringup", "x86")
    refused(CliRunner().invoke(cli, ["sweep", "kexec", "--output", str(out), "--park-cstate", "C6"]),
            "--park-cstate", "x86")
    (tmp_path / "dir.png").mkdir()
    refused(sweep(out, "--cpus", "8", "--plot", str(tmp_path / "dir.png")), "--plot", "is a directory")
    assert not out.exists()
