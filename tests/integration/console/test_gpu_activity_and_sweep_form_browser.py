"""Issue 27 in Chromium: the monitoring page charts GPU utilisation, temperature and power from a run's
resources.jsonl (point by point, with units; "No GPU" for a run without those fields), and the New task form's
Sweep option counts the trials before submitting and queues them as one sweep."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser


def chart_points(page, chart: str, label: str) -> list:
    return page.evaluate("([c, l]) => TF.charts[c] ? TF.charts[c].seriesPoints(l) : []", [chart, label])


def _imported(service, name: str, resources: list[dict]) -> dict:
    run = service.settings.runs_dir / name
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    (run / "resources.jsonl").write_text("".join(json.dumps(r) + "\n" for r in resources))
    (run / "tuneforge_config.yaml").write_text("training_strategy: sft\nmodel: builtin:toy\nlora_dim: 8\n")
    return service.import_run(run, name=name)


def test_monitoring_page_charts_gpu_utilisation_temperature_and_power(live_service, page_factory, shot):
    rows = [{"time": 1000.0 + 2 * i, "host_rss_gib": 1.0, "host_total_gib": 16.0, "host_available_gib": 12.0,
             **{f"gpu{g}_{k}": v for g in (0, 1) for k, v in (
                 ("used_gib", 10.0 + g), ("total_gib", 80.0), ("util", 40.0 + 10 * i + g),
                 ("temperature_c", 50.0 + i + g), ("power_w", 300.5 + 20 * i + g))}}
            for i in range(4)]
    del rows[2]["gpu1_power_w"]  # a sample where the board did not report its power: a gap, not a zero
    task = _imported(live_service.service, "gpu-run", rows)
    page, _ = page_factory()
    page.goto(f"{live_service.url}/tasks/{task['id']}")
    page.wait_for_function("window.tfLive && window.tfLive.loaded")
    for chart, field in (("gpu-util", "util"), ("gpu-temp", "temperature_c"), ("gpu-power", "power_w")):
        for g in (0, 1):
            want = [[r["time"] - 1000.0, r[f"gpu{g}_{field}"]] for r in rows if f"gpu{g}_{field}" in r]
            assert chart_points(page, chart, f"GPU {g}") == want, (chart, g)
    assert page.locator("#h-gpu-util").inner_text() == "GPU utilisation (%)"
    assert page.locator("#h-gpu-temp").inner_text() == "GPU temperature (°C)"
    assert page.locator("#h-gpu-power").inner_text() == "GPU power (W)"
    assert page.evaluate("TF.charts['gpu-power'].opts.format(300.5)") == "300.5 W"
    page.wait_for_timeout(300)
    shot(page, "gpu-activity")

    cpu = _imported(live_service.service, "cpu-run", [{k: v for k, v in r.items() if not k.startswith("gpu")} for r in rows])
    page.goto(f"{live_service.url}/tasks/{cpu['id']}")
    page.wait_for_function("window.tfLive && window.tfLive.loaded")
    for chart in ("gpu-util", "gpu-temp", "gpu-power"):
        assert chart_points(page, chart, "GPU 0") == []
        assert page.locator(f"#chart-{chart}").inner_text().startswith("No GPU")


def test_new_task_form_sweep_option_counts_trials_and_queues_a_sweep(live_service, page_factory, shot):
    service = live_service.service
    rows = [{"instruction": f"What is {i} plus {i}?", "output": f"It is {2 * i}."} for i in range(8)]
    service.add_dataset("sweep-form.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    page, errors = page_factory()
    errors.allowed_urls.add("/api/sweeps/validate")  # the range without random draws is refused (a 400)
    page.goto(f"{live_service.url}/tasks/new")
    page.wait_for_function("document.getElementById('validity').textContent === 'Settings are valid.'")
    assert page.locator("#sweep-body").is_hidden()
    page.locator("#sweep-on").check()
    first = page.locator(".sweep-dim").first
    assert first.locator(".sweep-key").input_value() == "learning_rate"
    first.locator(".sweep-spec").fill("1e-4,2e-4")
    page.locator("#sweep-add").click()
    second = page.locator(".sweep-dim").nth(1)
    second.locator(".sweep-key").select_option("lora_dim")
    second.locator(".sweep-spec").fill("8,16")
    page.wait_for_function("document.getElementById('sweep-count').textContent.startsWith('4 trials')")
    assert page.locator("#submit-task").inner_text() == "Submit sweep (4 trials)"

    first.locator(".sweep-spec").fill("log(1e-5,1e-3)")  # a range needs random draws: the API's message
    page.wait_for_function("!document.getElementById('e-sweep').hidden")
    assert "random" in page.locator("#e-sweep").inner_text()
    page.locator("#sweep-random").fill("3")
    page.locator("#sweep-seed").fill("7")
    page.locator("#sweep-early-stop").select_option("median")
    page.wait_for_function("document.getElementById('sweep-count').textContent.startsWith('3 trials')")
    assert page.locator("#e-sweep").is_hidden()
    shot(page, "new-task-sweep")

    page.locator("#submit-task").click()
    page.wait_for_url("**/sweeps/*")
    sweep_id = int(page.url.rsplit("/", 1)[1])
    from tuneforge.service import sweeps

    sweeps.stop(service, sweep_id)  # checked, not trained here
    sweep = sweeps.get(service, sweep_id)
    assert sweep["trial_count"] == 3 and sweep["early_stop"] == "median"
    assert sweep["search"]["random"] == 3 and sweep["search"]["seed"] == 7
    drawn = [t["params"] for t in sweep["trials"]]
    assert all(1e-5 <= p["learning_rate"] <= 1e-3 and p["lora_dim"] in (8, 16) for p in drawn)
    # the same draws as the command line's --random 3 --seed 7 (the dry run of the same request)
    planned = sweeps.plan(service, {"config": {"train_data": service.list_datasets()[0]["path"]},
                                    "space": {"learning_rate": "log(1e-5,1e-3)", "lora_dim": "8,16"},
                                    "random": 3, "seed": 7})
    assert drawn == [t["params"] for t in planned["trials"]]
