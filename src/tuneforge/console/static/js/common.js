/* tuneforge console: shared helpers (API calls, number formatting with units, notices). No dependencies. */
"use strict";
window.TF = window.TF || {};

/** The pages' words from their Python owners (console/vocabulary.py, rendered by base.html): task statuses and
    what they allow, methods, strategies, how a metric is written, every config key's default. No script here
    spells its own copy of them. */
TF.V = JSON.parse(document.getElementById("tf-vocabulary").textContent);

/** Call the JSON API; resolves with the parsed body, rejects with an Error carrying the API's "detail". */
TF.api = async function (method, path, body) {
  const opts = { method: method, headers: { "Accept": "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!res.ok) {
    const err = new Error(TF.detailText(data) || (res.status + " " + res.statusText));
    err.status = res.status;
    err.data = data;
    throw err;
  }
  return data;
};

/** FastAPI's error bodies: {"detail": "text"} or {"detail": [{"loc": [...], "msg": "..."}]}. */
TF.detailText = function (data) {
  if (!data) return "";
  if (typeof data === "string") return data;
  const d = data.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map(function (x) { return (x.loc || []).join(".") + ": " + x.msg; }).join("; ");
  return JSON.stringify(d || data);
};

TF.num = function (x) { return typeof x === "number" && isFinite(x); };

/** Memory in GiB with its unit; small values in MiB so they stay readable. */
TF.gib = function (x) {
  if (!TF.num(x)) return "–";
  if (Math.abs(x) < 1) return (x * 1024).toFixed(0) + " MiB";
  return x.toFixed(x >= 100 ? 1 : 2) + " GiB";
};
TF.bytes = function (n) {
  if (!TF.num(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
};
/** Seconds as "2 h 05 min", "3 min 20 s" or "42 s". */
TF.duration = function (s) {
  if (!TF.num(s) || s < 0) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h) return h + " h " + String(m).padStart(2, "0") + " min";
  if (m) return m + " min " + String(sec).padStart(2, "0") + " s";
  return sec + " s";
};
/** Seconds as a short axis label: "45 s", "2:30 min", "1:05 h". */
TF.clock = function (s) {
  if (!TF.num(s)) return "";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") + " min";
  return Math.floor(s / 3600) + ":" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " h";
};
TF.fixed = function (x, digits) { return TF.num(x) ? x.toFixed(digits) : "–"; };
TF.sci = function (x) { return TF.num(x) ? (Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(2) : String(+x.toPrecision(4))) : "–"; };
TF.pct = function (x) { return TF.num(x) ? (x * 100).toFixed(0) + " %" : "–"; };
TF.rate = function (x) { return TF.num(x) ? (x >= 1000 ? (x / 1000).toFixed(2) + " k" : x.toFixed(0)) + " tokens/s" : "–"; };
/** The service's UTC timestamps as "2026-11-29 05:10:02 UTC" (as the pages render them server-side). */
TF.utc = function (t) { return t ? String(t).replace("T", " ").replace(/Z$/, "") + " UTC" : "–"; };
TF.seconds = function (t) {
  if (t === null || t === undefined || t === "") return null;
  if (typeof t === "number") return t;
  const ms = Date.parse(t);
  return isNaN(ms) ? null : ms / 1000;
};

TF.esc = function (s) {
  return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
    return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
  });
};

/** A short notice in the corner (also announced to screen readers). */
TF.notify = function (message, bad) {
  let box = document.getElementById("toast");
  if (!box) return;
  const item = document.createElement("div");
  if (bad) item.className = "bad";
  item.textContent = message;
  box.appendChild(item);
  setTimeout(function () { item.remove(); }, bad ? 9000 : 4000);
};

/** Copy text to the clipboard; falls back to a selected textarea where the Clipboard API is unavailable (plain http). */
TF.copy = async function (text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  TF.notify("Copied to the clipboard.");
};

