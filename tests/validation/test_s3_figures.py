"""S3's reproduce rows: the thread's figures beside `run_kexec` on S3's machine,
and the lab column read from a saved `lab kexec --arch arm64` campaign."""

import json

import pytest

from haltlab.validation.figures import FIGURES    # first: it imports s3_figures at its end
from haltlab.validation import s3_figures
from haltlab.cli.options import saved_lab_results
from haltlab.errors import ConfigError
from haltlab.report.reproduce import evaluate
from haltlab.scenarios.kexec import KexecConfig, run_kexec


def _fig(fid):
    return next(f for f in FIGURES if f.id == fid)


def _alone(shutdown, others, loglevel=7):
    return run_kexec(KexecConfig(profile="arm64-server-24", cpus=24, shutdown=shutdown, others=others,
                                 kernel="v5.17", console_loglevel=loglevel, timeline=False))


@pytest.fixture
def no_lab():
    s3_figures.set_s3_lab_results({})
    yield
    s3_figures.set_s3_lab_results({})


def _campaign(cpus, others, per_cpu_ms, shutdown_ms):
    return {"experiment": "kexec", "arch": "arm64", "others": others, "cpus": cpus, "accelerator": "tcg",
            "kernel_release": "6.1.0-57-arm64", "qemu_version": "7.2.22", "qemu_machine": "virt",
            "per_cpu_shutdown_ns": {"median": per_cpu_ms * 1_000_000, "n": cpus - 1},
            "shutdown_ns": {"median": shutdown_ms * 1_000_000, "n": 1}}


def test_the_rows_come_after_s2_and_carry_the_threads_figures():
    ids = [f.id for f in FIGURES]
    s3 = [f for f in FIGURES if f.thread == "S3"]
    assert [f.id for f in s3] == ["S3-hotplug-per-cpu-idle", "S3-hotplug-idle", "S3-hotplug-idle-quiet",
                                  "S3-hotplug-busy", "S3-smp-send-stop"]
    assert ids.index(s3[0].id) > max(i for i, f in enumerate(FIGURES) if f.thread == "S2")
    assert [f.seed_value for f in s3] == [0.025, 0.65, 0.65, 2.0, 0.005]
    assert ".02 to .03 seconds per CPU" in s3[0].seed_source and "about .65 seconds" in s3[1].seed_source
    assert "several seconds" in s3[3].seed_source and "less than 5 msecs" in s3[4].seed_source


def test_model_values_are_run_kexecs_on_s3s_machine(no_lab):
    idle, quiet, busy, stop = (_alone("hotplug", "idle"), _alone("hotplug", "idle", 4), _alone("hotplug", "busy"),
                               _alone("smp-send-stop", "idle"))
    rows = {f.id: evaluate(f, "skip") for f in FIGURES if f.thread == "S3"}
    assert rows["S3-hotplug-idle"]["model_value"] == idle["shutdown_ns"] / 1e9
    assert rows["S3-hotplug-per-cpu-idle"]["model_value"] == idle["shutdown_ns"] / 23 / 1e9
    assert rows["S3-hotplug-idle-quiet"]["model_value"] == quiet["shutdown_ns"] / 1e9
    assert rows["S3-hotplug-busy"]["model_value"] == busy["shutdown_ns"] / 1e9
    assert rows["S3-smp-send-stop"]["model_value"] == stop["shutdown_ns"] / 1e9
    assert rows["S3-hotplug-idle"]["model_over_seed"] == idle["shutdown_ns"] / 1e9 / 0.65
    assert quiet["shutdown_ns"] < idle["shutdown_ns"]              # the console lines cost time
    note = rows["S3-hotplug-idle"]["note"]
    assert "v5.17" in note and "cpu_wait_death()" in note and f"{idle['rcu_gp_ns'] / 1e6:.2f} ms" in note
    assert "several seconds" in rows["S3-hotplug-busy"]["note"] and "kernel/sched.py" in rows["S3-hotplug-busy"]["note"]
    assert all(r["lab_value"] is None for r in rows.values())


def test_the_lab_column_reads_the_largest_idle_campaign(tmp_path, no_lab):
    path = tmp_path / "idle.json"
    path.write_text(json.dumps([_campaign(2, "idle", 70, 110), _campaign(8, "idle", 150, 1000)]))
    saved = saved_lab_results([f"kexec-arm64-idle={path}"], "NAME")
    s2, s3 = s3_figures.split_lab_results(saved)
    assert s2 == {} and list(s3) == ["kexec-arm64-idle"]
    s3_figures.set_s3_lab_results(s3)
    row = evaluate(_fig("S3-hotplug-per-cpu-idle"), "auto")
    assert row["lab_value"] == 0.15 and "8-vCPU campaign" in row["lab_note"] and "not S3's hardware" in row["lab_note"]
    total = evaluate(_fig("S3-hotplug-idle"), "auto")
    assert total["lab_value"] is None and "2 vCPUs: per CPU 70.00 ms" in total["lab_note"]


def test_without_a_campaign_the_lab_note_says_how_to_give_one(no_lab):
    row = evaluate(_fig("S3-hotplug-per-cpu-idle"), "auto")
    assert row["lab_value"] is None and "--lab-result kexec-arm64-idle=FILE" in row["lab_note"]


def test_a_campaign_of_another_load_or_experiment_is_refused(no_lab):
    with pytest.raises(ConfigError, match="--others busy, not idle"):
        s3_figures.set_s3_lab_results({"kexec-arm64-idle": {"campaigns": [_campaign(2, "busy", 1, 1)]}})
    with pytest.raises(ConfigError, match="not a `lab kexec --arch arm64` result"):
        s3_figures.set_s3_lab_results({"kexec-arm64-busy": {"experiment": "flood"}})
