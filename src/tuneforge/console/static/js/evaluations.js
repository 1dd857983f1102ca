/* Evaluation page: the "only rows where the tuned answer did worse" filter. */
"use strict";
(function () {
  const box = document.getElementById("only-losses");
  if (!box) return;
  box.addEventListener("change", function () {
    document.querySelectorAll("#eval-rows .eval-row").forEach(function (row) {
      row.hidden = box.checked && row.dataset.lost !== "true";
    });
  });
})();
