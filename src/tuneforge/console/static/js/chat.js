/* tuneforge console: the chat playground. Talks to the service's chat endpoint, which forwards to the task's
   `tuneforge serve` process; the conversation lives in this page only. */
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("chat-data").textContent);
  const base = "/api/tasks/" + encodeURIComponent(data.task_id);
  const history = [];
  let deployment = data.deployment;
  const $ = function (id) { return document.getElementById(id); };

  function showDeployment(dep) {
    deployment = dep;
    $("dep-status").innerHTML = dep ? TF.badge(dep.status) : "not deployed";
    $("dep-model").textContent = dep ? dep.model : "–";
    $("dep-url").textContent = dep ? dep.url : "–";
    $("dep-log").textContent = dep ? dep.log : "–";
    $("dep-error").hidden = !(dep && dep.error);
    $("dep-error").textContent = (dep && dep.error) || "";
    const live = !!dep && (dep.status === "starting" || dep.status === "ready");
    $("chat-stop").disabled = !live;
    $("chat-deploy").disabled = live || $("chat-deploy").title !== "";
    $("chat-send").disabled = !(dep && dep.status === "ready");
  }

  async function poll() {
    try { showDeployment(await TF.api("GET", base + "/deployment")); }
    catch (e) { if (e.status === 404) showDeployment(null); }
    if (deployment && deployment.status === "starting") setTimeout(poll, 1000);
  }

  function addMessage(role, text, note) {
    const div = document.createElement("div");
    div.className = "card chat-" + role;
    div.innerHTML = "<strong>" + TF.esc(role) + "</strong>" + (note ? ' <span class="small muted">' + TF.esc(note) + "</span>" : "") +
      '<pre class="block" style="white-space:pre-wrap;margin:.3em 0 0"></pre>';
    div.querySelector("pre").textContent = text;
    $("chat-messages").appendChild(div);
  }

  $("chat-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const text = $("chat-input").value;
    if (!text.trim()) return;
    history.push({ role: "user", content: text });
    addMessage("user", text);
    $("chat-input").value = "";
    $("chat-send").disabled = true;
    const system = $("chat-system").value.trim();
    const body = { messages: (system ? [{ role: "system", content: system }] : []).concat(history),
                   max_tokens: Number($("chat-max-tokens").value), temperature: Number($("chat-temperature").value) };
    try {
      const res = await TF.api("POST", base + "/deployment/chat", body);
      const choice = res.choices[0];
      history.push({ role: "assistant", content: choice.message.content });
      const blank = !String(choice.message.content || "").trim() ? " · whitespace only" : "";
      addMessage("assistant", choice.message.content, "model " + res.model + " · finish: " + choice.finish_reason + blank);
      const u = res.usage || {};
      $("chat-usage").textContent = "Last answer: " + u.prompt_tokens + " prompt tokens, " + u.completion_tokens + " answer tokens.";
    } catch (e) {
      history.pop();
      TF.notify(e.message, true);
      poll();
    }
    $("chat-send").disabled = !(deployment && deployment.status === "ready");
  });

  $("chat-clear").addEventListener("click", function () { history.length = 0; $("chat-messages").innerHTML = ""; });

  $("chat-deploy").addEventListener("click", async function () {
    try { showDeployment(await TF.api("POST", base + "/deploy")); poll(); }
    catch (e) { TF.notify(e.message, true); }
  });

  $("chat-stop").addEventListener("click", async function () {
    $("chat-stop").disabled = true;
    try { showDeployment(await TF.api("DELETE", base + "/deployment")); TF.notify("Deployment stopped."); }
    catch (e) { TF.notify(e.message, true); $("chat-stop").disabled = false; }
  });

  showDeployment(deployment);
  if (deployment) poll();  // not deployed: the page already says so (a GET would only answer 404)
})();
