/* Compare page: each task's curves as one series per chart (same colour for a task on every chart). */
"use strict";
(function () {
  const tasks = JSON.parse(document.getElementById("compare-data").textContent);
  const mk = function (name, el, unit, fmt, xKind) {
    const box = document.getElementById(el);
    return new TF.Chart(name, box, { unit: unit, format: fmt, xKind: xKind, series: [],
      yMin0: name !== "closs" && name !== "ceval", emptyText: box.dataset.empty });
  };
  const lossUnit = TF.metricFormat("loss").unit, lossFmt = function (v) { return TF.metricValue(v, "loss"); };
  const charts = {
    loss: mk("closs", "chart-closs", lossUnit, lossFmt), eval: mk("ceval", "chart-ceval", lossUnit, lossFmt),
    lr: mk("clr", "chart-clr", "", TF.sci), tps: mk("ctps", "chart-ctps", "tokens/s", TF.rate),
    host: mk("chost", "chart-chost", "GiB", TF.gib, "time"), gpu: mk("cgpu", "chart-cgpu", "GiB", TF.gib, "time"),
  };
  window.tfCompare = { loaded: 0 };

  tasks.forEach(async function (t, i) {
    const label = "#" + t.id + " " + (t.name || "");
    const color = TF.PALETTE[i % TF.PALETTE.length];
    const idx = {};
    Object.keys(charts).forEach(function (k) { idx[k] = charts[k].ensureSeries(label, color); });
    try {
      const [metrics, resources] = await Promise.all([
        TF.api("GET", "/api/tasks/" + t.id + "/metrics?after=0"), TF.api("GET", "/api/tasks/" + t.id + "/resources?after=0")]);
      metrics.forEach(function (r) {
        if (!TF.num(r.step)) return;
        charts.loss.put(r.step, idx.loss, r.loss);
        charts.eval.put(r.step, idx.eval, r.eval_loss);
        charts.lr.put(r.step, idx.lr, r.learning_rate);
        charts.tps.put(r.step, idx.tps, r.tokens_per_second);
      });
      let t0 = null;
      resources.forEach(function (r) {
        if (!TF.num(r.time)) return;
        if (t0 === null) t0 = r.time;
        const x = Math.round((r.time - t0) * 10) / 10;
        charts.host.put(x, idx.host, r.host_rss_gib);
        let gpu = null;
        Object.keys(r).forEach(function (k) { if (/^gpu\d+_used_gib$/.test(k)) gpu = (gpu || 0) + r[k]; });
        if (gpu !== null) charts.gpu.put(x, idx.gpu, gpu);
      });
    } catch (e) { TF.notify("Task " + t.id + ": " + e.message, true); }
    window.tfCompare.loaded++;
  });
})();
