/* tuneforge console: the sweep page. The trials table, every trial's evaluation curve on one chart, and a
   scatter of one searched parameter against each trial's best metric; the winner is marked. The page follows
   /api/sweeps/ID while trials are queued or running. window.tfSweep holds what is drawn (tests read it). */
"use strict";
(function () {
  let sweep = JSON.parse(document.getElementById("sweep-data").textContent);
  const keys = Object.keys(sweep.space || {});
  const mf = TF.metricFormat(sweep.metric);  // its unit, scale and digits (TF.V.metric_formats)
  const fmtMetric = function (v) { return TF.num(v) ? TF.metricValue(v, sweep.metric) : "–"; };
  const chart = new TF.Chart("sweval", document.getElementById("chart-sweval"), {  // drawn scaled: accuracies in %
    unit: mf.unit, format: function (v) { return TF.fixed(v, mf.digits) + " " + mf.unit; }, series: [], emptyText: "No evaluation yet." });
  const state = window.tfSweep = { sweep: sweep, scatter: [], curves: {}, loaded: 0 };
  const param = function (v) { return TF.num(v) ? TF.sci(v) : TF.yamlScalar(v); };
  const labelOf = function (t) {
    return "#" + t.id + " " + keys.map(function (k) { return k + "=" + param(t.params[k]); }).join(" ");
  };

  function renderHead() {
    const cells = ["Task"].concat(keys).concat(["Status", "Best " + sweep.metric, "Peak host", "Peak GPU", "Time", "Steps", "Note"]);
    document.getElementById("sweep-head").innerHTML = cells.map(function (c, i) {
      const num = i > 0 && (i <= keys.length || i >= keys.length + 2 && i <= keys.length + 6);
      return "<th" + (num ? ' class="num"' : "") + ">" + TF.esc(c) + "</th>";
    }).join("");
  }

  function renderRows() {
    const winner = sweep.winner ? sweep.winner.id : null;
    document.querySelector("#sweep-trials tbody").innerHTML = sweep.trials.map(function (t) {
      const p = t.progress || {};
      const note = t.id === winner ? "<strong>★ winner</strong>" : TF.esc(t.error || "");
      return '<tr data-task="' + t.id + '"' + (t.id === winner ? ' class="winner"' : "") + ">" +
        '<td><a href="/tasks/' + t.id + '">#' + t.id + "</a></td>" +
        keys.map(function (k) { return '<td class="num" data-key="' + TF.esc(k) + '">' + TF.esc(param(t.params[k])) + "</td>"; }).join("") +
        "<td>" + TF.badge(t.status) + '</td><td class="num best">' + fmtMetric(t.best_metric) + "</td>" +
        '<td class="num">' + TF.gib(t.peak_host_gib) + '</td><td class="num">' + TF.gib(t.peak_gpu_gib) + "</td>" +
        '<td class="num">' + TF.duration(t.time_s) + '</td><td class="num">' +
        (TF.num(p.step) ? p.step + (TF.num(p.total_steps) ? " / " + p.total_steps : "") : "–") + "</td>" +
        '<td class="small">' + note + "</td></tr>";
    }).join("");
  }

  function renderWinner() {
    const box = document.getElementById("sweep-winner");
    const w = sweep.winner;
    box.hidden = !w;
    if (!w) return;
    document.getElementById("winner-text").innerHTML = "Task <a href=\"/tasks/" + w.id + "\">#" + w.id + "</a> · " +
      keys.map(function (k) { return "<code>" + TF.esc(k + "=" + param(w.params[k])) + "</code>"; }).join(" ") +
      " · best " + TF.esc(sweep.metric) + ' <strong id="winner-metric">' + fmtMetric(w.best_metric) + "</strong>";
    document.getElementById("deploy-button").dataset.task = w.id;
    document.getElementById("export-button").dataset.task = w.id;  // deploy.js: the task page's Export GGUF
    document.getElementById("winner-clone").href = "/tasks/new?clone=" + w.id;
    document.getElementById("winner-open").href = "/tasks/" + w.id;
    document.getElementById("winner-compare").href = "/compare?ids=" + sweep.trials.map(function (t) { return t.id; }).join(",");
    document.getElementById("winner-config").textContent = TF.yaml(w.config || {});
  }

  function render() {
    document.getElementById("sweep-status").innerHTML = TF.badge(sweep.status);
    document.getElementById("sweep-stop").hidden = sweep.status === "finished";
    renderRows();
    renderWinner();
    drawScatter();
  }

  async function loadCurve(t, i) {
    const idx = chart.ensureSeries(labelOf(t), TF.PALETTE[i % TF.PALETTE.length]);
    const rows = await TF.api("GET", "/api/tasks/" + t.id + "/metrics?after=0");
    const points = [];
    rows.forEach(function (r) {
      const v = r[sweep.metric];
      if (TF.num(r.step) && TF.num(v)) { chart.put(r.step, idx, v * mf.scale); points.push([r.step, v]); }
    });
    state.curves[t.id] = points;
  }

  async function loadCurves() {
    try {
      await Promise.all(sweep.trials.map(loadCurve));
    } catch (e) { TF.notify(e.message, true); }
    state.loaded++;
  }

  renderHead();
  const select = document.getElementById("scatter-key");
  select.innerHTML = keys.map(function (k) { return "<option>" + TF.esc(k) + "</option>"; }).join("");
  select.addEventListener("change", drawScatter);

  function drawScatter() {
    const key = select.value || keys[0];
    const W = 540, H = 260, L = 92, R = 16, T = 12, B = 44;
    const pts = sweep.trials.filter(function (t) { return TF.num(t.best_metric); }).map(function (t) {
      return { id: t.id, x: t.params[key], y: t.best_metric, winner: sweep.winner && sweep.winner.id === t.id };
    });
    state.scatter = pts.map(function (p) { return { id: p.id, x: p.x, y: p.y }; });
    const box = document.getElementById("sweep-scatter");
    if (!pts.length) { box.innerHTML = '<div class="chart-empty">No trial has a ' + TF.esc(sweep.metric) + " yet.</div>"; return; }
    const numeric = pts.every(function (p) { return TF.num(p.x); });
    const cats = numeric ? [] : Array.from(new Set(pts.map(function (p) { return TF.yamlScalar(p.x); })));
    const xs = pts.map(function (p) { return numeric ? p.x : cats.indexOf(TF.yamlScalar(p.x)); });
    const logX = numeric && xs.every(function (x) { return x > 0; }) && Math.max.apply(null, xs) / Math.min.apply(null, xs) >= 20;
    const tx = function (x) { return logX ? Math.log10(x) : x; };
    let x0 = Math.min.apply(null, xs.map(tx)), x1 = Math.max.apply(null, xs.map(tx));
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    const ysv = pts.map(function (p) { return p.y; });
    let y0 = Math.min.apply(null, ysv), y1 = Math.max.apply(null, ysv);
    if (y0 === y1) { y0 -= Math.abs(y0) * 0.01 || 1; y1 += Math.abs(y1) * 0.01 || 1; }
    const pad = (y1 - y0) * 0.08;
    y0 -= pad; y1 += pad;
    const px = function (x) { return L + (tx(x) - x0) / (x1 - x0) * (W - L - R) * 0.9 + (W - L - R) * 0.05; };
    const py = function (y) { return T + (1 - (y - y0) / (y1 - y0)) * (H - T - B); };
    let svg = '<svg viewBox="0 0 ' + W + " " + H + '" width="100%" role="img" aria-label="' + TF.esc(key) + " against best " + TF.esc(sweep.metric) + '">';
    svg += '<line x1="' + L + '" y1="' + (H - B) + '" x2="' + (W - R) + '" y2="' + (H - B) + '" stroke="#999"/>';
    svg += '<line x1="' + L + '" y1="' + T + '" x2="' + L + '" y2="' + (H - B) + '" stroke="#999"/>';
    [y0 + pad, (y0 + y1) / 2, y1 - pad].forEach(function (y) {
      svg += '<text x="' + (L - 6) + '" y="' + (py(y) + 4) + '" text-anchor="end" font-size="11">' + TF.esc(fmtMetric(y)) + "</text>";
    });
    const ticks = numeric ? Array.from(new Set(pts.map(function (p) { return p.x; }))) : cats.map(function (c, i) { return i; });
    ticks.forEach(function (x, i) {
      const label = numeric ? TF.sci(x) : cats[i];
      svg += '<text x="' + px(x) + '" y="' + (H - B + 16) + '" text-anchor="middle" font-size="11">' + TF.esc(label) + "</text>";
    });
    svg += '<text x="' + ((L + W - R) / 2) + '" y="' + (H - 6) + '" text-anchor="middle" font-size="12">' + TF.esc(key) + (logX ? " (log scale)" : "") + "</text>";
    pts.forEach(function (p, i) {
      const cx = px(xs[i]), cy = py(p.y);
      svg += '<circle class="pt" data-task="' + p.id + '" cx="' + cx.toFixed(1) + '" cy="' + cy.toFixed(1) + '" r="' + (p.winner ? 7 : 5) + '" fill="' +
        (p.winner ? "#2b8a3e" : "#2456c7") + '" fill-opacity="0.8"><title>#' + p.id + " " + TF.esc(key + "=" + param(p.x)) + ": " + fmtMetric(p.y) + (p.winner ? " (winner)" : "") + "</title></circle>";
    });
    box.innerHTML = svg + "</svg>";
  }

  document.getElementById("sweep-stop").addEventListener("click", async function () {
    try { sweep = await TF.api("POST", "/api/sweeps/" + sweep.id + "/stop"); state.sweep = sweep; render(); }
    catch (e) { TF.notify(e.message, true); }
  });

  async function follow() {
    if (sweep.status === "finished") return;
    await new Promise(function (r) { setTimeout(r, 2000); });
    try {
      sweep = await TF.api("GET", "/api/sweeps/" + sweep.id);
      state.sweep = sweep;
      render();
      await loadCurves();
    } catch (e) { TF.notify(e.message, true); }
    follow();
  }

  render();
  loadCurves().then(follow);
})();
