"""The sweep page in Chromium: the trials table, the overlaid evaluation curves and the parameter scatter agree
with the trials' recorded metrics, the winner is marked with working links. The trials' outcomes are written as
the worker records them (metrics.jsonl in each run directory, the summary columns), so the page is checked
without training; tests/integration/service/test_sweep_e2e.py trains a real sweep."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.service import sweeps

pytestmark = pytest.mark.browser

# per trial: eval_loss at steps 0, 5, 10 (the third trial was pruned at step 5, so it has no step 10)
CURVES = [[8.66, 8.1, 7.5], [8.66, 7.9, 7.2], [8.66, 8.65]]


@pytest.fixture(scope="module")
def recorded_sweep(live_service, tmp_path_factory):
    data = tmp_path_factory.mktemp("sweep-data") / "train.jsonl"
    data.write_text(json.dumps({"instruction": "What is 2 plus 2?", "output": "It is 4."}) + "\n")
    service = live_service.service
    sweep = sweeps.create(service, {"config": {"model": "builtin:toy", "train_data": str(data), "max_steps": 10},
                                    "space": {"learning_rate": "1e-2,3e-2,1e-6"}, "name": "lr page",
                                    "early_stop": "median", "grace_steps": 5})
    sweeps.stop(service, sweep["id"])  # nothing trains here: the outcomes are written below
    for trial, curve in zip(sweep["trials"], CURVES):
        task = service.get_task(trial["id"])
        rows = [{"step": 5 * i, "eval_loss": v, "time": 1.0 + i} for i, v in enumerate(curve)]
        Path(task["run_dir"], "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        service.store.update_task(trial["id"], status="succeeded" if len(curve) == 3 else "stopped",
                                  best_metric=min(curve), peak_host_gib=0.5 + trial["id"] / 100,
                                  started_at="2026-12-01T10:00:00Z", finished_at="2026-12-01T10:00:42Z",
                                  progress={"step": 5 * (len(curve) - 1), "total_steps": 10})
    pruned = sweep["trials"][2]["id"]
    service.store.update_task(pruned, stop_reason="pruned at step 5, eval_loss 8.65 > median 8", error=None)
    return sweeps.get(service, sweep["id"])


def test_sweep_page_shows_the_trials_curves_and_winner(live_service, recorded_sweep, page_factory, shot):
    page, errors = page_factory()
    errors.allowed_urls.add("/sweeps/99999")  # the 404 page asked for at the end
    sweep = recorded_sweep
    ids = [t["id"] for t in sweep["trials"]]
    assert sweep["winner"]["id"] == ids[1]
    page.goto(f"{live_service.url}/sweeps/{sweep['id']}")
    page.wait_for_function("window.tfSweep && window.tfSweep.loaded >= 1")

    rows = page.locator("#sweep-trials tbody tr")
    assert rows.count() == 3
    for i, trial in enumerate(sweep["trials"]):
        row = rows.nth(i)
        assert row.get_attribute("data-task") == str(trial["id"])
        assert float(row.locator('td[data-key="learning_rate"]').inner_text()) == trial["params"]["learning_rate"]
        assert row.locator("td.best").inner_text() == f"{min(CURVES[i]):.4f} nats"
        assert f"{round((0.5 + trial['id'] / 100) * 1024)} MiB" in row.inner_text()  # peak host memory, with unit
        assert "42 s" in row.inner_text()
    assert rows.nth(1).get_attribute("class") == "winner" and "winner" in rows.nth(1).inner_text()
    assert "pruned at step 5, eval_loss 8.65 > median 8" in rows.nth(2).inner_text()

    # the overlaid curves hold exactly the recorded evaluations of each trial
    series = page.evaluate("""() => { const c = TF.charts.sweval;
        return c.opts.series.map(s => [s.label, c.seriesPoints(s.label)]); }""")
    assert len(series) == 3
    for (label, points), trial, curve in zip(series, sweep["trials"], CURVES):
        assert label.startswith(f"#{trial['id']} learning_rate=")
        assert points == [[5 * i, v] for i, v in enumerate(curve)]
    assert "nats" in page.locator("#h-seval").inner_text()

    # the scatter: one point per trial at (learning rate, best eval_loss), the winner's drawn larger
    scatter = page.evaluate("() => window.tfSweep.scatter")
    assert sorted((p["id"], p["x"], p["y"]) for p in scatter) == \
        sorted((t["id"], t["params"]["learning_rate"], min(c)) for t, c in zip(sweep["trials"], CURVES))
    assert page.locator("#sweep-scatter circle.pt").count() == 3
    assert page.locator(f'#sweep-scatter circle[data-task="{ids[1]}"]').get_attribute("r") == "7"
    assert "log scale" in page.locator("#sweep-scatter").inner_text()  # 1e-6 .. 3e-2 spans 4 decades
    assert "nats" in page.locator("#sweep-scatter").inner_text()

    winner = page.locator("#sweep-winner")
    assert winner.is_visible() and page.locator("#winner-metric").inner_text() == "7.2000 nats"
    assert page.locator("#winner-clone").get_attribute("href") == f"/tasks/new?clone={ids[1]}"
    assert page.locator("#deploy-button").get_attribute("data-task") == str(ids[1])
    assert page.locator("#winner-compare").get_attribute("href") == "/compare?ids=" + ",".join(map(str, ids))
    assert "learning_rate: 0.03" in page.locator("#winner-config").text_content()
    shot(page, "sweep")

    # "Export GGUF" on the winner is the task page's export (deploy.js): it asks for the winner's export
    asked = []
    page.route("**/api/tasks/*/export", lambda route: (asked.append((route.request.method, route.request.url)), route.fulfill(
        json={"state": "succeeded", "exports": [{"dir": "gguf-f16"}]})))
    page.locator("#export-button").click()
    page.wait_for_function("document.body.textContent.includes('Exported: gguf-f16')", timeout=10_000)
    assert asked[0] == ("POST", f"{live_service.url}/api/tasks/{ids[1]}/export")

    # a trial's page links back to its sweep, with its parameters
    page.goto(f"{live_service.url}/tasks/{ids[2]}")
    assert page.locator("#sweep-link").get_attribute("href") == f"/sweeps/{sweep['id']}"
    assert "learning_rate=1e-06" in page.locator("#task-sweep").inner_text()

    page.goto(f"{live_service.url}/sweeps")
    assert page.locator("#sweeps-table tbody tr").count() == 1
    assert "7.2000 nats" in page.locator("#sweeps-table").inner_text()
    page.goto(f"{live_service.url}/sweeps/99999")
    assert "no such sweep" in page.content()
