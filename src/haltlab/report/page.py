"""The single-file HTML report: `report.html` of `reproduce` and of `simulate --trace`.

One file a person opens from disk, offline: the CSS and the script are inlined
(assets/report.css, assets/swimlanes.js), the PNG plots embedded as base64, and
the swimlanes' data inlined as JSON. Nothing is fetched at view time.

Why hand-written SVG and ~300 lines of script rather than a plotting library
(Plotly, Bokeh, vega): those embed 1-3 MB of JavaScript per page, or fetch it
from a CDN, which a file opened offline cannot do; what the lanes need (rects
on a time axis, zoom, pan, a tooltip) is small, and written here it is plain
to read and to test in a real browser (tests/report/test_report_browser.py).

Like every file haltlab writes, the page holds no timestamp and no path: the
same inputs give the same bytes.
"""

from __future__ import annotations

import base64
from html import escape
from importlib import resources

from haltlab.machine.cpu import HW_STATES
from haltlab.report.lanes import MODEL_CLOCK, Lanes, marks_in_order, model_label
from haltlab.report.swimlanes import absent_panel, page_data, panel, script_json

__all__ = ["document", "panic_html", "reproduce_html", "asset", "NO_LAB_IN_SIMULATE"]

NO_LAB_IN_SIMULATE = ("no lab run: `simulate` runs the model only "
                      "(`haltlab lab panic` boots a real guest)")


def asset(name: str) -> str:
    """The text of assets/`name`, shipped inside the package."""
    return resources.files("haltlab.report").joinpath("assets", name).read_text(encoding="utf-8")


