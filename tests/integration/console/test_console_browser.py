"""The console in a real browser (headless Chromium) against the real service training ``builtin:toy``:
upload data and see its histogram; a bad value gives an inline error; submit from the gallery's "Fine-tune";
watch the monitoring page until ``succeeded`` with chart DATA checked (loss, eval loss, host memory), reloading
mid-run without losing a point; stop a second task from its page; compare two tasks; phone width."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "data"
README_SHOT = REPO / "docs" / "img" / "monitoring.png"
VALIDATE = "/api/tasks/validate"
SHORT_RUN = {"max_steps": "12", "logging_steps": "2", "eval_steps": "6"}


def chart_points(page, chart: str, label: str) -> list:
    """[[x, y], ...] of one series, as the chart object holds it."""
    return page.evaluate("([c, l]) => TF.charts[c] ? TF.charts[c].seriesPoints(l) : []", [chart, label])


def drawn_data(page, chart: str):
    """What uPlot itself draws: its data columns [xs, series1, series2, ...] (null before the first draw)."""
    return page.evaluate("c => TF.charts[c] && TF.charts[c].u ? TF.charts[c].u.data : null", chart)


def status_of(page) -> str:
    return page.locator("#task-status .badge").inner_text().strip()


def wait_for_loss_points(page, n: int, timeout_ms: int = 120_000) -> None:
    """Until the loss chart holds ``n`` training-loss points or the task ended; a failed task fails the test
    with the error the page shows (not with a timeout)."""
    page.wait_for_function(
        f"TF.charts.loss.seriesPoints('training loss').length >= {n} || "
        "['failed', 'interrupted'].includes(document.querySelector('#task-status .badge').textContent)",
        timeout=timeout_ms)
    if status_of(page) in ("failed", "interrupted"):
        pytest.fail(f"the task {status_of(page)}: {page.locator('#task-error').inner_text()}")


def ensure_example_datasets(service) -> dict:
    """The example SFT train/validation files as data sets (uploaded through the service object)."""
    have = {d["name"]: d for d in service.list_datasets()}
    for name in ("sft_train.jsonl", "sft_val.jsonl"):
        if name not in have:
            have[name] = service.add_dataset(name, (EXAMPLES / name).read_bytes())
    return have


def upload_data(page, base: str, errors, shot, tmp_path: Path) -> None:
    """A bad file is refused with file, line and field; the example files upload and show their histogram."""
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q2", "outptu": "a"}\n', encoding="utf-8")
    errors.allowed_urls.add("/api/datasets")  # the upload is answered 400 on purpose
    page.goto(base + "/datasets")
    page.set_input_files("#file-input", str(bad))
    error_box = page.locator("#upload-error")
    error_box.wait_for(state="visible")
    text = error_box.inner_text()
    assert "broken.jsonl" in text and "line 2" in text and "output" in text, text
    shot(page, "02-upload-error")

    page.set_input_files("#file-input", str(EXAMPLES / "sft_train.jsonl"))
    page.wait_for_url(re.compile(r".*/datasets/\d+$"))
    page.locator("#recommended-seq").wait_for(timeout=60_000)
    stats = page.evaluate("window.tfDataset.stats")
    bars = page.locator("#histogram .bar")
    assert bars.count() == len(stats["splits"]["train"]["histogram"]) > 0
    assert sum(b[2] for b in stats["splits"]["train"]["histogram"]) == 360  # every row counted once
    assert page.locator("#recommended-seq").inner_text() == f"{stats['recommended_seq_length']} tokens"
    page.wait_for_function("window.tfDataset.loaded")
    assert page.locator("#preview mark.trained").count() > 0  # trained spans highlighted
    shot(page, "03-dataset")
    page.goto(base + "/datasets")
    page.set_input_files("#file-input", str(EXAMPLES / "sft_val.jsonl"))
    page.wait_for_url(re.compile(r".*/datasets/\d+$"))


def fill_and_submit_form(page, base: str, errors, shot) -> int:
    """Gallery -> "Fine-tune" -> the form: a bad value shows its inline error; a valid one is submitted."""
    page.goto(base + "/models")
    shot(page, "04-models")
    page.locator("section.model-card", has=page.locator("h2", has_text="builtin:toy")) \
        .get_by_role("link", name="Fine-tune (SFT, LoRA)").click()
    page.wait_for_url(re.compile(r".*/tasks/new\?.*model=builtin"))
    assert page.input_value("#f-learning_rate") == "0.002"  # the gallery's recommendation for the toy

    errors.allowed_urls.add(VALIDATE)  # the API answers the bad value 400: that is the check
    page.fill("#f-learning_rate", "-1")
    field_error = page.locator("#e-learning_rate")
    field_error.wait_for(state="visible")
    assert "learning_rate=-1" in field_error.inner_text() and "must be > 0" in field_error.inner_text()
    assert page.get_attribute("#f-learning_rate", "aria-invalid") == "true"
    shot(page, "05-new-task-error")

    page.fill("#f-learning_rate", "0.002")
    page.fill("#f-name", "first-toy 草药店客服")  # the shop assistant of the example data, named in its language
    page.fill("#f-seq_length", "128")
    val_path = page.evaluate("[...document.querySelectorAll('#f-validation_data option')]"
                             ".find(o => o.textContent.startsWith('sft_val.jsonl')).value")
    page.select_option("#f-validation_data", value=val_path)
    page.locator("details.advanced > summary").click()
    for key, value in SHORT_RUN.items():
        page.fill(f"#f-{key}", value)
    page.wait_for_function("document.getElementById('validity').textContent === 'Settings are valid.'")
    assert field_error.is_hidden()
    assert re.search(r"\d+(\.\d+)? (MiB|GiB)", page.locator("#estimate-total").inner_text())
    page.locator("#yaml-box > summary").click()
    yaml_text = page.locator("#yaml-text").inner_text()
    assert "learning_rate: 0.002" in yaml_text and "max_steps: 12" in yaml_text and "seq_length: 128" in yaml_text
    assert "tuneforge train task.yaml" in page.locator("#command-text").inner_text()
    shot(page, "06-new-task")
    page.click("#submit-task")
    page.wait_for_url(re.compile(r".*/tasks/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def reload_and_drop_mid_run(page) -> None:
    """Reload the monitoring page mid-run (same state again), then drop its event stream (it reopens)."""
    wait_for_loss_points(page, 2)
    before = {"loss": len(chart_points(page, "loss", "training loss")),
              "host": len(chart_points(page, "host", "task (RSS)"))}
    page.reload()
    page.wait_for_function("window.tfLive && window.tfLive.loaded")
    assert len(chart_points(page, "loss", "training loss")) >= before["loss"]
    assert len(chart_points(page, "host", "task (RSS)")) >= before["host"]
    if status_of(page) == "running":
        seen = page.evaluate("window.tfLive.events")
        page.evaluate("window.tfLive.drop()")
        page.wait_for_function(f"window.tfLive.connected && window.tfLive.events > {seen} || "
                               "document.getElementById('live-state').textContent === 'finished'")


def check_finished_charts(page, rows: list[dict]) -> None:
    """The charts hold exactly what metrics.jsonl holds (every logged step once) and memory samples."""
    want_loss = sorted({r["step"] for r in rows if r.get("loss") is not None})
    want_eval = sorted({r["step"] for r in rows if r.get("eval_loss") is not None})
    page.wait_for_function(f"TF.charts.loss.seriesPoints('training loss').length >= {len(want_loss)}")
    assert [x for x, _ in chart_points(page, "loss", "training loss")] == want_loss
    assert [x for x, _ in chart_points(page, "loss", "eval loss")] == want_eval and want_eval
    data = drawn_data(page, "loss")
    assert data[0] == sorted(set(data[0])) and len([y for y in data[1] if y is not None]) == len(want_loss)
    host = drawn_data(page, "host")  # [elapsed s, task RSS, all processes, host total]
    rss = [y for y in host[1] if y is not None]
    assert len(host[0]) >= 2 and rss and all(y > 0 for y in rss)
    assert min(y for y in host[3] if y is not None) > max(rss)  # the total line above the task's curve
    assert len(chart_points(page, "lr", "learning rate")) == len(want_loss)
    assert len(chart_points(page, "tps", "tokens/s")) > 0
    assert re.search(r"\d (MiB|GiB)$", page.locator("#stat-host").inner_text())


def test_first_task_end_to_end(live_service, page_factory, shot, tmp_path):
    page, errors = page_factory()
    base = live_service.url
    page.goto(base + "/")  # empty state first: no task yet, a pointer to the gallery
    page.wait_for_url(base + "/tasks")
    assert "No tasks yet" in page.locator("#tasks-empty").inner_text()
    shot(page, "01-tasks-empty")

    upload_data(page, base, errors, shot, tmp_path)
    task_id = fill_and_submit_form(page, base, errors, shot)
    reload_and_drop_mid_run(page)
    page.wait_for_function("['succeeded', 'failed', 'stopped', 'interrupted']"
                           ".includes(document.querySelector('#task-status .badge').textContent)", timeout=120_000)
    assert status_of(page) == "succeeded", page.locator("#task-error").inner_text()
    page.wait_for_function("document.getElementById('live-state').textContent === 'finished'")
    check_finished_charts(page, live_service.service.metrics(task_id))

    # The outputs, refreshed when the run ended: the finished adapter, downloadable.
    link = page.locator("#outputs a", has_text="adapter_model.safetensors")
    link.wait_for()
    response = page.request.get(base + link.get_attribute("href"))
    assert response.status == 200 and len(response.body()) > 1000
    # The list is GET /api/tasks/ID/outputs as the page renders it: every file, its size with its unit, the API's
    # download route (no reload happened since the run ended: the page fetched the route itself).
    view = live_service.service.outputs(task_id)
    assert link.get_attribute("href") == f"/api/tasks/{task_id}/files/adapter_model.safetensors"
    rows = page.locator("#outputs tbody tr")
    assert rows.count() == len(view["files"])
    shown = {rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(1).inner_text()
             for i in range(rows.count())}
    adapter = next(f for f in view["files"] if f["name"] == "adapter_model.safetensors")
    assert re.fullmatch(r"\d+\.\d (KiB|MiB)", adapter["size"]) and shown["adapter_model.safetensors"] == adapter["size"]
    assert all(text == "folder" for name, text in shown.items() if name.endswith("/"))
    page.wait_for_timeout(300)  # let the charts draw before the screenshot
    shot(page, "07-monitoring")
    if os.environ.get("TUNEFORGE_README_SCREENSHOT"):
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(README_SHOT), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1290})


def test_stop_from_task_page_and_compare(live_service, page_factory, shot):
    service = live_service.service
    data = ensure_example_datasets(service)
    finished = [t for t in service.list_tasks() if t["status"] == "succeeded"]
    if not finished:  # this test alone: one short task to compare with
        short = service.submit({"model": "builtin:toy", "train_data": data["sft_train.jsonl"]["path"],
                                "max_steps": 6, "logging_steps": 2, "seq_length": 128}, name="short")
        finished = [live_service.wait_final(short["id"], 120)]
    long_task = service.submit({"model": "builtin:toy", "train_data": data["sft_train.jsonl"]["path"],
                                "max_steps": 100000, "num_train_epochs": 1000, "logging_steps": 1,
                                "seq_length": 128, "learning_rate": 1e-3}, name="long-one")
    page, _ = page_factory()
    base = live_service.url
    page.goto(f"{base}/tasks/{long_task['id']}")
    wait_for_loss_points(page, 2)
    assert status_of(page) == "running"
    # Drop the event stream mid-run: it reopens from the position reached and the chart goes on without a gap.
    seen = len(chart_points(page, "loss", "training loss"))
    page.evaluate("window.tfLive.drop()")
    page.wait_for_function("window.tfLive.connected")
    wait_for_loss_points(page, seen + 2)
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("document.querySelector('#task-status .badge').textContent === 'stopped'", timeout=60_000)
    assert page.locator('[data-act="resume"]').is_enabled()
    page.wait_for_function("document.getElementById('live-state').textContent === 'finished'")
    want = sorted({r["step"] for r in service.metrics(long_task["id"]) if r.get("loss") is not None})
    assert [x for x, _ in chart_points(page, "loss", "training loss")] == want  # every step once, none lost
    shot(page, "08-stopped")
    # The resolved config: as submitted, or with every key at its default (from the page's vocabulary block).
    assert "dpo_beta" not in page.locator("#config-yaml").text_content()
    page.check("#all-keys")
    shown = page.locator("#config-yaml").text_content()
    assert "learning_rate: 0.001" in shown and "dpo_beta: 0.1" in shown  # submitted value kept, default added

    # The list: filter by status, select two tasks, compare.
    page.goto(base + "/tasks")
    page.select_option("#status-filter", "stopped")
    assert page.locator("#tasks-table tbody tr").count() == 1
    page.select_option("#status-filter", "")
    for task_id in (finished[0]["id"], long_task["id"]):
        page.locator(f'#tasks-table tr[data-id="{task_id}"] input[type=checkbox]').check()
    shot(page, "09-tasks")
    page.click("#compare-selected")
    page.wait_for_url(re.compile(r".*/compare\?ids="))
    page.wait_for_function("window.tfCompare && window.tfCompare.loaded === 2")
    labels = page.evaluate("TF.charts.closs.opts.series.map(s => s.label)")
    assert len(labels) == 2
    for label in labels:
        assert len(chart_points(page, "closs", label)) >= 2, label
        assert len(chart_points(page, "chost", label)) >= 1, label
    diff = page.locator("#config-diff tr.diff", has=page.locator("code", has_text="max_steps"))
    assert diff.count() == 1
    assert page.locator("#config-diff tr:not(.diff)", has=page.locator("code", has_text="model")).count() >= 1
    shot(page, "10-compare")


def test_phone_width_and_keyboard(live_service, page_factory, shot):
    data = ensure_example_datasets(live_service.service)
    tasks = live_service.service.list_tasks()
    page, _ = page_factory(390, 844)
    paths = ["/tasks", "/tasks/new", "/models", "/datasets", f"/datasets/{data['sft_train.jsonl']['id']}",
             "/compare?ids=" + ",".join(str(t["id"]) for t in tasks[:2])]
    paths += [f"/tasks/{tasks[0]['id']}"] if tasks else []
    for path in paths:
        started = time.monotonic()
        page.goto(live_service.url + path)
        page.wait_for_load_state("load")
        assert time.monotonic() - started < 5  # a sanity bound, not a speed claim
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone screen"
        shot(page, "phone" + re.sub(r"[^a-z0-9]+", "-", path))
    # Keyboard: the first Tab reaches "Skip to content", Enter moves focus to the page's main content.
    page.goto(live_service.url + "/tasks/new")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_gpu_and_dpo_charts_of_an_imported_run(live_service, page_factory, shot):
    """A run trained elsewhere (on a GPU, with DPO) shown from its files: the GPU chart draws each GPU's used and
    total memory, and the DPO charts draw the reward margin, accuracy and chosen/rejected rewards. The files are
    written here (this machine has no GPU); the check is what the page draws from them."""
    import json

    run = live_service.service.settings.runs_dir / "gpu-dpo-run"
    run.mkdir(parents=True)
    t0 = 1_800_000_000.0
    metrics = [{"step": s, "loss": 0.69 - 0.02 * s, "learning_rate": 1e-5, "tokens_per_second": 900.0 + s,
                "rewards/margins": 0.05 * s, "rewards/accuracies": min(1.0, 0.5 + 0.05 * s),
                "rewards/chosen": 0.03 * s, "rewards/rejected": -0.02 * s, "time": t0 + s} for s in range(1, 9)]
    metrics.append({"step": 8, "eval_loss": 0.55, "eval_rewards/margins": 0.3, "eval_rewards/accuracies": 0.75,
                    "eval_rewards/chosen": 0.2, "eval_rewards/rejected": -0.1, "time": t0 + 9})
    resources = [{"time": t0 + i, "host_rss_gib": 3.0 + 0.1 * i, "host_total_gib": 128.0, "host_available_gib": 100.0,
                  "gpu0_used_gib": 40.0 + i, "gpu0_total_gib": 139.8, "gpu0_util": 95.0} for i in range(10)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    (run / "resources.jsonl").write_text("".join(json.dumps(r) + "\n" for r in resources))
    (run / "tuneforge_config.yaml").write_text("training_strategy: dpo\nmodel: builtin:toy\nlora_dim: 32\n")
    task = live_service.service.import_run(run, name="gpu-dpo-import")

    page, _ = page_factory()
    page.goto(f"{live_service.url}/tasks/{task['id']}")
    page.wait_for_function("window.tfLive && window.tfLive.loaded")
    page.wait_for_function("TF.charts.gpu.u !== null && TF.charts.rewards.u !== null")
    assert [y for _, y in chart_points(page, "gpu", "GPU 0 used")] == [40.0 + i for i in range(10)]
    assert {y for _, y in chart_points(page, "gpu", "GPU 0 total")} == {139.8}
    assert [y for _, y in chart_points(page, "margins", "margin")] == [0.05 * s for s in range(1, 9)]
    assert chart_points(page, "margins", "eval margin") == [[8, 0.3]]
    assert chart_points(page, "accuracies", "eval accuracy") == [[8, 75.0]]  # drawn in %
    assert len(chart_points(page, "rewards", "rejected")) == 8
    assert page.locator("#stat-gpu").inner_text().endswith("GiB")
    shot(page, "11-imported-gpu-dpo")
