/* Evaluation page: the "only rows where the tuned answer did worse" filter, and "Evaluate", which starts
   `tuneforge eval` of the task on a data set and reloads the page with the new results when it ends. */
"use strict";
(function () {
  const box = document.getElementById("only-losses");
  if (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("#eval-rows .eval-row").forEach(function (row) {
        row.hidden = box.checked && row.dataset.lost !== "true";
      });
    });
  }
  const form = document.getElementById("eval-form");
  if (!form) return;
  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const url = "/api/tasks/" + encodeURIComponent(form.dataset.task) + "/evaluations";
    const state = document.getElementById("eval-state"), btn = document.getElementById("eval-start");
    btn.disabled = true;
    try {
      await TF.api("POST", url, { dataset: Number(document.getElementById("eval-dataset").value),
                                  compare_base: document.getElementById("eval-compare").checked });
      for (;;) {
        state.textContent = "Evaluating… (greedy answers for every row; minutes on a CPU)";
        await new Promise(function (r) { setTimeout(r, 2000); });
        const st = await TF.api("GET", url);
        if (TF.commandRunning(st)) continue;
        if (TF.commandFailed(st)) throw new Error("The evaluation failed: " + (st.error || "see " + st.log));
        window.location.href = window.location.pathname;  // the newest evaluation is shown first
        return;
      }
    } catch (e) { state.textContent = ""; TF.notify(e.message, true); }
    btn.disabled = false;
  });
})();
