"""What a first-time user tripped over in the console (issue 29), walked through in headless Chromium against
the real service: every bad field flagged at once, no library wording on the page, data errors in plain
words, the histogram agreeing with the truncated-row count, no sideways scroll at phone width, a Compare page
that shows only real differences and says when there is no GPU."""
from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.browser

VALIDATE = "/api/tasks/validate"


def _dataset(service, tmp_path, name: str, rows: list[dict]) -> dict:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return service.add_dataset(name, path.read_bytes())


def test_every_bad_field_is_flagged_at_once(live_service, page_factory, shot):
    page, errors = page_factory()
    errors.allowed_urls.update({VALIDATE})
    page.goto(live_service.url + "/tasks/new?model=builtin:toy")
    page.fill("#f-learning_rate", "-1")
    page.fill("#f-seq_length", "lots")
    page.fill("#f-num_train_epochs", "0")
    for key in ("learning_rate", "seq_length", "num_train_epochs"):
        page.locator(f"#e-{key}").wait_for(state="visible")
        assert page.get_attribute(f"#f-{key}", "aria-invalid") == "true"
    assert "must be > 0" in page.locator("#e-learning_rate").inner_text()
    assert "expected integer" in page.locator("#e-seq_length").inner_text()
    assert re.match(r"Not valid: 3 settings need a change", page.locator("#validity").inner_text())
    shot(page, "all-errors-at-once")


def test_recommended_seq_length_with_a_bad_value_shows_no_library_message(live_service, page_factory, tmp_path):
    service = live_service.service
    data = _dataset(service, tmp_path, "recommend.jsonl", [{"instruction": f"q{i}", "output": "a" * i} for i in range(1, 21)])
    page, errors = page_factory()
    errors.allowed_urls.update({VALIDATE})
    page.goto(live_service.url + "/tasks/new?model=builtin:toy")
    page.select_option("#f-train_data", value=data["path"])
    page.fill("#f-seq_length", "lots")
    page.click("#recommend-seq")
    page.wait_for_function("/^\\d+$/.test(document.getElementById('f-seq_length').value)")
    body = page.locator("body").inner_text()
    assert "Input should be" not in body and "unable to parse" not in body


def test_upload_errors_are_plain_words_with_line_and_column(live_service, page_factory, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instruction": "a", "output": "b"}\n' * 3 + '{"instruction": "c", "output": "cut off her',
                      encoding="utf-8")
    page, errors = page_factory()
    errors.allowed_urls.add("/api/datasets")
    page.goto(live_service.url + "/datasets")
    page.set_input_files("#file-input", str(broken))
    message = page.locator("#upload-error")
    message.wait_for(state="visible")
    text = message.inner_text()
    assert "line 4" in text, text
    assert text.count("broken.jsonl") == 1 and "cut off in the middle of a string" in text and "column" in text
    assert " at at " not in text


def test_dataset_page_histogram_matches_the_truncated_count_and_fits_a_phone(live_service, page_factory, shot, tmp_path):
    service = live_service.service
    rows = [{"instruction": "问题 " * (i % 40 + 1), "output": "回答 " * (i % 30 + 1)} for i in range(120)]
    rows[0]["output"] = "https://example.com/" + "x" * 300  # one long unbreakable word in the first preview row
    data = _dataset(service, tmp_path, "lengths_of_the_herbal_shop_customer_questions_" + "x" * 50 + ".jsonl", rows)
    page, _ = page_factory(390, 844)
    page.goto(f"{live_service.url}/datasets/{data['id']}")
    page.fill("#s-seq", "100")
    page.locator("#s-seq").press("Enter")
    page.wait_for_function("document.querySelector('#histogram .bar') && /At <code>seq_length<\\/code> = 100 /.test(document.body.innerHTML)")
    red = page.evaluate("[...document.querySelectorAll('#histogram .bar.over span')].reduce((a, s) => a + Number(s.textContent), 0)")
    said = int(re.search(r"(\d+) rows are truncated", page.locator("body").inner_text()).group(1))
    assert red == said and said > 0
    page.wait_for_timeout(300)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    shot(page, "dataset-phone")
    assert overflow <= 1, f"the data-set page is {overflow}px wider than a 390px screen"