/** A value as YAML (flat mapping of scalars and string lists: what a tuneforge config holds). */
TF.yamlScalar = function (v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean" || typeof v === "number") return String(v);
  if (Array.isArray(v)) return "[" + v.map(TF.yamlScalar).join(", ") + "]";
  const s = String(v);
  if (s === "" || /^[\s]|[\s]$|[:#\[\]{},&*!|>'"%@`]|^(true|false|yes|no|null|~|[-+.\d].*)$/i.test(s)) return JSON.stringify(s);
  return s;
};
TF.yaml = function (obj) {
  return Object.keys(obj).map(function (k) { return k + ": " + TF.yamlScalar(obj[k]); }).join("\n") + "\n";
};

/** Status badge HTML. */
TF.badge = function (status) { return '<span class="badge ' + TF.esc(status) + '">' + TF.esc(status) + "</span>"; };

TF.isActive = function (task) { return TF.V.task_statuses.active.indexOf(task.status) >= 0; };
TF.isResumable = function (task) { return TF.V.task_statuses.resumable.indexOf(task.status) >= 0; };
TF.isQueued = function (task) { return task.status === TF.V.task_statuses.queued; };
TF.isRunning = function (task) { return task.status === TF.V.task_statuses.running; };
TF.isSucceeded = function (task) { return task.status === TF.V.task_statuses.succeeded; };
/** Whether a task's command (an export, an evaluation) is still running, or ended in failure. */
TF.commandRunning = function (st) { return st.state === TF.V.command_states.running; };
TF.commandFailed = function (st) { return st.state === TF.V.command_states.failed; };

/** Run task actions (stop / resume / clone / delete) from any page; resolves with the API answer. */
TF.taskAction = async function (id, action) {
  if (action === "delete") {
    // The service removes the task from its index only; the run directory (the trained output) stays on disk.
    if (!window.confirm("Remove task " + id + " from the list? Its run directory and outputs stay on disk.")) return null;
    return TF.api("DELETE", "/api/tasks/" + encodeURIComponent(id));
  }
  return TF.api("POST", "/api/tasks/" + encodeURIComponent(id) + "/" + action);
};

/** A task's config with every key it leaves unset at its default: what the run uses. */
TF.resolved = function (c) { return Object.assign({}, TF.V.config_defaults, c || {}); };
/** A config's method ({value, label, keys}): the first of TF.V.methods whose keys it has, else the one that sets
    none (the config's default method). */
TF.methodOf = function (c) {
  const r = TF.resolved(c);
  const setting = TF.V.methods.filter(function (m) { return Object.keys(m.keys).length > 0; });
  const found = setting.filter(function (m) {
    return Object.keys(m.keys).every(function (k) { return r[k] === m.keys[k]; });
  })[0];
  return found || TF.V.methods.filter(function (m) { return Object.keys(m.keys).length === 0; })[0];
};
TF.methodLabel = function (c) { return TF.methodOf(c).label; };

/** Elapsed seconds over every attempt (earlier attempts plus this one, until now or its end), this attempt's
    own seconds, and for a running task the ETA from the measured time per step (progress.json). */
TF.taskTimes = function (t) {
  const start = TF.seconds(t.started_at), end = TF.seconds(t.finished_at);
  if (start === null) return { elapsed: null, attempt: null, eta: null };
  const attempt = Math.max(0, (end !== null ? end : Date.now() / 1000) - start);
  const p = t.progress || {};
  let eta = null;
  if (TF.isRunning(t) && TF.num(p.eta_s)) eta = p.eta_s;
  else if (TF.isRunning(t) && TF.num(p.fraction) && p.fraction > 0.01 && p.fraction < 1) eta = attempt * (1 - p.fraction) / p.fraction;
  return { elapsed: attempt + (TF.num(t.earlier_attempts_s) ? t.earlier_attempts_s : 0), attempt: attempt, eta: eta };
};

/** "step N / M", or after a stop short of the end "step N / M (resumes from step K)". */
TF.stepText = function (t) {
  const p = t.progress || {};
  if (!TF.num(p.step)) return "";
  let text = "step " + p.step + (TF.num(p.total_steps) ? " / " + p.total_steps : "");
  if (TF.num(p.checkpoint_step) && !TF.isActive(t) && !TF.isSucceeded(t) && p.checkpoint_step !== p.step) {
    text += " (resumes from step " + p.checkpoint_step + ")";
  }
  return text;
};

/** A memory estimate (from /api/tasks/validate: GiB per part, "total", "device", "mixed_precision") as HTML. */
TF.estimateHtml = function (est) {
  const parts = [], notes = [];
  Object.keys(est).forEach(function (k) {
    const v = est[k];
    if (k === "total" || k === "unit") return;
    if (TF.num(v)) { if (v > 0) parts.push([k.replace(/_gib$/, "").replace(/_/g, " "), v]); }
    else if (typeof v === "string" && v) notes.push(k.replace(/_/g, " ") + ": " + v);
  });
  let html = "";
  if (TF.num(est.total)) html += '<div class="stat"><div class="label">peak training memory per device, estimated</div><div class="value" id="estimate-total">' + TF.gib(est.total) + "</div></div>";
  if (parts.length) html += '<dl class="facts small" style="margin-top:.5em">' + parts.map(function (p) {
    return "<dt>" + TF.esc(p[0]) + "</dt><dd>" + TF.gib(p[1]) + "</dd>";
  }).join("") + "</dl>";
  if (notes.length) html += '<p class="small muted">' + notes.map(TF.esc).join(" · ") + "</p>";
  return html || '<p class="muted">No estimate.</p>';
};

/** How a metric named `name` is written ({unit, scale, digits}): the first of TF.V.metric_formats whose text is
    part of the name. */
TF.metricFormat = function (name) {
  name = name || "";
  return TF.V.metric_formats.filter(function (f) { return name.indexOf(f.contains) >= 0; })[0];
};
/** A metric's value with its unit, e.g. "0.1234 nats" or "87.5 %" ("– nats" when not a number). */
TF.metricValue = function (value, name) {
  const f = TF.metricFormat(name);
  return TF.fixed(TF.num(value) ? value * f.scale : value, f.digits) + " " + f.unit;
};
/** The best metric with its unit and name, e.g. "0.1234 nats (eval_loss)". */
TF.metric = function (value, name) {
  if (!TF.num(value)) return "–";
  return TF.metricValue(value, name) + " (" + (name || "") + ")";
};
