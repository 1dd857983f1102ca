/* Data sets page: upload (drag and drop or file picker) with a progress bar, and the list. */
"use strict";
(function () {
  let datasets = JSON.parse(document.getElementById("datasets-data").textContent);
  const tbody = document.querySelector("#datasets-table tbody");

  function draw() {
    document.getElementById("datasets-empty").hidden = datasets.length > 0;
    document.getElementById("datasets-card").hidden = datasets.length === 0;
    tbody.innerHTML = datasets.map(function (d) {
      return "<tr>" +
        '<td data-label="Name"><a href="/datasets/' + d.id + '">' + TF.esc(d.name) + "</a></td>" +
        '<td data-label="Format"><code>' + TF.esc(d.format || "–") + "</code>" + (d.training_strategy ? " · " + TF.esc(d.training_strategy.toUpperCase()) : "") + "</td>" +
        '<td data-label="Rows" class="num">' + (TF.num(d.rows) ? d.rows.toLocaleString() + " rows" : "–") + "</td>" +
        '<td data-label="Size" class="num">' + TF.bytes(d.size_bytes) + "</td>" +
        '<td data-label="Uploaded">' + TF.esc(TF.utc(d.created_at)) + "</td>" +
        '<td data-label=""><a href="/tasks/new?dataset=' + d.id + (d.training_strategy === "dpo" ? "&strategy=dpo" : "") + '">Train on it</a></td></tr>';
    }).join("");
  }

  function upload(file) {
    const err = document.getElementById("upload-error");
    const box = document.getElementById("upload-progress");
    const bar = box.querySelector(".progress");
    const text = document.getElementById("upload-text");
    err.hidden = true;
    box.hidden = false;
    const body = new FormData();
    body.append("file", file);
    const name = document.getElementById("dataset-name").value.trim();
    if (name) body.append("name", name);
    // XMLHttpRequest, not fetch: only it reports upload progress.
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/datasets");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (ev) {
      if (!ev.lengthComputable) return;
      const f = ev.loaded / ev.total;
      bar.firstElementChild.style.width = (f * 100).toFixed(1) + "%";
      bar.setAttribute("aria-valuenow", String(Math.round(f * 100)));
      text.textContent = "Uploading " + file.name + ": " + TF.bytes(ev.loaded) + " of " + TF.bytes(ev.total) + (f >= 1 ? " — checking the rows…" : "");
    };
    xhr.onload = function () {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { data = xhr.responseText; }
      if (xhr.status >= 200 && xhr.status < 300) {
        text.textContent = "Uploaded " + file.name + ": " + data.rows + " rows, format " + data.format + ".";
        datasets.unshift(data);
        draw();
        window.location.href = "/datasets/" + data.id;
      } else {
        box.hidden = true;
        const detail = TF.detailText(data) || ("upload failed (HTTP " + xhr.status + ")");
        // the service's message already starts with the file's name when it is about the file's rows
        err.textContent = detail.indexOf(file.name) === 0 ? detail : file.name + ": " + detail;
        err.hidden = false;
      }
    };
    xhr.onerror = function () {
      box.hidden = true;
      err.textContent = "The upload of " + file.name + " failed: the service could not be reached.";
      err.hidden = false;
    };
    xhr.send(body);
  }

  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  input.addEventListener("change", function () { if (input.files.length) upload(input.files[0]); input.value = ""; });
  zone.addEventListener("dragover", function (ev) { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (ev) {
    ev.preventDefault();
    zone.classList.remove("over");
    if (ev.dataTransfer.files.length) upload(ev.dataTransfer.files[0]);
  });
  // The visually hidden file input is reached through its label; make the label keyboard-operable.
  zone.querySelector('label[for="file-input"]').tabIndex = 0;
  zone.querySelector('label[for="file-input"]').addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); input.click(); }
  });
  draw();
})();
