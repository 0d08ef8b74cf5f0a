"""report.html without a browser: one offline file, the right panels, the same
bytes for the same inputs. (tests/report/test_report_browser.py loads it in
Chromium.)"""

import json
import re
from html import escape
import tomllib
from pathlib import Path

import pytest

from haltlab.report import reproduce
from haltlab.report.lanes import lab_lanes
from haltlab.report.page import NO_LAB_IN_SIMULATE, asset
from haltlab.report.reproduce import RUNS, ReportRun, _lab_lanes, run_reproduce
from haltlab.report.swimlanes import absent_panel, page_data, panel, script_json
from haltlab.report.trace import trace_files
from haltlab.scenarios.panic import PanicConfig, simulate_panic

ROOT = Path(__file__).resolve().parents[2]
LAB_TIMELINE = {"cpus": [{"cpu": 0, "intervals": [[1_000_000, 3_000_000, "running"],
                                                   [3_000_000, 9_000_000, "irqs_off"]]},
                         {"cpu": 1, "intervals": [[1_000_000, 9_000_000, "halted"]]}],
                "marks_ns": {"panic_entry": 3_000_000, "panic_end": 8_000_000}}


def page_json(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="haltlab-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def assert_offline(html: str) -> None:
    """Nothing the page loads comes from elsewhere: no src/href but data: and #."""
    assert "<link" not in html and "@import" not in html and "url(" not in html
    for attr in re.findall(r'\b(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:image/png;base64,", "#")), attr
    assert "<script src" not in html


def test_simulate_page_is_one_offline_file_with_the_runs_lanes():
    trace = simulate_panic(PanicConfig(observe_ns=200_000_000, others="busy"))
    html = trace_files(trace)["report.html"]
    assert_offline(html)
    data = page_json(html)
    (model,) = data["panels"]
    assert [c["label"] for c in model["cpus"]] == ["CPU0 (panic)"] + [f"CPU{c}" for c in range(1, 8)]
    assert [m["name"] for m in model["marks"]] == sorted(
        trace.result["marks_ns"], key=lambda n: (trace.result["marks_ns"][n], n))
    assert escape(NO_LAB_IN_SIMULATE) in html
    assert re.findall(r'<div class="panel" data-panel="(\d+)">', html) == ["0"]
    assert asset("swimlanes.js") in html and asset("report.css") in html


def test_same_run_same_page():
    cfg = PanicConfig(observe_ns=100_000_000, seed=4)
    assert trace_files(simulate_panic(cfg))["report.html"] == \
        trace_files(simulate_panic(cfg))["report.html"]


def test_many_cpus_show_the_pngs_subset_and_say_so():
    trace = simulate_panic(PanicConfig(profile="xeon-gold-6154", panic_cpu=40,
                                       observe_ns=100_000_000))
    (model,) = page_json(trace_files(trace)["report.html"])["panels"]
    assert [c["cpu"] for c in model["cpus"]] == list(range(16)) + [40]
    assert model["note"].startswith("showing CPUs 0-15 and the panic CPU40 of 72")


def test_intervals_are_numbered_states():
    lanes = lab_lanes(LAB_TIMELINE)
    data = page_data([panel("lab", "clock", lanes), absent_panel("x", "why")])
    assert [s for s, _colour in data["states"]] == ["running", "irqs_off", "halted"]
    assert data["panels"][0]["cpus"][0]["iv"] == [1_000_000, 3_000_000, 0, 3_000_000, 9_000_000, 1]
    assert data["panels"][1] == {"label": "x", "absent": "why"}


def test_script_json_cannot_close_its_element():
    text = script_json({"label": "</script><b>&"})
    assert "</" not in text and "<" not in text and json.loads(text) == {"label": "</script><b>&"}


def _rows(lab_value, note="lab unavailable: qemu-system-x86_64 not installed"):
    return {i: {"lab_value": lab_value, "lab_note": note} for r in RUNS for i in r.rows}


def _run(result: dict) -> ReportRun:
    return ReportRun("t", "t", lambda: PanicConfig(), lambda: result, RUNS[0].rows)


def test_lab_lanes_when_the_lab_ran_and_why_not_otherwise():
    result = {"kernel_release": "6.1.0-56-amd64", "accelerator": "tcg", "qemu_version": "7.2.22",
              "smp": 2, "runs": [{"outcome": "x"}, {"lab_timeline": LAB_TIMELINE}]}
    (lanes, label), why = _lab_lanes(_run(result), _rows(123), "auto")
    assert why == "" and "6.1.0-56-amd64" in label and "tcg" in label
    assert lanes.ncpus == 2 and lanes.marks_ns == LAB_TIMELINE["marks_ns"]
    assert _lab_lanes(_run(result), _rows(123), "skip") == (None, "no lab run (--lab skip)")
    none, why = _lab_lanes(_run(result), _rows(None), "auto")
    assert none is None and why == "no lab run: lab unavailable: qemu-system-x86_64 not installed"
    none, why = _lab_lanes(_run({**result, "runs": []}), _rows(1), "auto")
    assert none is None and "no lab_timeline" in why


def test_lab_result_is_not_asked_for_when_the_rows_did_not_measure_it():
    def never():
        raise AssertionError("the lab was started again")
    run = ReportRun("t", "t", lambda: PanicConfig(), never, RUNS[0].rows)
    assert _lab_lanes(run, _rows(None), "auto")[0] is None


@pytest.fixture(scope="module")
def reproduced():
    return run_reproduce("skip"), run_reproduce("skip")


def test_reproduce_writes_the_page_and_a_trace_per_run_with_the_same_bytes(reproduced):
    (report, files), (_report2, files2) = reproduced
    assert list(files) == report["files"] == list(reproduce.FILES)
    assert {"report.html", "s1_before_timeline.json", "s1_after_timeline.json"} <= set(files)
    for name in files:
        assert files[name] == files2[name], name
    html = files["report.html"]
    assert_offline(html)
    data = page_json(html)
    assert len(data["panels"]) == len(RUNS)               # the model's; the lab's are absent
    assert html.count("no lab run (--lab skip)") == len(RUNS)
    for row in report["rows"]:
        assert f"<code>{row['id']}</code>" in html
    assert html.count('src="data:image/png;base64,') == 2


def test_the_assets_ship_with_the_package():
    """A non-editable install gets only what package-data names."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["haltlab"]
    assets = sorted((ROOT / "src/haltlab/report/assets").iterdir())
    assert assets
    for path in assets:
        rel = path.relative_to(ROOT / "src/haltlab")
        assert any(rel.match(g) for g in globs), rel
