"""Per-CPU swimlanes for the HTML report: the data the page's script draws.

A panel is one source's lanes (the model's run, or the lab's guest), as plain
JSON: the CPUs shown (the same subset timeline.png shows, and the page says
so), each CPU's intervals as a flat `[start_ns, end_ns, state_index, ...]`
list, the run's marks with their labels and styles, the whole run's span and
the panic's. The page's own script (assets/swimlanes.js) turns a panel into
SVG lanes and redraws them on zoom and pan; nothing here knows about pixels.

The JSON goes into the page inside `<script type="application/json">`, with
`<`, `>` and `&` escaped so no text can close the element.
"""

from __future__ import annotations

import json

from haltlab.report.lanes import (
    STATE_COLOURS, UNKNOWN_STATE_COLOUR, Lanes, marks_in_order, shown_cpus, subset_note,
)

__all__ = ["panel", "absent_panel", "page_data", "script_json", "DASHES"]

# matplotlib line styles (lanes.MARK_STYLES) as SVG stroke-dasharray values.
DASHES = {"-": "", "--": "6 3", ":": "2 2", "-.": "6 2 2 2"}


def _cpu_label(cpu: int, panic_cpu: int | None) -> str:
    return f"CPU{cpu} (panic)" if cpu == panic_cpu else f"CPU{cpu}"


def panel(label: str, clock: str, lanes: Lanes, subset_of: str = "as timeline.png does") -> dict:
    """One source's swimlanes: `label` heads the lanes, `clock` names the time axis."""
    cpus = shown_cpus(lanes.ncpus, lanes.panic_cpu)
    note = subset_note(lanes.ncpus, lanes.panic_cpu)
    return {
        "label": label,
        "clock": clock,
        "note": f"{note} ({subset_of})" if note else "",
        "start_ns": lanes.start_ns,
        "end_ns": lanes.end_ns,
        "zoom_ns": list(lanes.zoom_ns),
        "cpus": [{"cpu": c, "label": _cpu_label(c, lanes.panic_cpu),
                  "iv": [(s, e, state) for s, e, state in lanes.cpus[c]]} for c in cpus],
        "marks": [{"name": name, "label": lbl, "colour": colour, "dash": DASHES[style], "ns": ns}
                  for name, ns, (lbl, colour, style) in marks_in_order(lanes.marks_ns)],
    }


def absent_panel(label: str, why: str) -> dict:
    """A source with no lanes (no lab run): the page says why in their place."""
    return {"label": label, "absent": why}


def page_data(panels: list[dict]) -> dict:
    """All panels of a page, states numbered once: intervals carry the index."""
    seen = {st for p in panels for c in p.get("cpus", ()) for _s, _e, st in c["iv"]}
    names = [s for s in STATE_COLOURS if s in seen] + sorted(seen - set(STATE_COLOURS))
    index = {s: k for k, s in enumerate(names)}
    out = []
    for p in panels:
        if "cpus" in p:
            p = {**p, "cpus": [{**c, "iv": [x for s, e, st in c["iv"] for x in (s, e, index[st])]}
                               for c in p["cpus"]]}
        out.append(p)
    return {"states": [[s, STATE_COLOURS.get(s, UNKNOWN_STATE_COLOUR)] for s in names],
            "panels": out}


def script_json(data: dict) -> str:
    """`data` as JSON that is safe inside a `<script>` element."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
