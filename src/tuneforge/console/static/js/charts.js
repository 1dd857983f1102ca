/* tuneforge console: line charts over the vendored uPlot. Every chart keeps its points by x value, so
   points that arrive twice (a reconnect replaying events) or out of order are merged, never duplicated.
   TF.charts[name].u is the uPlot instance (its .data is what is drawn); tests read it. */
"use strict";
window.TF = window.TF || {};
TF.charts = {};

TF.PALETTE = ["#2456c7", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#5c940d", "#e67700"];

/**
 * new TF.Chart(name, element, {series: [{label, color, dash}], unit, xKind: "step"|"time", format})
 * unit: the y unit shown on the axis and in the legend; format(v) formats one y value (with unit).
 */
TF.Chart = function (name, el, opts) {
  this.name = name;
  this.el = el;
  this.opts = opts;
  this.points = new Map();  // x -> array of y (one per series, null where absent)
  this.u = null;
  this.pending = false;
  this.empty = document.createElement("div");
  this.empty.className = "chart-empty";
  this.empty.textContent = opts.emptyText || "No data yet.";
  el.appendChild(this.empty);
  TF.charts[name] = this;
  const self = this;
  if (window.ResizeObserver) {
    new ResizeObserver(function () { if (self.u) self.u.setSize(self.size()); }).observe(el);
  }
};

TF.Chart.prototype.size = function () {
  return { width: Math.max(240, this.el.clientWidth - 4), height: this.opts.height || 220 };
};

/** Add series (e.g. one per task on the compare page) before or after data arrived. */
TF.Chart.prototype.ensureSeries = function (label, color, dash) {
  const idx = this.opts.series.findIndex(function (s) { return s.label === label; });
  if (idx >= 0) return idx;
  this.opts.series.push({ label: label, color: color, dash: dash });
  this.points.forEach(function (ys) { ys.push(null); });
  if (this.u) { this.u.destroy(); this.u = null; }
  this.schedule();
  return this.opts.series.length - 1;
};

/** Set the y of series index ``i`` at ``x``. */
TF.Chart.prototype.put = function (x, i, y) {
  if (!TF.num(x) || y === undefined || y === null || !isFinite(y)) return;
  let ys = this.points.get(x);
  if (!ys) {
    ys = this.opts.series.map(function () { return null; });
    this.points.set(x, ys);
  }
  ys[i] = y;
  this.schedule();
};

TF.Chart.prototype.schedule = function () {
  if (this.pending) return;
  this.pending = true;
  const self = this;
  (window.requestAnimationFrame || setTimeout)(function () { self.pending = false; self.draw(); });
};

TF.Chart.prototype.data = function () {
  const xs = Array.from(this.points.keys()).sort(function (a, b) { return a - b; });
  const cols = [xs];
  for (let i = 0; i < this.opts.series.length; i++) {
    const self = this;
    cols.push(xs.map(function (x) { return self.points.get(x)[i]; }));
  }
  return cols;
};

function lastValue(col) {
  for (let i = (col || []).length - 1; i >= 0; i--) if (col[i] !== null && col[i] !== undefined) return col[i];
  return null;
}

TF.Chart.prototype.config = function () {
  const o = this.opts;
  const fmt = o.format || function (v) { return TF.sci(v) + (o.unit ? " " + o.unit : ""); };
  const xfmt = o.xKind === "time" ? TF.duration : function (v) { return TF.num(v) ? "step " + v : "–"; };
  const series = [{ label: o.xKind === "time" ? "elapsed" : "step",
    value: function (u, v, sidx, idx) { return xfmt(idx === null || idx === undefined ? lastValue(u.data[0]) : v); } }];
  o.series.forEach(function (s, i) {
    series.push({
      label: s.label, stroke: s.color || TF.PALETTE[i % TF.PALETTE.length], width: s.width || 2,
      dash: s.dash, spanGaps: true,
      // Away from the cursor the legend shows the latest value, so it reads as a live status line.
      value: function (u, v, sidx, idx) {
        if (idx === null || idx === undefined) v = lastValue(u.data[sidx]);
        return v === null || v === undefined ? "–" : fmt(v);
      },
    });
  });
  const yAxis = { label: o.unit || "", size: 64, values: function (u, vals) { return vals.map(function (v) { return TF.sci(v); }); } };
  const xAxis = {
    label: o.xKind === "time" ? "elapsed time" : "optimizer step",
    // Steps are whole numbers; elapsed time ticks at whole seconds and minutes.
    incrs: o.xKind === "time" ? [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400]
      : [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000, 100000],
    values: function (u, vals) { return vals.map(function (v) { return o.xKind === "time" ? TF.clock(v) : String(v); }); },
  };
  const scales = { x: { time: false } };
  if (o.yMin0) scales.y = { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.05 : 1]; } };
  return Object.assign(this.size(), { series: series, axes: [xAxis, yAxis], scales: scales, legend: { live: true } });
};

TF.Chart.prototype.draw = function () {
  if (!this.points.size) return;
  const data = this.data();
  if (!this.u) {
    this.empty.remove();
    this.u = new uPlot(this.config(), data, this.el);
  } else {
    this.u.setData(data);
  }
};

/** The points of one series as [[x, y], ...] (what the chart holds), for tests and debugging. */
TF.Chart.prototype.seriesPoints = function (label) {
  const i = this.opts.series.findIndex(function (s) { return s.label === label; });
  if (i < 0) return [];
  const out = [];
  const xs = Array.from(this.points.keys()).sort(function (a, b) { return a - b; });
  const self = this;
  xs.forEach(function (x) { const y = self.points.get(x)[i]; if (y !== null && y !== undefined) out.push([x, y]); });
  return out;
};
