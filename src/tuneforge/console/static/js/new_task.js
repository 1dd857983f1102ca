/* New-task form: collects the config, validates it through the API as the user types (the same messages
   as the command line), shows the memory estimate and the YAML/command, and submits. */
"use strict";
(function () {
  const form = document.getElementById("task-form");
  const meta = JSON.parse(document.getElementById("form-data").textContent);
  const defaults = TF.V.config_defaults;  // every key's default, from the page's vocabulary block
  const GUIDE = meta.keys.guide, TOP = meta.keys.top;  // console/fields.py: form_keys()
  const field = function (key) { return document.getElementById("f-" + key); };
  let seq = 0, timer = null;

  /** The typed value of one control; text that is not a number is sent as typed (the API names the error). */
  function valueOf(el) {
    const kind = el.dataset.kind;
    if (kind === "bool") return el.checked;
    let v = el.value;
    if (kind === "choice") {
      if (v === "" && el.querySelector('option[value=""]')) return null;
      return v === "true" ? true : v === "false" ? false : v;
    }
    v = v.trim();
    if (v === "" && el.dataset.nullable) return null;
    if (kind === "integer" || kind === "number") return v !== "" && isFinite(Number(v)) ? Number(v) : v;
    if (kind === "list") return v.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    if (el.id === "f-per_device_train_batch_size" && v !== "" && isFinite(Number(v))) return Number(v);
    return v;
  }

  /** The GPUs box: null when empty (the service's default), a number, or the text as typed (the API names it). */
  function gpusValue() {
    const v = document.getElementById("f-gpus").value.trim();
    if (v === "") return null;
    return isFinite(Number(v)) ? Number(v) : v;
  }

  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

  /** The config sent to the API: the top keys and the guide's keys always, other keys when changed. */
  function collect() {
    const cfg = {};
    cfg.training_strategy = form.querySelector('input[name="training_strategy"]:checked').value;
    TOP.forEach(function (k) {
      if (k === "training_strategy") return;  // the radio buttons above
      const v = valueOf(field(k));
      if (v !== null && v !== "" && !(k === "validation_split" && v === 0)) cfg[k] = v;
    });
    GUIDE.forEach(function (k) {
      const v = valueOf(field(k));
      if (v === null) return;
      if (k === "dpo_beta" && cfg.training_strategy !== "dpo") return;  // ignored for SFT: keep the YAML honest
      if (k === "lora_alpha" && cfg.lora_dim === 0) return;
      cfg[k] = v;
    });
    form.querySelectorAll("details.advanced [data-key]").forEach(function (el) {
      const k = el.dataset.key, v = valueOf(el);
      if (!same(v, defaults[k]) && !(v === null && defaults[k] === null)) cfg[k] = v;
    });
    return cfg;
  }

  // -- method <-> lora_dim / load_in_*bit ------------------------------------------------------------------------
  // The keys that decide the method (TF.V.methods: e.g. lora_dim 0 is full-parameter training).
  const METHOD_KEYS = [];
  TF.V.methods.forEach(function (m) {
    Object.keys(m.keys).forEach(function (k) { if (METHOD_KEYS.indexOf(k) < 0) METHOD_KEYS.push(k); });
  });
  function setValue(el, v) { if (el.dataset.kind === "bool") el.checked = v; else el.value = String(v); }
  function methodFromKeys() {
    const cfg = {};
    METHOD_KEYS.forEach(function (k) { cfg[k] = valueOf(field(k)); });
    const m = TF.methodOf(cfg).value;
    form.querySelector('input[name="method"][value="' + m + '"]').checked = true;
    field("lora_alpha").disabled = valueOf(field("lora_dim")) === 0;
  }
  function keysFromMethod(value) {
    const chosen = TF.V.methods.filter(function (m) { return m.value === value; })[0];
    TF.V.methods.forEach(function (m) {
      Object.keys(m.keys).forEach(function (k) {
        if (k in chosen.keys) setValue(field(k), chosen.keys[k]);
        // a value that would mean another method goes back to its default (a LoRA rank of 0 means full)
        else if (same(valueOf(field(k)), m.keys[k])) setValue(field(k), defaults[k]);
      });
    });
    field("lora_alpha").disabled = valueOf(field("lora_dim")) === 0;
  }
  function strategyChanged() {
    const strategy = form.querySelector('input[name="training_strategy"]:checked').value;
    field("dpo_beta").disabled = strategy !== "dpo";
    field("dpo_beta").title = strategy === "dpo" ? "" : "DPO only: ignored for " + strategy.toUpperCase();
    // The data set's detected kind against the strategy: the config check cannot see this, training would fail.
    const opt = field("train_data").selectedOptions[0];
    const kind = opt && opt.dataset.strategy;
    const warn = document.getElementById("w-train_data");
    // only the SFT/DPO mismatch is known from the data set's detected kind; other strategies are checked
    // against their rows when the task loads its data
    warn.hidden = !kind || kind === strategy || ["sft", "dpo"].indexOf(strategy) < 0;
    warn.textContent = kind === "sft" ? "This data set has SFT rows; DPO needs (prompt, chosen, rejected) rows."
      : "This data set has preference rows (prompt, chosen, rejected): train it with DPO.";
  }

  // -- errors, estimate, YAML --------------------------------------------------------------------------------
  function clearErrors() {
    form.querySelectorAll(".field-error").forEach(function (e) { e.hidden = true; e.textContent = ""; });
    form.querySelectorAll('[aria-invalid="true"]').forEach(function (e) { e.removeAttribute("aria-invalid"); });
    document.getElementById("form-error").hidden = true;
  }

  /** Which key an API message is about: its "key" field, else "key=value: ..." or "unknown config key 'x'". */
  function keyOf(err) {
    const data = err.data || {};
    if (data.key) return data.key;
    const msg = err.message || "";
    let m = /^([a-z_0-9]+)=/.exec(msg) || /config key '([a-z_0-9]+)'/.exec(msg) || /^([a-z_0-9]+)[ :]/.exec(msg);
    return m ? m[1] : null;
  }

  /** One problem at its field (or above the form when it names no field of the form). */
  function showOne(key, message) {
    const box = key && document.getElementById("e-" + key);
    if (box) {
      box.textContent = message;
      box.hidden = false;
      const ctl = field(key) || form.querySelector('[data-key="' + key + '"]');
      if (ctl) ctl.setAttribute("aria-invalid", "true");
      const det = box.closest("details");
      if (det) det.open = true;
    } else {
      const top = document.getElementById("form-error");
      top.textContent = top.hidden ? message : top.textContent + " " + message;
      top.hidden = false;
    }
  }

  /** Every problem the API found (its "errors" list), each at its field; the count in the status line. */
  function showError(err) {
    const list = (err.data && Array.isArray(err.data.errors)) ? err.data.errors : null;
    if (list && list.length) list.forEach(function (e) { showOne(e.key, e.detail); });
    else showOne(keyOf(err), err.message);
    const n = list ? list.length : 1;
    document.getElementById("validity").textContent = n > 1 ? "Not valid: " + n + " settings need a change (marked below)."
      : "Not valid: " + err.message;
  }

  function showEstimate(est) {
    const box = document.getElementById("estimate");
    if (!est) { box.innerHTML = '<p class="muted">No memory estimate for these settings (the architecture of this model is not known without loading it).</p>'; return; }
    box.innerHTML = TF.estimateHtml(est);
  }

  /** A word for a POSIX shell: plain when safe, else in single quotes. */
  function shellQuote(s) { return /^[A-Za-z0-9_.,:\/+-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'"; }

  function showYaml(cfg) {
    const name = document.getElementById("f-name").value.trim();
    document.getElementById("yaml-text").textContent = TF.yaml(cfg);
    document.getElementById("command-text").textContent =
      "# train in this terminal\ntuneforge train task.yaml\n# or queue it on this service\ntuneforge tasks submit task.yaml" + (name ? " --name " + shellQuote(name) : "");
  }

  async function validate() {
    const cfg = collect();
    const mine = ++seq;
    showYaml(cfg);
    document.getElementById("validity").textContent = "Checking…";
    try {
      const body = { config: cfg };
      const gpus = gpusValue();
      if (gpus !== null) body.gpus = gpus;
      const res = await TF.api("POST", "/api/tasks/validate", body);
      if (mine !== seq) return;
      clearErrors();
      document.getElementById("validity").textContent = "Settings are valid.";
      showEstimate(res.estimate);
    } catch (err) {
      if (mine !== seq) return;
      clearErrors();
      showError(err);
      document.getElementById("estimate").innerHTML = '<p class="muted">No estimate until the settings are valid.</p>';
    }
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(validate, 300); }

  form.addEventListener("input", function (ev) {
    if (ev.target.name === "method") keysFromMethod(ev.target.value);
    if (METHOD_KEYS.indexOf(ev.target.dataset.key) >= 0) methodFromKeys();
    if (ev.target.name === "training_strategy" || ev.target.id === "f-train_data") strategyChanged();
    schedule();
  });
  form.addEventListener("change", schedule);

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    clearTimeout(timer);
    const btn = document.getElementById("submit-task");
    btn.disabled = true;
    const body = { config: collect() };
    const name = document.getElementById("f-name").value.trim();
    if (name) body.name = name;
    const gpus = gpusValue();
    if (gpus !== null) body.gpus = gpus;
    try {
      const t = await TF.api("POST", "/api/tasks", body);
      window.location.href = "/tasks/" + t.id;
    } catch (err) {
      clearErrors();
      showError(err);
      btn.disabled = false;
      const first = form.querySelector('[aria-invalid="true"]');
      if (first) first.focus();
    }
  });

  document.getElementById("copy-yaml").addEventListener("click", function () { TF.copy(TF.yaml(collect())); });
  document.getElementById("copy-command").addEventListener("click", function () {
    TF.copy(document.getElementById("command-text").textContent);
  });

  // "Use its recommended seq_length": the data set's token-length statistics with this model and strategy.
  document.getElementById("recommend-seq").addEventListener("click", async function () {
    const opt = field("train_data").selectedOptions[0];
    if (!opt || !opt.dataset.id) { TF.notify("Choose an uploaded data set first.", true); return; }
    const cfg = collect();
    // an invalid seq_length being typed must not turn into a request error: the statistics use a valid one
    const seq = Number.isInteger(cfg.seq_length) && cfg.seq_length > 0 ? cfg.seq_length : 1024;
    const q = new URLSearchParams({ model: cfg.model || TF.V.builtin_model, training_strategy: cfg.training_strategy,
      seq_length: String(seq), apply_chat_template: String(cfg.apply_chat_template !== false) });
    if (cfg.system_prompt) q.set("system_prompt", cfg.system_prompt);
    this.disabled = true;
    try {
      const stats = await TF.api("GET", "/api/datasets/" + opt.dataset.id + "/stats?" + q);
      const rec = stats.recommended_seq_length;
      if (TF.num(rec)) {
        field("seq_length").value = String(rec);
        TF.notify("seq_length set to " + rec + " tokens (keeps 99 % of the rows whole).");
        schedule();
      }
    } catch (err) { TF.notify(err.message, true); }
    this.disabled = false;
  });

  window.tfNewTask = { collect: collect, gpusValue: gpusValue };  // the Sweep option (new_task_sweep.js) reads them
  methodFromKeys();
  strategyChanged();
  validate();
})();
