"""The pages' words from the vocabulary block, in Chromium: a task that leaves keys at their defaults shows the
resolved values (model, strategy, method) in the list and on its page; the form's method buttons and the
method keys follow each other by the block's method table; statuses and metric formats come from the block."""
from __future__ import annotations

import json

import pytest

from tuneforge.config import BUILTIN_MODEL
from tuneforge.service import STATUSES

pytestmark = pytest.mark.browser


def _imported(service, name: str, config_yaml: str) -> dict:
    run = service.settings.runs_dir / name
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    (run / "tuneforge_config.yaml").write_text(config_yaml)
    return service.import_run(run, name=name)


def test_a_task_at_the_default_model_shows_it(live_service, page_factory):
    task = _imported(live_service.service, "defaults-run", "training_strategy: dpo\nlora_dim: 0\n")
    assert "model" not in task["config"]  # the case: the config leaves model at its default
    page, _ = page_factory()
    page.goto(f"{live_service.url}/tasks")
    row = page.locator(f'#tasks-table tr[data-id="{task["id"]}"]')
    assert row.locator('td[data-label="Model"]').inner_text() == BUILTIN_MODEL
    assert row.locator('td[data-label="Method"]').inner_text() == "Full"
    assert row.locator('td[data-label="Strategy"]').inner_text() == "DPO"
    page.fill("#name-filter", BUILTIN_MODEL)  # the name filter matches the resolved model too
    assert row.is_visible()
    options = page.locator("#status-filter option").evaluate_all("els => els.map(e => e.value)")
    assert options == [""] + list(STATUSES)

    page.goto(f"{live_service.url}/tasks/{task['id']}")
    page.wait_for_function("window.tfLive && window.tfLive.loaded")
    header = page.locator("p.muted").first.inner_text()
    assert f"model {BUILTIN_MODEL}" in header and header.startswith("DPO")
    assert page.locator("#task-method").inner_text() == "Full"
    assert page.locator("#h-loss").inner_text() == "Loss, training and eval (nats)"


def test_the_forms_method_buttons_follow_the_method_table(live_service, page_factory):
    page, errors = page_factory()
    errors.allowed_urls.add("/api/tasks/validate")  # the form validates as the user types
    page.goto(f"{live_service.url}/tasks/new")
    checked = lambda: page.locator('input[name="method"]:checked').get_attribute("value")  # noqa: E731
    assert checked() == "lora"
    page.check('input[name="method"][value="full"]')
    assert page.input_value("#f-lora_dim") == "0" and page.locator("#f-lora_alpha").is_disabled()
    page.check('input[name="method"][value="qlora4"]')
    assert page.input_value("#f-lora_dim") == "32"  # back to the default rank: 0 would mean full
    assert page.is_checked("#f-load_in_4bit") and not page.is_checked("#f-load_in_8bit")
    page.check('input[name="method"][value="qlora8"]')
    assert page.is_checked("#f-load_in_8bit") and not page.is_checked("#f-load_in_4bit")
    page.uncheck("#f-load_in_8bit")
    assert checked() == "lora"
    page.fill("#f-lora_dim", "0")
    assert checked() == "full" and page.locator("#f-lora_alpha").is_disabled()
    assert page.evaluate("TF.metric(0.875, 'eval_rewards/accuracies')") == "87.5 % (eval_rewards/accuracies)"
    assert page.evaluate("TF.metric(0.12345, 'eval_loss')") == "0.1235 nats (eval_loss)"
