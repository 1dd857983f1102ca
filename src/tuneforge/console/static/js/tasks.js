/* Tasks page: the list, refreshed from /api/tasks, filtered by status and name; per-row actions. */
"use strict";
(function () {
  const tbody = document.querySelector("#tasks-table tbody");
  const statusSel = document.getElementById("status-filter");
  const nameInput = document.getElementById("name-filter");
  const compareBtn = document.getElementById("compare-selected");
  const selected = new Set();
  let tasks = JSON.parse(document.getElementById("tasks-data").textContent);

  function cell(label, html, cls) {
    return '<td data-label="' + TF.esc(label) + '"' + (cls ? ' class="' + cls + '"' : "") + ">" + html + "</td>";
  }

  function actions(t) {
    const out = [];
    if (TF.isActive(t)) out.push('<button type="button" data-act="stop">Stop</button>');
    if (TF.isResumable(t)) out.push('<button type="button" data-act="resume">Resume</button>');
    out.push('<button type="button" data-act="clone" title="Open the new-task form with this task\'s settings">Clone</button>');
    if (!TF.isActive(t)) out.push('<button type="button" class="danger" data-act="delete">Delete</button>');
    return '<div class="actions">' + out.join("") + "</div>";
  }

  function row(t) {
    const c = TF.resolved(t.config);  // a key the task leaves unset shows its default, as the run used it
    const p = t.progress || {};
    const frac = TF.num(p.fraction) ? p.fraction : (TF.isSucceeded(t) ? 1 : 0);
    const stepText = TF.stepText(t);
    const times = TF.taskTimes(t);
    const best = TF.esc(TF.metric(t.best_metric, t.best_metric_name));
    return '<tr data-id="' + t.id + '">' +
      cell("select", '<input type="checkbox" aria-label="select task ' + TF.esc(t.name || t.id) + ' for comparison"' + (selected.has(String(t.id)) ? " checked" : "") + ">") +
      cell("Name", '<a href="/tasks/' + t.id + '">' + TF.esc(t.name || ("task " + t.id)) + '</a> <span class="muted small">#' + t.id + "</span>") +
      cell("Strategy", TF.esc(String(c.training_strategy).toUpperCase())) +
      cell("Method", TF.esc(TF.methodLabel(c))) +
      cell("Model", "<code>" + TF.esc(c.model) + "</code>") +
      cell("Status", TF.badge(t.status) + (t.error ? '<div class="small muted">' + TF.esc(t.error).slice(0, 140) + "</div>" : "") +
        (TF.isQueued(t) && t.wait_reason ? '<div class="small muted wait-reason">' + TF.esc(t.wait_reason) + "</div>" : "")) +
      cell("Progress", '<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="' + Math.round(frac * 100) + '"><div style="width:' + (frac * 100).toFixed(1) + '%"></div></div><div class="small muted">' + TF.pct(frac) + (stepText ? " · " + stepText : "") + "</div>") +
      cell("Elapsed / ETA", TF.duration(times.elapsed) + (TF.num(times.eta) ? '<div class="small muted">ETA ' + TF.duration(times.eta) + "</div>" : ""), "num") +
      cell("Best eval", best, "num") +
      cell("Peak GPU", TF.gib(t.peak_gpu_gib), "num") +
      cell("Peak host", TF.gib(t.peak_host_gib), "num") +
      cell("Actions", actions(t)) + "</tr>";
  }

  function visible() {
    const s = statusSel.value, q = nameInput.value.trim().toLowerCase();
    return tasks.filter(function (t) {
      if (s && t.status !== s) return false;
      if (!q) return true;
      return ((t.name || "") + " " + TF.resolved(t.config).model + " #" + t.id).toLowerCase().indexOf(q) >= 0;
    });
  }

  function draw() {
    const shown = visible();
    document.getElementById("tasks-empty").hidden = tasks.length > 0;
    document.getElementById("tasks-card").hidden = tasks.length === 0 || shown.length === 0;
    document.getElementById("tasks-none-match").hidden = !(tasks.length > 0 && shown.length === 0);
    // Keep focus on the control the user is on when the rows are redrawn.
    const focused = document.activeElement && tbody.contains(document.activeElement)
      ? [document.activeElement.closest("tr").dataset.id, document.activeElement.dataset.act || "check"] : null;
    tbody.innerHTML = shown.map(row).join("");
    if (focused) {
      const tr = tbody.querySelector('tr[data-id="' + focused[0] + '"]');
      const el = tr && (focused[1] === "check" ? tr.querySelector("input") : tr.querySelector('[data-act="' + focused[1] + '"]'));
      if (el) el.focus();
    }
    compareBtn.disabled = selected.size < 2;
  }

  async function refresh() {
    try {
      tasks = await TF.api("GET", "/api/tasks");
      draw();
    } catch (e) { /* the next poll retries; the page keeps the last list */ }
  }

  tbody.addEventListener("click", async function (ev) {
    const btn = ev.target.closest("button[data-act]");
    if (!btn) return;
    const id = btn.closest("tr").dataset.id, act = btn.dataset.act;
    if (act === "clone") { window.location.href = "/tasks/new?clone=" + id; return; }
    btn.disabled = true;
    try {
      const res = await TF.taskAction(id, act);
      if (res !== null) TF.notify(act === "delete" ? "Task " + id + " deleted." : "Task " + id + ": " + act + " requested.");
    } catch (e) { TF.notify(e.message, true); }
    await refresh();
  });
  tbody.addEventListener("change", function (ev) {
    if (ev.target.type !== "checkbox") return;
    const id = ev.target.closest("tr").dataset.id;
    if (ev.target.checked) selected.add(id); else selected.delete(id);
    compareBtn.disabled = selected.size < 2;
  });
  compareBtn.addEventListener("click", function () {
    window.location.href = "/compare?ids=" + Array.from(selected).join(",");
  });
  statusSel.addEventListener("change", function () {
    const url = new URL(window.location.href);
    if (statusSel.value) url.searchParams.set("status", statusSel.value); else url.searchParams.delete("status");
    history.replaceState(null, "", url);
    draw();
  });
  nameInput.addEventListener("input", draw);

  draw();
  // Live: poll faster while something runs (the list is small; one request per tick).
  (function tick() {
    const active = tasks.some(TF.isActive);
    setTimeout(function () { refresh().then(tick); }, active ? 1500 : 5000);
  })();
})();