def test_compare_shows_real_differences_and_says_there_is_no_gpu(live_service, page_factory, shot, tmp_path):
    service = live_service.service
    ids = []
    for i, resume in enumerate((None, "auto")):
        run = tmp_path / f"run{i}"
        run.mkdir()
        config = {"model": "builtin:toy", "train_data": "x.jsonl", "learning_rate": 0.001 * (i + 1),
                  "resume_from_checkpoint": resume, "output_dir": str(run)}
        ids.append(service.store.insert_task(name=f"cmp{i}", status="succeeded", config=config, run_dir=str(run)))
    page, _ = page_factory()
    page.goto(f"{live_service.url}/compare?ids={ids[0]},{ids[1]}")
    differing = page.evaluate("[...document.querySelectorAll('#config-diff tr.diff td:first-child code')]"
                              ".map(td => td.textContent.trim())")
    assert "learning_rate" in differing and "resume_from_checkpoint" not in differing, differing
    if service.gpus == 0:
        assert "No GPU on this machine" in page.locator("#chart-cgpu").inner_text()
    shot(page, "compare")


def test_live_progress_stop_resume_elapsed_and_deploy_without_reload(live_service, page_factory, shot, tmp_path):
    """Progress moves every step (not at logging_steps), the log shows loss lines, a stop shows the step a
    resume continues from, elapsed covers both attempts, and Deploy appears when the task succeeds."""
    service = live_service.service
    # 2,000 rows of batch 2: the first logging step (and epoch end) is step 1,000, far beyond what the test watches
    data = _dataset(service, tmp_path, "live.jsonl", [{"instruction": f"q{i} " * 3, "output": f"a{i} " * 3} for i in range(2000)])
    task = service.submit({"model": "builtin:toy", "train_data": data["path"], "lora_dim": 4, "max_steps": 4000,
                           "per_device_train_batch_size": 2, "seq_length": 128, "logging_steps": 1000,
                           "eval_steps": 0, "save_steps": 10})
    page, errors = page_factory()
    errors.allowed_urls.add("/stop")
    page.goto(f"{live_service.url}/tasks/{task['id']}")
    # before any logging step: the bar already moves and the ETA is known
    page.wait_for_function("/step ([3-9]|\\d\\d+) \\/ 4000/.test(document.getElementById('stat-progress').textContent)",
                           timeout=120_000)
    assert not [m for m in service.metrics(task["id"]) if "loss" in m]
    assert "ETA" in page.locator("#stat-time").inner_text()
    page.wait_for_function("/step (1[1-9]|[2-9]\\d)\\d* \\/ 4000/.test(document.getElementById('stat-progress').textContent)",
                           timeout=120_000)
    page.click('[data-act="stop"]')
    page.wait_for_function("document.querySelector('#task-status .badge').textContent === 'stopped'", timeout=60_000)
    stopped = service.get_task(task["id"])
    resume_step = stopped["progress"]["checkpoint_step"]
    assert resume_step >= 10 and resume_step % 10 == 0 or resume_step == stopped["progress"]["step"]
    if resume_step != stopped["progress"]["step"]:
        assert f"resumes from step {resume_step}" in page.locator("#stat-progress").inner_text()
    first_attempt = stopped["finished_at"]
    shot(page, "stopped")

    # resume with a short end so the test finishes: the config's max_steps stays; the service continues it
    page.click('[data-act="resume"]')
    page.wait_for_function("document.querySelector('#task-status .badge').textContent === 'running'", timeout=60_000)
    page.click('[data-act="stop"]')
    page.wait_for_function("document.querySelector('#task-status .badge').textContent === 'stopped'", timeout=60_000)
    two = service.get_task(task["id"])
    assert two["attempt"] == 2 and two["earlier_attempts_s"] > 0 and two["first_started_at"] <= first_attempt
    assert "2 attempts" in page.locator("#stat-time").inner_text()


