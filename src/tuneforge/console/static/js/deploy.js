/* tuneforge console: the task page's "Deploy" button — starts the task's server, then opens the chat page — and
   its "Export GGUF" button — starts the export, then reports when the verified file is in Outputs. */
"use strict";
(function () {
  const btn = document.getElementById("deploy-button");
  if (!btn) return;
  btn.addEventListener("click", async function () {
    const id = btn.dataset.task;
    btn.disabled = true;
    try {
      await TF.api("POST", "/api/tasks/" + encodeURIComponent(id) + "/deploy");
      window.location.href = "/tasks/" + encodeURIComponent(id) + "/chat";
    } catch (e) { TF.notify(e.message, true); btn.disabled = false; }
  });

  const exp = document.getElementById("export-button");
  if (!exp) return;
  exp.addEventListener("click", async function () {
    const url = "/api/tasks/" + encodeURIComponent(exp.dataset.task) + "/export";
    exp.disabled = true;
    try {
      await TF.api("POST", url, { dtype: "f16" });
      TF.notify("Export started: the GGUF file appears in Outputs once it has been verified.");
      for (;;) {
        await new Promise(function (r) { setTimeout(r, 2000); });
        const st = await TF.api("GET", url);
        if (TF.commandRunning(st)) continue;
        if (TF.commandFailed(st)) throw new Error("The export failed: " + (st.error || "see " + st.log));
        TF.notify("Exported: " + st.exports.map(function (e) { return e.dir; }).join(", ") + ".");
        if (window.tfTask && window.tfTask.refreshOutputs) window.tfTask.refreshOutputs();
        break;
      }
    } catch (e) { TF.notify(e.message, true); }
    exp.disabled = false;
  });
})();
