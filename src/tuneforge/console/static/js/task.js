/* Task page = the monitoring page. Loads the task's whole history (metrics, resources, log tail) from the
   API, then follows the server-sent event stream from exactly that position; after a network drop the
   browser reconnects with Last-Event-ID (or we reopen with ?position=M-R-L), so no point is lost or doubled. */
"use strict";
(function () {
  let task = JSON.parse(document.getElementById("task-data").textContent);
  const id = task.id;
  const base = "/api/tasks/" + id;
  const live = window.tfLive = { metrics: 0, resources: 0, logOffset: 0, connected: false, events: 0 };
  const LOG_KEEP = 200000;  // characters of log kept on the page
  let t0 = null;  // time of the first resource sample: the memory charts' zero
  let source = null, retry = null;

  // -- charts ------------------------------------------------------------------------------------------------
  // GPU utilisation, temperature and power (resources.jsonl's gpu{i}_util, gpu{i}_temperature_c, gpu{i}_power_w,
  // sampled by NVML): one series per GPU; a run without them (a CPU machine) leaves the charts saying so.
  function gpuActivityChart(name, unit, digits) {
    return new TF.Chart(name, document.getElementById("chart-" + name), { unit: unit, xKind: "time", yMin0: true,
      format: function (v) { return TF.fixed(v, digits) + " " + unit; }, series: [],
      emptyText: "No GPU: this task's samples have no NVML readings (a CPU-only machine or no NVIDIA driver)." });
  }
  const GPU_ACTIVITY = [["util", "gpu-util"], ["temperature_c", "gpu-temp"], ["power_w", "gpu-power"]];
  const lossFmt = function (v) { return TF.metricValue(v, "loss"); };
  const charts = {
    loss: new TF.Chart("loss", document.getElementById("chart-loss"), { unit: TF.metricFormat("loss").unit, format: lossFmt,
      series: [{ label: "training loss" }, { label: "eval loss", color: "#d9480f" }] }),
    lr: new TF.Chart("lr", document.getElementById("chart-lr"), { unit: "", yMin0: true,
      format: function (v) { return TF.sci(v); }, series: [{ label: "learning rate", color: "#862e9c" }] }),
    tps: new TF.Chart("tps", document.getElementById("chart-tps"), { unit: "tokens/s", yMin0: true,
      format: TF.rate, series: [{ label: "tokens/s", color: "#2b8a3e" }] }),
    gpu: new TF.Chart("gpu", document.getElementById("chart-gpu"), { unit: "GiB", xKind: "time", yMin0: true,
      format: TF.gib, series: [], emptyText: "No GPU samples: on a machine without a GPU the run uses host memory only." }),
    "gpu-util": gpuActivityChart("gpu-util", "%", 0),
    "gpu-temp": gpuActivityChart("gpu-temp", "°C", 0),
    "gpu-power": gpuActivityChart("gpu-power", "W", 1),
    host: new TF.Chart("host", document.getElementById("chart-host"), { unit: "GiB", xKind: "time", yMin0: true,
      format: TF.gib, series: [{ label: "task (RSS)", color: "#2456c7" }, { label: "all processes", color: "#e67700" },
        { label: "host total", color: "#555", dash: [6, 4], width: 1.5 }] }),
  };
  // The strategy's own charts, as the server lists them (console/strategy_charts.py): DPO, KTO, GRPO, reward.
  const STRATEGY = JSON.parse(document.getElementById("strategy-charts").textContent);
  const PALETTE = ["#2456c7", "#d9480f", "#2b8a3e", "#e67700", "#862e9c", "#c2255c", "#0b7285"];
  STRATEGY.forEach(function (ch) {
    const unit = ch.unit, digits = ch.digits;
    const fmt = function (v) { return TF.fixed(v, digits) + (unit ? " " + unit : ""); };
    const fixed = ch.series.filter(function (s) { return s[1].indexOf("*") < 0; });
    charts[ch.id] = new TF.Chart(ch.id, document.getElementById("chart-" + ch.id), { unit: unit, format: fmt,
      yMin0: !!ch.min0, series: fixed.map(function (s, i) {
        return { label: s[0], color: PALETTE[i % PALETTE.length], dash: /^eval /.test(s[0]) ? [4, 3] : undefined };
      }) });
  });
  // The latest generated answers next to their references (eval_generation_steps), refreshed when a new
  // evaluation of them is logged.
  const genBox = document.getElementById("generations");
  let genStep = null;
  async function showGenerations() {
    if (!genBox) return;
    try {
      const latest = (await TF.api("GET", base + "/generations?last=1"))[0];
      if (!latest || latest.step === genStep) return;
      genStep = latest.step;
      genBox.innerHTML = '<p class="small muted">Step ' + TF.esc(latest.step) + " · " + latest.rows.length + " answers</p>" +
        latest.rows.map(function (r) {
          return '<div class="generation"><p class="small"><strong>Prompt</strong> <code>' + TF.esc(r.source || "") + "</code></p>" +
            '<pre class="block">' + TF.esc(r.prompt) + "</pre>" +
            '<div class="grid2"><div><p class="small"><strong>Answer</strong> · BLEU ' + TF.fixed(r.bleu, 1) + " · ROUGE-L " +
            TF.fixed(100 * r.rouge_l, 1) + ' %</p><pre class="block">' + TF.esc(r.answer) + "</pre></div>" +
            '<div><p class="small"><strong>Reference</strong></p><pre class="block">' + TF.esc(r.reference) + "</pre></div></div></div>";
        }).join("");
    } catch (e) { /* the answers stay as they were; the next evaluation tries again */ }
  }

  function putStrategy(r) {
    if (TF.num(r.eval_generation_bleu)) showGenerations();
    STRATEGY.forEach(function (ch) {
      const chart = charts[ch.id], scale = ch.scale || 1;
      ch.series.forEach(function (s) {
        const key = s[1];
        if (key.indexOf("*") >= 0) {  // e.g. reward/*: one series per matching key the run logs
          const prefix = key.slice(0, key.indexOf("*"));
          Object.keys(r).forEach(function (k) {
            if (k.indexOf(prefix) === 0 && TF.num(r[k])) chart.put(r.step, chart.ensureSeries(k, PALETTE[(chart.opts.series.length) % PALETTE.length]), r[k] * scale);
          });
        } else if (TF.num(r[key])) {
          chart.put(r.step, chart.ensureSeries(s[0]), r[key] * scale);
        }
      });
    });
  }

  let lastLoss = null, lastRate = null;
  function addMetric(r) {
    if (!r || !TF.num(r.step)) return;
    const s = r.step;
    if (TF.num(r.loss)) { charts.loss.put(s, 0, r.loss); lastLoss = r.loss; }
    if (TF.num(r.eval_loss)) charts.loss.put(s, 1, r.eval_loss);
    if (TF.num(r.learning_rate)) charts.lr.put(s, 0, r.learning_rate);
    if (TF.num(r.tokens_per_second)) { charts.tps.put(s, 0, r.tokens_per_second); lastRate = r.tokens_per_second; }
    putStrategy(r);
  }

  function addResource(r) {
    if (!r || !TF.num(r.time)) return;
    if (t0 === null) t0 = r.time;
    const x = Math.round((r.time - t0) * 10) / 10;
    charts.host.put(x, 0, r.host_rss_gib);
    if (TF.num(r.host_total_gib) && TF.num(r.host_available_gib)) charts.host.put(x, 1, r.host_total_gib - r.host_available_gib);
    charts.host.put(x, 2, r.host_total_gib);
    Object.keys(r).forEach(function (k) {
      const m = /^gpu(\d+)_used_gib$/.exec(k);
      if (!m) return;
      const g = m[1], color = TF.PALETTE[(+g) % TF.PALETTE.length];
      charts.gpu.put(x, charts.gpu.ensureSeries("GPU " + g + " used", color), r[k]);
      if (TF.num(r["gpu" + g + "_total_gib"])) charts.gpu.put(x, charts.gpu.ensureSeries("GPU " + g + " total", color, [6, 4]), r["gpu" + g + "_total_gib"]);
      GPU_ACTIVITY.forEach(function (a) {
        const v = r["gpu" + g + "_" + a[0]];
        if (TF.num(v)) charts[a[1]].put(x, charts[a[1]].ensureSeries("GPU " + g, color), v);
      });
    });
    applyFit();
  }

  // "Zoom to the task's use": hide the total lines so the y axis fits the task's own curves.
  const fitBox = document.getElementById("fit-memory");
  function applyFit() {
    [charts.host, charts.gpu].forEach(function (ch) {
      if (!ch.u) return;
      ch.opts.series.forEach(function (s, i) {
        const isTotal = / total$|^all processes$/.test(s.label);
        if (isTotal && ch.u.series[i + 1].show === fitBox.checked) ch.u.setSeries(i + 1, { show: !fitBox.checked });
      });
    });
  }
  fitBox.addEventListener("change", applyFit);

  // -- log ---------------------------------------------------------------------------------------------------
  const logEl = document.getElementById("log");
  const follow = document.getElementById("follow-log");
  function addLog(text) {
    if (!text) return;
    let all = logEl.textContent + text;
    if (all.length > LOG_KEEP) all = "…\n" + all.slice(all.length - LOG_KEEP);
    logEl.textContent = all;
    if (follow.checked) logEl.scrollTop = logEl.scrollHeight;
  }

  // -- header, stats, actions ------------------------------------------------------------------------------------
  function showTask(t) {
    task = t;
    document.getElementById("task-status").innerHTML = TF.badge(t.status);
    document.getElementById("task-method").textContent = TF.methodLabel(t.config);
    const p = t.progress || {};
    const frac = TF.num(p.fraction) ? p.fraction : (TF.isSucceeded(t) ? 1 : 0);
    const bar = document.getElementById("task-progress");
    bar.setAttribute("aria-valuenow", String(Math.round(frac * 100)));
    bar.firstElementChild.style.width = (frac * 100).toFixed(1) + "%";
    const steps = TF.stepText(t);
    document.getElementById("stat-progress").textContent = TF.pct(frac) + (steps ? " · " + steps : "");
    const times = TF.taskTimes(t);
    const attempts = TF.num(t.attempt) && t.attempt > 1 ? " (" + t.attempt + " attempts; this one " + TF.duration(times.attempt) + ")" : "";
    document.getElementById("stat-time").textContent = TF.duration(times.elapsed) + attempts + (TF.num(times.eta) ? " / ETA " + TF.duration(times.eta) : "");
    document.getElementById("stat-loss").textContent = TF.num(lastLoss) ? lossFmt(lastLoss) : "–";
    document.getElementById("stat-best").textContent = TF.metric(t.best_metric, t.best_metric_name);
    document.getElementById("stat-rate").textContent = TF.rate(lastRate);
    document.getElementById("stat-gpu").textContent = TF.num(t.peak_gpu_gib) ? TF.gib(t.peak_gpu_gib) : "– (no GPU)";
    document.getElementById("stat-host").textContent = TF.gib(t.peak_host_gib);
    document.getElementById("started-at").textContent = TF.utc(t.first_started_at || t.started_at);
    document.getElementById("finished-at").textContent = TF.utc(t.finished_at);
    const err = document.getElementById("task-error");
    err.hidden = !t.error;
    err.textContent = t.error || "";
    const waiting = document.getElementById("task-waiting");  // the memory-aware queue's reason (placement.py)
    waiting.hidden = !(TF.isQueued(t) && t.wait_reason);
    waiting.textContent = t.wait_reason || "";
    const active = TF.isActive(t);
    document.querySelector('[data-act="stop"]').disabled = !active || t.stop_requested;
    document.querySelector('[data-act="resume"]').disabled = !TF.isResumable(t);
    document.querySelector('[data-act="delete"]').disabled = active;
  }

  document.getElementById("task-actions").addEventListener("click", async function (ev) {
    const btn = ev.target.closest("button[data-act]");
    if (!btn) return;
    btn.disabled = true;
    try {
      const res = await TF.taskAction(id, btn.dataset.act);
      if (res === null) { btn.disabled = false; return; }
      if (btn.dataset.act === "delete") { window.location.href = "/tasks"; return; }
      TF.notify(btn.dataset.act === "stop" ? "Stop requested." : "Resumed: the task is queued again.");
      showTask(res);
      if (btn.dataset.act === "resume") connect();
    } catch (e) { TF.notify(e.message, true); btn.disabled = false; }
  });

  /** The outputs list (GET /api/tasks/ID/outputs: name, kind, size with its unit, what it is, download route). */
  function showOutputs(view) {
    // a finished model appears: Deploy, Chat and Export become available without a reload
    ["deploy-button", "chat-link", "export-button"].forEach(function (elId) {
      const el = document.getElementById(elId);
      if (el) el.hidden = !view.has_model;
    });
    const box = document.getElementById("outputs-list");
    if (!view.files.length) {
      box.innerHTML = '<p class="empty">No files yet: the run directory fills once the task starts.</p>';
      return;
    }
    const rows = view.files.map(function (f) {
      const name = f.url ? '<a href="' + TF.esc(f.url) + '" download><code>' + TF.esc(f.name) + "</code></a>"
        : "<code>" + TF.esc(f.name) + "/</code>";
      return '<tr><td data-label="File">' + name + '</td><td data-label="Size" class="num">' +
        TF.esc(f.kind === "folder" ? "folder" : f.size) + '</td><td data-label="What" class="small muted">' +
        TF.esc(f.description) + "</td></tr>";
    });
    box.innerHTML = '<table class="responsive"><thead><tr><th>File</th><th class="num">Size</th><th>What</th></tr>' +
      "</thead><tbody>" + rows.join("") + '</tbody></table><p class="small muted">This list is refreshed while the ' +
      "task runs and when it ends.</p>";
  }

  async function refreshOutputs() {
    try { showOutputs(await TF.api("GET", base + "/outputs")); }
    catch (e) { /* the list stays as it was; a reload shows the new one */ }
  }

  window.tfTask = { refreshOutputs: refreshOutputs };

  // -- loading and the live stream ---------------------------------------------------------------------------------
  function resetMetrics() {
    ["loss", "lr", "tps"].concat(STRATEGY.map(function (ch) { return ch.id; })).forEach(function (k) {
      if (charts[k]) { charts[k].points.clear(); charts[k].schedule(); }
    });
    live.metrics = 0;
  }

  async function loadHistory() {
    const [metrics, resources, head] = await Promise.all([
      TF.api("GET", base + "/metrics?after=0"), TF.api("GET", base + "/resources?after=0"),
      TF.api("GET", base + "/log?offset=0&limit=1")]);
    metrics.forEach(addMetric);
    live.metrics = metrics.length;
    resources.forEach(addResource);
    live.resources = resources.length;
    const start = Math.max(0, head.size - 65536);
    const tail = await TF.api("GET", base + "/log?offset=" + start + "&limit=65536");
    if (start > 0) addLog("… (earlier lines: download train.log below)\n");
    addLog(tail.text);
    live.logOffset = tail.next_offset;
  }

  function setLive(text) { document.getElementById("live-state").textContent = text; }

  function position() { return live.metrics + "-" + live.resources + "-" + live.logOffset; }

  let lastEventAt = Date.now();
  function track(ev) {
    live.events++;
    lastEventAt = Date.now();
    const parts = (ev.lastEventId || "").split("-").map(Number);
    if (parts.length === 3 && parts.every(isFinite)) {
      live.metrics = parts[0]; live.resources = parts[1]; live.logOffset = parts[2];
    }
  }

  function connect() {
    if (source) source.close();
    clearTimeout(retry);
    lastEventAt = Date.now();
    source = new EventSource(base + "/events?position=" + position());
    source.onopen = function () { live.connected = true; setLive("live"); };
    source.addEventListener("task", function (ev) {
      track(ev);
      const was = task.status;
      showTask(JSON.parse(ev.data));
      if (task.status !== was && !TF.isActive(task)) refreshOutputs();  // finished: Deploy, Chat, the model
    });
    source.addEventListener("metric", function (ev) { addMetric(JSON.parse(ev.data)); track(ev); showTask(task); });
    source.addEventListener("resource", function (ev) { addResource(JSON.parse(ev.data)); track(ev); });
    source.addEventListener("log", function (ev) { addLog(JSON.parse(ev.data).text); track(ev); });
    source.addEventListener("reset", function (ev) { resetMetrics(); track(ev); });
    source.addEventListener("end", function (ev) {
      track(ev);
      source.close();
      source = null;
      live.connected = false;
      setLive("finished");
      TF.api("GET", base).then(showTask).catch(function () {});
      refreshOutputs();
    });
    source.onerror = function () {
      live.connected = false;
      // The browser retries by itself (with Last-Event-ID) unless the stream is closed for good.
      if (source && source.readyState === EventSource.CLOSED) {
        setLive("disconnected; retrying…");
        retry = setTimeout(connect, 3000);
      } else {
        setLive("reconnecting…");
      }
    };
  }

  // Watchdog: a running task writes a resource sample every few seconds, so a stream quiet for 10 s while the
  // task runs (or a task that ended without its "end" event) means a stuck connection: reopen it from the
  // position reached. Nothing is lost or doubled: the position names every row already shown.
  setInterval(async function () {
    if (!source || Date.now() - lastEventAt < 10000) return;
    try {
      const t = await TF.api("GET", base);
      showTask(t);
      if (TF.isRunning(t) || !TF.isActive(t)) { live.reconnects = (live.reconnects || 0) + 1; connect(); }
      lastEventAt = Date.now();
    } catch (e) { /* the service is unreachable: the next tick tries again */ }
  }, 5000);
  // For tests and for a user's "reconnect" in the console: drop the stream and reopen it from the position.
  live.drop = function () {
    if (!source) return;
    source.close();
    source = null;
    live.connected = false;
    setLive("reconnecting…");
    setTimeout(connect, 500);
  };

  // The config as submitted (paths resolved, output_dir = the run directory), or with every default filled in.
  const defaults = TF.V.config_defaults;
  const allKeys = document.getElementById("all-keys");
  function shownConfig() { return allKeys.checked ? Object.assign({}, defaults, task.config || {}) : (task.config || {}); }
  function showConfig() { document.getElementById("config-yaml").textContent = TF.yaml(shownConfig()); }
  allKeys.addEventListener("change", showConfig);
  showConfig();
  document.getElementById("copy-config").addEventListener("click", function () { TF.copy(TF.yaml(shownConfig())); });
  document.getElementById("copy-run-dir").addEventListener("click", function () { TF.copy(task.run_dir || ""); });
  showOutputs(JSON.parse(document.getElementById("task-outputs").textContent));
  showTask(task);
  setInterval(function () { showTask(task); }, 1000);  // elapsed time and ETA tick between events
  // checkpoints appear while the task runs: keep the outputs list current (and catch a status change)
  let lastStatus = task.status;
  setInterval(function () {
    if (TF.isActive(task) || task.status !== lastStatus) refreshOutputs();
    lastStatus = task.status;
  }, 15000);
  loadHistory().then(function () {
    showTask(task);
    if (TF.isActive(task)) connect(); else setLive("finished");
    live.loaded = true;
  }).catch(function (e) { TF.notify("Could not load the task's history: " + e.message, true); setLive("error"); });
})();