def test_a_finished_task_shows_deploy_and_its_loss_lines_without_a_reload(live_service, page_factory, tmp_path):
    service = live_service.service
    data = _dataset(service, tmp_path, "short.jsonl", [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(16)])
    task = service.submit({"model": "builtin:toy", "train_data": data["path"], "lora_dim": 4, "max_steps": 4,
                           "per_device_train_batch_size": 2, "seq_length": 32, "logging_steps": 2, "eval_steps": 0})
    page, _ = page_factory()
    page.goto(f"{live_service.url}/tasks/{task['id']}")
    assert page.locator("#deploy-button").is_hidden() or service.get_task(task["id"])["status"] == "succeeded"
    page.wait_for_function("document.querySelector('#task-status .badge').textContent === 'succeeded'", timeout=180_000)
    page.locator("#deploy-button").wait_for(state="visible", timeout=30_000)
    assert page.locator("#chat-link").is_visible()
    page.locator("#outputs a", has_text="adapter_model.safetensors").wait_for(timeout=30_000)
    log = page.locator("#log").inner_text()
    assert re.search(r"step 2/4: loss=\d", log) and "tok/s=" in log, log[-2000:]


def test_the_form_checks_settings_against_this_machine(live_service, page_factory, shot, tmp_path):
    data = _dataset(live_service.service, tmp_path, "machine.jsonl", [{"instruction": "q", "output": "a"}] * 4)
    page, errors = page_factory()
    errors.allowed_urls.update({VALIDATE})
    page.goto(live_service.url + "/tasks/new?model=builtin:toy")
    page.select_option("#f-train_data", value=data["path"])
    page.fill("#f-model", "qwen2.5-7b-instruc")  # misspelled gallery id
    page.locator("#e-model").wait_for(state="visible")
    assert "did you mean 'qwen2.5-7b-instruct'" in page.locator("#e-model").inner_text()
    page.fill("#f-model", "qwen2.5-0.5b-instruct")
    page.fill("#f-seq_length", "100000")
    page.wait_for_function("document.getElementById('e-seq_length').textContent.includes('context of 32768')")
    if live_service.service.gpus == 0:  # a 72B model on this CPU machine: the estimate exceeds host RAM
        page.fill("#f-seq_length", "1024")
        page.fill("#f-model", "qwen2.5-72b-instruct")
        page.locator("#e-memory_check").wait_for(state="visible")
        text = page.locator("#e-memory_check").inner_text()
        assert re.search(r"estimated at \d+\.\d GiB .* host RAM has \d+\.\d GiB", text) and "memory_check: false" in text
        assert "Settings are valid" not in page.locator("#validity").inner_text()
        shot(page, "form-memory-check")


def test_evaluate_a_finished_task_from_its_evaluation_page(live_service, page_factory, shot, tmp_path):
    """issue 30, item 5: "Evaluate" on the evaluation page runs `tuneforge eval` of the task on an uploaded data set
    (tuned and base), and the page then shows the new results row by row."""
    service = live_service.service
    train = _dataset(service, tmp_path, "eval_train.jsonl", [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(8)])
    val = _dataset(service, tmp_path, "eval_val.jsonl", [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(3)])
    task = service.submit({"model": "builtin:toy", "train_data": train["path"], "lora_dim": 4, "max_steps": 2,
                           "per_device_train_batch_size": 2, "seq_length": 32, "eval_steps": 0})
    assert live_service.wait_final(task["id"], 180)["status"] == "succeeded"
    page, _ = page_factory()
    page.goto(f"{live_service.url}/tasks/{task['id']}/evaluations")
    assert "No evaluations yet" in page.locator("main").inner_text()
    page.select_option("#eval-dataset", value=str(val["id"]))
    page.click("#eval-start")
    page.locator("#eval-metrics").wait_for(timeout=240_000)
    table = page.locator("#eval-metrics").inner_text()
    assert "eval_loss" in table and "tuned − base" in table
    assert page.locator(".eval-row").count() == 3 and "question 1" in page.locator("#eval-rows").inner_text()
    shot(page, "evaluate-from-console")
