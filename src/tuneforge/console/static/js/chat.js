/* tuneforge console: the chat playground. Talks to the service's chat endpoint, which forwards to the task's
   `tuneforge serve` process and streams the answer token by token; the conversation is kept in this browser
   (localStorage) per task, so a reload does not lose it. */
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

  // The conversation survives a reload: kept in this browser per task and deployment start.
  const storeKey = "tuneforge-chat-" + data.task_id;
  function save() {
    try { localStorage.setItem(storeKey, JSON.stringify({ started: deployment && deployment.started_at, history: history })); }
    catch (e) { /* storage full or disabled: the conversation still works, it is just not kept */ }
  }
  function restore() {
    let kept = null;
    try { kept = JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { kept = null; }
    if (!kept || !Array.isArray(kept.history)) return;
    kept.history.forEach(function (m) { history.push(m); addMessage(m.role, m.content, m.role === "assistant" ? "earlier answer" : ""); });
  }

  function addMessage(role, text, note) {
    const div = document.createElement("div");
    div.className = "card chat-" + role;
    div.innerHTML = "<strong>" + TF.esc(role) + "</strong>" + ' <span class="small muted note"></span>' +
      '<pre class="block" style="white-space:pre-wrap;margin:.3em 0 0"></pre>';
    div.querySelector(".note").textContent = note || "";
    div.querySelector("pre").textContent = text;
    $("chat-messages").appendChild(div);
    return div;
  }

  /** The answer's server-sent events: each "data:" line is a chunk (its delta text), an error, or [DONE]. */
  async function readStream(res, onText) {
    const reader = res.body.getReader(), decoder = new TextDecoder();
    let buffer = "", finish = null, usage = null;
    for (;;) {
      const part = await reader.read();
      if (part.done) break;
      buffer += decoder.decode(part.value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        event.split("\n").forEach(function (line) {
          if (line.indexOf("data: ") !== 0 || line === "data: [DONE]") return;
          const msg = JSON.parse(line.slice(6));
          if (msg.error) throw new Error("The model's server failed while answering: " + (msg.error.message || "unknown error"));
          if (msg.usage) usage = msg.usage;
          (msg.choices || []).forEach(function (c) {
            if (c.delta && c.delta.content) onText(c.delta.content);
            if (c.finish_reason) finish = c.finish_reason;
          });
        });
      }
    }
    return { finish: finish, usage: usage };
  }

  let aborter = null;
  $("chat-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const text = $("chat-input").value;
    if (!text.trim()) return;
    history.push({ role: "user", content: text });
    addMessage("user", text);
    $("chat-input").value = "";
    $("chat-send").disabled = true;
    $("chat-halt").hidden = false;
    const system = $("chat-system").value.trim();
    const body = { messages: (system ? [{ role: "system", content: system }] : []).concat(history), stream: true,
                   stream_options: { include_usage: true },
                   max_tokens: Number($("chat-max-tokens").value), temperature: Number($("chat-temperature").value) };
    const card = addMessage("assistant", "", "answering…");
    const out = card.querySelector("pre");
    aborter = new AbortController();
    let answer = "";
    try {
      const res = await fetch(base + "/deployment/chat", { method: "POST", signal: aborter.signal,
        headers: { "Content-Type": "application/json", "Accept": "text/event-stream" }, body: JSON.stringify(body) });
      if (!res.ok) {
        let detail = null;
        try { detail = await res.json(); } catch (e) { detail = null; }
        throw new Error(TF.detailText(detail) || ("the chat request failed (HTTP " + res.status + ")"));
      }
      const end = await readStream(res, function (piece) { answer += piece; out.textContent = answer; });
      const blank = !answer.trim() ? " · whitespace only" : "";
      card.querySelector(".note").textContent = "model " + deployment.model + " · finish: " + (end.finish || "stop") + blank;
      const u = end.usage || {};
      if (TF.num(u.completion_tokens)) $("chat-usage").textContent = "Last answer: " + u.prompt_tokens + " prompt tokens, " + u.completion_tokens + " answer tokens.";
      history.push({ role: "assistant", content: answer });
    } catch (e) {
      if (e.name === "AbortError") {
        card.querySelector(".note").textContent = "stopped by you after " + answer.length + " characters";
        history.push({ role: "assistant", content: answer });
      } else {
        history.pop();  // the question goes back to the box, to send again
        $("chat-input").value = text;
        card.classList.add("chat-error");
        card.querySelector(".note").textContent = "no answer";
        out.textContent = e.message;
        poll();
      }
    }
    aborter = null;
    save();
    $("chat-halt").hidden = true;
    $("chat-send").disabled = !(deployment && deployment.status === "ready");
  });

  $("chat-halt").addEventListener("click", function () { if (aborter) aborter.abort(); });

  $("chat-clear").addEventListener("click", function () {
    history.length = 0;
    $("chat-messages").innerHTML = "";
    try { localStorage.removeItem(storeKey); } catch (e) { /* nothing kept */ }
  });

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
  restore();
  if (deployment) poll();  // not deployed: the page already says so (a GET would only answer 404)
})();
