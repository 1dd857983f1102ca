/* tuneforge console: the task page's "Deploy" button — starts the task's server, then opens the chat page. */
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
})();