def _img(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption><code>{escape(name)}</code>: {escape(caption)}</figcaption></figure>")


class _Panels:
    """The page's panels in order: each gets the index its `<div>` names."""

    def __init__(self) -> None:
        self.specs: list[dict] = []

    def add(self, spec: dict) -> str:
        if "absent" in spec:
            return (f'<div class="panel absent"><h4>{escape(spec["label"])}</h4>'
                    f'<p>{escape(spec["absent"])}</p></div>')
        self.specs.append(spec)
        return (f'<div class="panel" data-panel="{len(self.specs) - 1}">'
                f'<h4>{escape(spec["label"])}</h4><noscript><p>The swimlanes are drawn by the '
                "page's script; with scripts off, the PNG timeline shows the same intervals."
                "</p></noscript></div>")


def document(title: str, body: str, panels: list[dict]) -> str:
    """A whole page: `body` (HTML) and the swimlane `panels` it refers to."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>\n{asset('report.css')}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n</main>\n"
            f'<script type="application/json" id="haltlab-data">{script_json(page_data(panels))}'
            f"</script>\n<script>\n{asset('swimlanes.js')}</script>\n</body>\n</html>\n")


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:,.3f} ms"


def _marks_table(lanes: Lanes) -> str:
    entry = lanes.marks_ns.get("panic_entry")
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{escape(label)}</td>"
        f'<td class="num">{ns / 1e6:,.6f}</td>'
        f'<td class="num">{"-" if entry is None else f"{(ns - entry) / 1e6:+,.6f}"}</td></tr>'
        for name, ns, (label, _c, _s) in marks_in_order(lanes.marks_ns))
    return ("<table><tr><th>mark</th><th>what</th><th class=\"num\">ms since power-on</th>"
            f"<th class=\"num\">ms from panic() entry</th></tr>{rows}</table>")


def _summary_table(r: dict) -> str:
    cfg = r["config"]
    rows = [("outcome", r["outcome"]),
            ('time to "end Kernel panic" (from panic() entry)', _ms(r.get("time_to_end_ns"))),
            ("other CPUs stopped (from panic() entry)", _ms(r.get("panic_to_others_stopped_ns"))),
            ("smp_send_stop() itself (its call to the others stopped)", _ms(r.get("smp_send_stop_ns")))]
    if cfg.get("panic_timeout_s"):
        rows.append(("reboot after (from panic() entry)", _ms(r.get("reboot_after_ns"))))
    if "host_cpu_s_per_s" in r:
        rows += [(f"host CPU-s/s over the {r['window_ns'] / 1e9:g} s window",
                  f"{r['host_cpu_s_per_s']:.6f}"),
                 ("perf samples, cycles in the window",
                  f"{r['perf_samples']:,}, {r['cycles']:,}")]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _states_table(r: dict) -> str:
    from haltlab.report.panic_view import state_rows
    head = "".join(f'<th class="num">{s}</th>' for s in HW_STATES)
    body = "".join(f"<tr><td>{escape(label)}</td>"
                   + "".join(f'<td class="num">{row[s] / 1e6:,.3f}</td>' for s in HW_STATES)
                   + "</tr>" for label, row in state_rows(r))
    return f"<table><tr><th>CPU</th>{head}</tr>{body}</table>"


def panic_html(trace, lanes: Lanes, timeline_png: bytes) -> str:
    """`report.html` of `simulate panic --trace`: the run, its lanes, its plot."""
    r, panels = trace.result, _Panels()
    body = [
        "<h1>haltlab simulate panic</h1>",
        f'<p class="meta">{escape(model_label(r))}; panic CPU {r["config"]["panic_cpu"]}. '
        "Beside this file: <code>dmesg.txt</code>, <code>console.txt</code>, "
        "<code>interrupts.txt</code>, <code>result.json</code>, <code>timeline.png</code>, "
        "and <code>timeline.json</code> (open it in Perfetto or chrome://tracing).</p>",
        "<h2>Summary</h2>", _summary_table(r),
        "<h2>Swimlanes</h2>",
        panels.add(panel(model_label(r), MODEL_CLOCK, lanes)),
        panels.add(absent_panel("lab", NO_LAB_IN_SIMULATE)),
        "<h3>Marks</h3>", _marks_table(lanes),
        f"<h2>Time per CPU state, whole run (0 to {r['end_ns'] / 1e9:.3f} s), ms</h2>",
        _states_table(r),
        "<h2>Plot</h2>",
        _img("timeline.png", timeline_png, "the same intervals; top: the panic, bottom: the "
             "whole run"),
    ]
    return document("haltlab simulate panic", "\n".join(body), panels.specs)


def _ratio_class(v: float | None) -> str:
    if v is None:
        return ""
    return "ok" if 0.5 <= v <= 2 else "near" if 0.1 <= v <= 10 else "far"


def _figure_table(report: dict) -> str:
    from haltlab.report.reproduce import fmt_value
    head = ("<tr><th>id</th><th>quantity</th><th>unit</th><th class=\"num\">thread</th>"
            "<th class=\"num\">model</th><th class=\"num\">model / thread</th>"
            "<th class=\"num\">lab</th><th>notes</th></tr>")
    rows = []
    for n, r in enumerate(report["rows"], 1):
        ratio = r["model_over_seed"]
        rows.append(
            f"<tr><td><code>{escape(r['id'])}</code></td><td>{escape(r['quantity'])}</td>"
            f"<td>{escape(r['unit'])}</td><td class=\"num\">{fmt_value(r['seed_value'])}</td>"
            f"<td class=\"num\">{fmt_value(r['model_value'])}</td>"
            f"<td class=\"num {_ratio_class(ratio)}\">{'-' if ratio is None else f'{ratio:.3f}'}"
            f"</td><td class=\"num\">{fmt_value(r['lab_value'])}</td>"
            f'<td><a href="#note-{n}">[{n}]</a></td></tr>')
    notes = "".join(
        f'<li id="note-{n}"><b>{escape(r["id"])}</b>: thread: {escape(r["seed_source"])}. '
        f"{escape(r['note'])} Lab: {escape(r['lab_note'])}.</li>"
        for n, r in enumerate(report["rows"], 1))
    return f"<table>{head}{''.join(rows)}</table>\n<ol class=\"notes\">{notes}</ol>"


def reproduce_html(report: dict, images: list[tuple[str, bytes, str]],
                   runs: list[tuple[str, str, list[dict]]]) -> str:
    """`report.html` of `reproduce`: the figure table and its notes, the plots
    (`(file name, png, caption)`), and per run `(title, trace file, panels)`."""
    panels = _Panels()
    body = [
        "<h1>haltlab reproduce</h1>",
        f'<p class="meta">haltlab {escape(report["haltlab_version"])}; profiles: '
        f'{escape(", ".join(report["profiles"]))}; lab: {escape(report["lab"])}; threads: '
        f'{escape(", ".join(report["threads"]))}.</p>',
        "<h2>The threads' figures, the model's and the lab's</h2>", _figure_table(report),
        "<h2>Plots</h2>", *(_img(name, png, caption) for name, png, caption in images),
        "<h2>The runs these figures rest on</h2>",
        "<p class=\"meta\">Per-CPU hardware states, model and lab side by side. Each run is "
        "also written as Chrome/Perfetto trace-event JSON (named under its title).</p>",
    ]
    for title, trace_file, specs in runs:
        body.append(f'<section class="run"><h3>{escape(title)}</h3>'
                    f'<p class="meta">trace file: <code>{escape(trace_file)}</code></p>'
                    + "".join(panels.add(s) for s in specs) + "</section>")
    return document("haltlab reproduce", "\n".join(body), panels.specs)
