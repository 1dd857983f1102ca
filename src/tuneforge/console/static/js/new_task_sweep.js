/* New-task form, "Sweep" option: turns some keys into lists (1e-4,2e-4) or ranges (log(1e-5,1e-3), range(0,0.1)
   with N random draws), shows the number of trials the service would queue (POST /api/sweeps/validate, the
   same check as `tuneforge tasks sweep --dry-run`) and submits them as one sweep (POST /api/sweeps). The rest of
   the form (new_task.js, window.tfNewTask) is the base config every trial starts from. */
"use strict";
(function () {
  const on = document.getElementById("sweep-on");
  if (!on || !window.tfNewTask) return;
  const form = document.getElementById("task-form");
  const body = document.getElementById("sweep-body");
  const dims = document.getElementById("sweep-dims");
  const count = document.getElementById("sweep-count");
  const errBox = document.getElementById("e-sweep");
  const submit = document.getElementById("submit-task");
  const submitLabel = submit.textContent;
  let seq = 0, timer = null, trials = null;

  // every key of the form a trial may vary (the radio groups' strategy too: sft,dpo is a valid list)
  const keys = [];
  form.querySelectorAll("[data-key]").forEach(function (el) {
    if (keys.indexOf(el.dataset.key) < 0) keys.push(el.dataset.key);
  });

  function addRow(key, spec) {
    const row = document.createElement("div");
    row.className = "row sweep-dim";
    row.innerHTML = '<select class="sweep-key" aria-label="key to sweep">' + keys.map(function (k) {
      return '<option value="' + TF.esc(k) + '"' + (k === key ? " selected" : "") + ">" + TF.esc(k) + "</option>";
    }).join("") + '</select> = <input type="text" class="sweep-spec" aria-label="values: a list or a range" ' +
      'placeholder="1e-4,2e-4 or log(1e-5,1e-3)" autocomplete="off" spellcheck="false" style="width:18em">' +
      ' <button type="button" class="sweep-remove" aria-label="remove this key">×</button>';
    row.querySelector(".sweep-spec").value = spec || "";
    dims.appendChild(row);
  }

  function intOrNull(id) {
    const v = document.getElementById(id).value.trim();
    return v === "" ? null : (isFinite(Number(v)) ? Number(v) : v);
  }

  /** The sweep request: the form's config and GPUs, the space, and the search settings. */
  function request() {
    const space = {};
    dims.querySelectorAll(".sweep-dim").forEach(function (row) {
      const spec = row.querySelector(".sweep-spec").value.trim();
      if (spec) space[row.querySelector(".sweep-key").value] = spec;
    });
    const req = { config: window.tfNewTask.collect(), space: space };
    const name = document.getElementById("f-name").value.trim();
    if (name) req.name = name;
    const gpus = window.tfNewTask.gpusValue();
    if (gpus !== null) req.gpus = gpus;
    const n = intOrNull("sweep-random"), seed = intOrNull("sweep-seed"), limit = intOrNull("sweep-max-concurrent");
    if (n !== null) req.random = n;
    if (n !== null && seed !== null) req.seed = seed;
    if (limit !== null) req.max_concurrent = limit;
    const early = document.getElementById("sweep-early-stop").value;
    if (early) req.early_stop = early;
    return req;
  }

  function showCount(res) {
    trials = res.trial_count;
    const shown = res.trials.slice(0, 6).map(function (p) {
      return Object.keys(p).map(function (k) { return k + "=" + p[k]; }).join(" ");
    });
    count.innerHTML = "<strong>" + trials + " trial" + (trials === 1 ? "" : "s") + "</strong>" +
      (shown.length ? ": " + TF.esc(shown.join(" · ")) + (res.trials.length > shown.length ? " …" : "") : "");
    submit.textContent = "Submit sweep (" + trials + " trial" + (trials === 1 ? "" : "s") + ")";
  }

  async function check() {
    const mine = ++seq;
    errBox.hidden = true;
    if (!on.checked) { submit.textContent = submitLabel; return; }
    const req = request();
    if (!Object.keys(req.space).length) {
      trials = null;
      count.textContent = "Give at least one key a list or a range.";
      submit.textContent = "Submit sweep";
      return;
    }
    count.textContent = "Counting the trials…";
    try {
      const res = await TF.api("POST", "/api/sweeps/validate", req);
      if (mine === seq) showCount(res);
    } catch (err) {
      if (mine !== seq) return;
      trials = null;
      count.textContent = "";
      errBox.textContent = err.message;
      errBox.hidden = false;
      submit.textContent = "Submit sweep";
    }
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(check, 300); }

  on.addEventListener("change", function () {
    body.hidden = !on.checked;
    if (on.checked && !dims.children.length) addRow("learning_rate", "");
    schedule();
  });
  document.getElementById("sweep-add").addEventListener("click", function () { addRow(keys[0], ""); schedule(); });
  dims.addEventListener("click", function (ev) {
    if (ev.target.classList.contains("sweep-remove")) { ev.target.closest(".sweep-dim").remove(); schedule(); }
  });
  form.addEventListener("input", schedule);  // the base config changes the trials' validity too
  form.addEventListener("change", schedule);

  // Before new_task.js's own submit handler (capture on the document): with the option on, queue a sweep.
  document.addEventListener("submit", async function (ev) {
    if (ev.target !== form || !on.checked) return;
    ev.preventDefault();
    ev.stopPropagation();
    submit.disabled = true;
    try {
      const sweep = await TF.api("POST", "/api/sweeps", request());
      window.location.href = "/sweeps/" + sweep.id;
    } catch (err) {
      errBox.textContent = err.message;
      errBox.hidden = false;
      submit.disabled = false;
    }
  }, true);
})();
