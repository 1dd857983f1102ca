/* One data set: token-length histogram with the recommended seq_length, and a preview of rows with the
   trained spans highlighted, both computed by the service with the chosen model's tokenizer. */
"use strict";
(function () {
  const ds = JSON.parse(document.getElementById("dataset-data").textContent);
  const base = "/api/datasets/" + ds.id;
  window.tfDataset = { stats: null, preview: null };
  document.querySelectorAll("[data-bytes]").forEach(function (el) { el.textContent = TF.bytes(Number(el.dataset.bytes)); });

  function params() {
    const q = new URLSearchParams({
      model: document.getElementById("s-model").value.trim() || TF.V.builtin_model,
      training_strategy: document.getElementById("s-strategy").value,
      seq_length: document.getElementById("s-seq").value.trim() || "1024",
      apply_chat_template: String(document.getElementById("s-template").checked),
    });
    return q;
  }

  /** The histogram as bars; bins above seq_length are drawn in red (those rows get truncated). */
  function histogramHtml(split, seqLength, recommended) {
    const bins = split.histogram || [];
    const span = bins.length ? bins[bins.length - 1][1] + 1 : 1;
    const at = function (tokens) { return Math.min(100, tokens / span * 100).toFixed(1) + "%"; };
    const marker = TF.num(recommended) ? '<div class="hist-marker" style="left:' + at(recommended) + '" title="recommended seq_length">' +
      "<span>recommended " + recommended + " tokens" + (recommended >= span ? " →" : "") + "</span></div>" : "";
    const top = Math.max.apply(null, bins.map(function (b) { return b[2]; }).concat([1]));
    const bars = bins.map(function (b) {
      const over = b[0] > seqLength;
      // a bar as wide as its token range: the bin cut at seq_length is narrower than the others
      return '<div class="bar' + (over ? " over" : "") + '" style="flex:' + (b[1] - b[0] + 1) + ' 1 0;height:' + (b[2] / top * 100).toFixed(1) + '%" title="' +
        b[0] + "–" + b[1] + " tokens: " + b[2] + ' rows"><span>' + b[2] + "</span></div>";
    }).join("");
    const axis = bins.map(function (b) { return '<span style="flex:' + (b[1] - b[0] + 1) + ' 1 0">' + b[0] + "</span>"; }).join("");
    return '<div class="hist" id="histogram" role="img" aria-label="rows per token-length bin">' + bars + marker + '</div><div class="hist-axis">' + axis +
      '</div><p class="small muted" style="text-align:center;margin:.2em 0">tokens per row (bin start) · bar label = rows</p>';
  }

  function statsHtml(res) {
    const train = (res.splits || {}).train || res;
    const p = train.percentiles || {};
    const seq = train.seq_length || res.seq_length;
    let html = '<div class="stats">' +
      '<div class="stat"><div class="label">recommended seq_length</div><div class="value" id="recommended-seq">' + TF.esc(res.recommended_seq_length) + " tokens</div></div>" +
      '<div class="stat"><div class="label">rows counted</div><div class="value">' + TF.esc(train.rows) + " rows</div></div>" +
      '<div class="stat"><div class="label">mean length</div><div class="value">' + TF.esc(train.mean) + " tokens</div></div>" +
      '<div class="stat"><div class="label">p50 / p99 / max</div><div class="value">' + [p.p50, p.p99, p.max].map(function (x) { return x === undefined ? "–" : x; }).join(" / ") + " tokens</div></div>" +
      "</div>";
    html += histogramHtml(train, seq, res.recommended_seq_length);
    html += '<p class="small">The recommended <code>seq_length</code> keeps 99 % of the rows whole (rounded up to a multiple of 64 tokens). At <code>seq_length</code> = ' +
      TF.esc(seq) + " tokens, " + TF.esc(train.truncated) + " rows are truncated" +
      (train.answer_cut ? " and <strong>" + TF.esc(train.answer_cut) + " rows lose every trained token</strong>" : "") + ".</p>";
    const skipped = res.skipped_rows || {};
    if (Object.keys(skipped).length) html += '<p class="small">Skipped rows: ' + TF.esc(JSON.stringify(skipped)) + "</p>";
    return html;
  }

  function marked(text, spans) {
    let out = "", pos = 0;
    (spans || []).forEach(function (s) {
      out += TF.esc(text.slice(pos, s[0])) + '<mark class="trained">' + TF.esc(text.slice(s[0], s[1])) + "</mark>";
      pos = s[1];
    });
    return out + TF.esc(text.slice(pos));
  }

  function rowHtml(title, r) {
    return '<div class="small"><strong>' + TF.esc(title) + "</strong> · " + r.tokens + " tokens, " + r.trained_tokens + " trained" +
      (r.truncated ? ' · <span style="color:var(--bad)">truncated at seq_length</span>' : "") + "</div>" +
      '<div class="preview-text">' + marked(r.text, r.trained_spans) + "</div>";
  }

  function previewHtml(res) {
    const rows = res.rows || [];
    if (!rows.length) return '<p class="empty">No rows to preview.</p>';
    return rows.map(function (r, i) {
      const title = "row " + (i + 1) + (r.source ? " (" + r.source.split("/").pop() + ")" : "");
      if (r.text !== undefined) return rowHtml(title, r);
      return rowHtml(title + ": prompt + chosen", r.chosen) + rowHtml(title + ": prompt + rejected", r.rejected);
    }).join("");
  }

  async function load() {
    const q = params();
    const statsBox = document.getElementById("stats"), prevBox = document.getElementById("preview");
    statsBox.innerHTML = '<p class="muted">Counting tokens…</p>';
    prevBox.innerHTML = '<p class="muted">Rendering rows…</p>';
    // One request after the other: the first one loads the tokenizer, the second finds it ready (and two
    // concurrent first imports of transformers in the server's threads have been seen to fail).
    await TF.api("GET", base + "/stats?" + q).then(function (res) {
      window.tfDataset.stats = res;
      statsBox.innerHTML = statsHtml(res);
    }).catch(function (e) { statsBox.innerHTML = '<div class="error-box">' + TF.esc(e.message) + "</div>"; });
    q.set("n", "3");
    await TF.api("GET", base + "/preview?" + q).then(function (res) {
      window.tfDataset.preview = res;
      prevBox.innerHTML = previewHtml(res);
    }).catch(function (e) { prevBox.innerHTML = '<div class="error-box">' + TF.esc(e.message) + "</div>"; });
    window.tfDataset.loaded = true;
  }
  document.getElementById("stats-form").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
  load();
})();
