/* haltlab swimlanes: per-CPU hardware states over time, drawn as inline SVG.
 *
 * Reads the page's <script id="haltlab-data" type="application/json"> (built by
 * haltlab.report.swimlanes) and draws every <div class="panel" data-panel="k">:
 * a time axis with units, one lane per CPU coloured by hardware state, and a
 * vertical line per mark with its name. Zoom with the wheel (around the
 * pointer) or the buttons, pan by dragging, "reset" returns to the panic's own
 * span; hovering a lane shows the state, its start and its duration.
 *
 * Only the intervals inside the view are drawn, and a run of intervals thinner
 * than a pixel is merged into one block at least a pixel wide, coloured by the
 * state that fills most of it: a tick handler stays visible as a stripe at any
 * zoom, and a long run stays light to redraw. Hover reads the intervals
 * themselves, not the blocks, so it always names the state at that time.
 * No library and no network: the page must open from a file, offline.
 */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var LANE_H = 16, LANE_GAP = 4, LABEL_W = 96, AXIS_H = 22, MARK_ROW_H = 14, PAD_R = 14;
  var MIN_SPAN_NS = 20;
  var dataNode = document.getElementById("haltlab-data");
  if (!dataNode) { return; }
  var DATA = JSON.parse(dataNode.textContent);
  var STATES = DATA.states;

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(SVGNS, name);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { node.setAttribute(k, attrs[k]); } }
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function html(name, cls, parent, text) {
    var node = document.createElement(name);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  /* Times: the axis picks one unit for its step; tooltips give a start to the
   * nanosecond and a duration to four significant digits. */
  var UNITS = [[1e9, "s"], [1e6, "ms"], [1e3, "\u00b5s"], [1, "ns"]];
  function unitFor(ns) {
    for (var i = 0; i < UNITS.length; i++) { if (Math.abs(ns) >= UNITS[i][0]) { return UNITS[i]; } }
    return UNITS[UNITS.length - 1];
  }
  function fmtExact(ns) {
    var u = unitFor(ns), digits = Math.round(Math.log10(u[0]));
    return (ns / u[0]).toFixed(digits) + " " + u[1];
  }
  function fmtDur(ns) {
    var u = unitFor(ns), v = ns / u[0];
    return (v >= 100 ? v.toFixed(1) : v >= 10 ? v.toFixed(2) : v.toFixed(3)) + " " + u[1];
  }
  function niceStep(span, px) {
    var raw = span / Math.max(1, px / 110), p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }
  function axisUnit(step) {
    /* the largest unit in which the step is at least 0.1: 10.2 ms, not 0.0102 s */
    for (var i = 0; i < UNITS.length; i++) { if (step / UNITS[i][0] >= 0.0999) { return UNITS[i]; } }
    return UNITS[UNITS.length - 1];
  }
  function tickLabel(ns, step) {
    var u = axisUnit(step), d = Math.max(0, Math.ceil(-Math.log10(step / u[0]) - 1e-9));
    return (ns / u[0]).toFixed(d) + " " + u[1];
  }

  /* First interval index (in triples) whose end is after t. */
  function firstAfter(iv, t) {
    var lo = 0, hi = iv.length / 3;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (iv[mid * 3 + 1] <= t) { lo = mid + 1; } else { hi = mid; } }
    return lo;
  }

  function Panel(root, p) {
    this.root = root; this.p = p;
    this.home = [p.zoom_ns[0], p.zoom_ns[1]];
    this.view = this.home.slice();
    this.build();
    this.render();
  }

  Panel.prototype.build = function () {
    var self = this, p = this.p, root = this.root;
    var bar = html("div", "toolbar", root);
    function button(label, title, fn) {
      var b = html("button", "", bar, label); b.type = "button"; b.title = title;
      b.addEventListener("click", fn); return b;
    }
    button("zoom in", "zoom in around the middle (or use the wheel)", function () { self.zoomBy(0.5, 0.5); });
    button("zoom out", "zoom out around the middle", function () { self.zoomBy(2, 0.5); });
    button("whole run", "show the whole run", function () { self.setView(p.start_ns, p.end_ns); });
    button("reset", "back to the panic's own span", function () { self.setView(self.home[0], self.home[1]); });
    this.range = html("span", "range", bar);
    html("span", "hint", bar, "wheel: zoom \u00b7 drag: pan \u00b7 hover: state");
    if (p.note) { html("p", "subset", root, p.note); }
    this.box = html("div", "lanes-box", root);
    this.svg = el("svg", {"class": "lanes", role: "img", "aria-label": p.label + ": per-CPU states"}, this.box);
    this.tip = html("div", "tip", this.box);
    this.legend(root);
    this.svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      self.zoomBy(Math.exp(e.deltaY * 0.0015), self.fraction(e));
    }, {passive: false});
    this.svg.addEventListener("mousedown", function (e) {
      self.drag = {x: e.clientX, view: self.view.slice()}; e.preventDefault();
    });
    window.addEventListener("mousemove", function (e) {
      if (!self.drag) { return; }
      var dt = (e.clientX - self.drag.x) / self.plotW() * (self.drag.view[1] - self.drag.view[0]);
      self.setView(self.drag.view[0] - dt, self.drag.view[1] - dt);
    });
    window.addEventListener("mouseup", function () { self.drag = null; });
    this.svg.addEventListener("mousemove", function (e) { if (!self.drag) { self.hover(e); } });
    this.svg.addEventListener("mouseleave", function () { self.tip.style.display = "none"; });
    window.addEventListener("resize", function () { self.render(); });
  };

  Panel.prototype.legend = function (root) {
    var seen = {}, p = this.p, box = html("div", "legend", root);
    p.cpus.forEach(function (c) { for (var i = 2; i < c.iv.length; i += 3) { seen[c.iv[i]] = true; } });
    STATES.forEach(function (s, k) {
      if (!seen[k]) { return; }
      var item = html("span", "item", box);
      html("span", "swatch", item).style.background = s[1];
      item.appendChild(document.createTextNode(s[0]));
    });
    p.marks.forEach(function (m) {
      var item = html("span", "item", box);
      var svg = el("svg", {width: 22, height: 10, "class": "markkey"}, item);
      el("line", {x1: 1, y1: 5, x2: 21, y2: 5, stroke: m.colour, "stroke-width": 2, "stroke-dasharray": m.dash}, svg);
      item.appendChild(document.createTextNode(m.label + " (" + fmtExact(m.ns) + ")"));
    });
  };

  Panel.prototype.plotW = function () { return Math.max(200, this.box.clientWidth - LABEL_W - PAD_R); };
  Panel.prototype.fraction = function (e) {
    var r = this.svg.getBoundingClientRect();
    return Math.min(1, Math.max(0, (e.clientX - r.left - LABEL_W) / this.plotW()));
  };
  Panel.prototype.zoomBy = function (factor, at) {
    var v = this.view, span = v[1] - v[0], t = v[0] + at * span, s = span * factor;
    this.setView(t - at * s, t + (1 - at) * s);
  };
  Panel.prototype.setView = function (a, b) {
    var p = this.p, whole = p.end_ns - p.start_ns, span = Math.min(whole, Math.max(MIN_SPAN_NS, b - a));
    a = Math.min(Math.max(p.start_ns, a), p.end_ns - span);
    this.view = [a, a + span];
    var self = this;
    if (!this.pending) { this.pending = true; window.requestAnimationFrame(function () { self.pending = false; self.render(); }); }
  };

  Panel.prototype.markRows = function (marks, x, right) {
    /* A label goes right of its line, or left of it near the right edge, in
     * the first row where it overlaps no label already placed. */
    var ends = [], out = [];
    marks.forEach(function (m) {
      var px = x(m.ns), w = m.label.length * 6.4 + 6, flip = px + w > right;
      var a = flip ? px - w : px, r = 0;
      while (r < ends.length && ends[r] > a) { r++; }
      ends[r] = a + w; out.push({row: r, flip: flip});
    });
    this.nRows = Math.max(1, ends.length);
    return out;
  };

  Panel.prototype.render = function () {
    var p = this.p, svg = this.svg, v = this.view, W = this.plotW();
    var scale = W / (v[1] - v[0]);
    function x(ns) { return LABEL_W + (ns - v[0]) * scale; }
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var visible = p.marks.filter(function (m) { return m.ns >= v[0] && m.ns <= v[1]; });
    var rows = this.markRows(visible, x, LABEL_W + W + PAD_R);
    var top = AXIS_H + this.nRows * MARK_ROW_H + 4;
    var H = top + p.cpus.length * (LANE_H + LANE_GAP) + 4;
    svg.setAttribute("width", LABEL_W + W + PAD_R);
    svg.setAttribute("height", H);
    this.top = top;
    /* time axis */
    var step = niceStep(v[1] - v[0], W), axis = el("g", {"class": "axis"}, svg);
    for (var kt = Math.ceil(v[0] / step); kt * step <= v[1]; kt++) {
      var t = kt * step, tx = x(t);
      el("line", {x1: tx, x2: tx, y1: AXIS_H - 5, y2: H, "class": "grid"}, axis);
      el("text", {x: tx, y: AXIS_H - 8, "text-anchor": "middle"}, axis, tickLabel(t, step));
    }
    /* lanes */
    var self = this;
    p.cpus.forEach(function (c, k) {
      var y = top + k * (LANE_H + LANE_GAP);
      var g = el("g", {"class": "lane", "data-cpu": c.cpu}, svg);
      el("text", {x: LABEL_W - 6, y: y + LANE_H - 4, "text-anchor": "end", "class": "cpu"}, g, c.label);
      el("rect", {x: LABEL_W, y: y, width: W, height: LANE_H, "class": "bg"}, g);
      self.drawLane(g, c.iv, y, x, v);
    });
    /* marks: a line across every lane, the name above them */
    var mg = el("g", {"class": "marks"}, svg);
    visible.forEach(function (m, i) {
      var mx = x(m.ns), ly = AXIS_H + rows[i].row * MARK_ROW_H + 11;
      el("line", {x1: mx, x2: mx, y1: ly - 10, y2: H, stroke: m.colour, "stroke-width": 1.5,
                  "stroke-dasharray": m.dash, "class": "mark", "data-mark": m.name}, mg);
      el("text", {x: rows[i].flip ? mx - 3 : mx + 3, y: ly, fill: m.colour, "class": "marklabel",
                  "text-anchor": rows[i].flip ? "end" : "start"}, mg, m.label);
    });
    this.range.textContent = p.clock + ": " + fmtExact(v[0]) + " to " + fmtExact(v[1]) +
      " (" + fmtDur(v[1] - v[0]) + ")";
    this.root.setAttribute("data-view", Math.round(v[0]) + " " + Math.round(v[1]));
    this.root.setAttribute("data-rendered", "1");
  };

  Panel.prototype.drawLane = function (g, iv, y, x, v) {
    var n = iv.length / 3, i = firstAfter(iv, v[0]);
    var pend = null;
    function flush() {
      if (!pend) { return; }
      var best = -1, bestNs = -1;
      for (var k in pend.ns) { if (pend.ns[k] > bestNs) { bestNs = pend.ns[k]; best = +k; } }
      var r = el("rect", {x: pend.x0, y: y, width: Math.max(1, pend.x1 - pend.x0), height: LANE_H,
                          fill: STATES[best][1], "class": "st mixed", "data-state": STATES[best][0]}, g);
      r.setAttribute("data-n", pend.count);
      pend = null;
    }
    for (; i < n; i++) {
      var s = iv[i * 3], e = iv[i * 3 + 1], st = iv[i * 3 + 2];
      if (s >= v[1]) { break; }
      var x0 = Math.max(x(s), LABEL_W), x1 = Math.min(x(e), x(v[1]));
      if (x1 - x0 >= 1) {
        flush();
        el("rect", {x: x0, y: y, width: x1 - x0, height: LANE_H, fill: STATES[st][1],
                    "class": "st", "data-state": STATES[st][0]}, g);
        continue;
      }
      if (!pend) { pend = {x0: x0, x1: x1, ns: {}, count: 0}; }
      pend.x1 = x1; pend.count++;
      pend.ns[st] = (pend.ns[st] || 0) + (Math.min(e, v[1]) - Math.max(s, v[0]));
      if (pend.x1 - pend.x0 >= 1) { flush(); }
    }
    flush();
  };

  Panel.prototype.hover = function (e) {
    var p = this.p, r = this.svg.getBoundingClientRect(), v = this.view;
    var px = e.clientX - r.left, py = e.clientY - r.top;
    var k = Math.floor((py - this.top) / (LANE_H + LANE_GAP));
    if (px < LABEL_W || k < 0 || k >= p.cpus.length) { this.tip.style.display = "none"; return; }
    var t = v[0] + (px - LABEL_W) / this.plotW() * (v[1] - v[0]);
    var c = p.cpus[k], iv = c.iv, i = firstAfter(iv, t);
    var lines = [];
    if (i < iv.length / 3 && iv[i * 3] <= t) {
      var s = iv[i * 3], en = iv[i * 3 + 1];
      lines.push(c.label + ": " + STATES[iv[i * 3 + 2]][0]);
      lines.push("start " + fmtExact(s));
      lines.push("duration " + fmtDur(en - s) + " (to " + fmtExact(en) + ")");
    } else {
      lines.push(c.label + ": no state recorded at " + fmtExact(t));
    }
    var nsPerPx = (v[1] - v[0]) / this.plotW();
    p.marks.forEach(function (m) {
      if (Math.abs(m.ns - t) <= 4 * nsPerPx) { lines.push("mark: " + m.label + " at " + fmtExact(m.ns)); }
    });
    this.tip.textContent = lines.join("\n");
    this.tip.style.display = "block";
    var bw = this.box.clientWidth, left = px + 14;
    if (left + 300 > bw) { left = Math.max(0, px - 310); }
    this.tip.style.left = left + "px";
    this.tip.style.top = (py + 12) + "px";
  };

  var panels = document.querySelectorAll(".panel[data-panel]");
  for (var j = 0; j < panels.length; j++) {
    var node = panels[j], spec = DATA.panels[+node.getAttribute("data-panel")];
    if (spec && spec.cpus) { new Panel(node, spec); }
  }
})();
