"""Each post-training strategy on the console (issues 25 and 31): the New task form offers every strategy the
config accepts, and the monitoring page draws each strategy's own metrics (console/strategy_charts.py) from a
run's files — checked point by point against what was written."""
from __future__ import annotations

import json

import pytest

from tuneforge.config import TrainConfig
from tuneforge.console.strategy_charts import STRATEGY_CHARTS

pytestmark = pytest.mark.browser


def chart_points(page, chart: str, label: str) -> list:
    return page.evaluate("([c, l]) => TF.charts[c] ? TF.charts[c].seriesPoints(l) : []", [chart, label])


def _imported(service, strategy: str, rows: list[dict]) -> dict:
    run = service.settings.runs_dir / f"{strategy}-run"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "tuneforge_config.yaml").write_text(f"training_strategy: {strategy}\nmodel: builtin:toy\nlora_dim: 8\n")
    return service.import_run(run, name=f"{strategy}-import")


def test_the_form_offers_every_strategy(live_service, page_factory):
    import typing

    page, errors = page_factory()
    errors.allowed_urls.add("/api/tasks/validate")  # no data set chosen yet: the form says so (a 400)
    page.goto(live_service.url + "/tasks/new?strategy=grpo")
    offered = page.evaluate("[...document.querySelectorAll('input[name=training_strategy]')].map(i => i.value)")
    assert offered == list(typing.get_args(typing.get_type_hints(TrainConfig)["training_strategy"]))
    assert page.evaluate("document.querySelector('input[name=training_strategy]:checked').value") == "grpo"


@pytest.mark.parametrize("strategy", ["grpo", "kto", "reward"])
def test_each_strategy_draws_its_own_charts(live_service, page_factory, shot, strategy):
    keys = {key for ch in STRATEGY_CHARTS[strategy] for _, key in ch["series"] if "*" not in key}
    rows = [{"step": s, "loss": 1.0 / s, **{k: 0.01 * s + i for i, k in enumerate(sorted(keys)) if not k.startswith("eval_")}}
            for s in range(1, 7)]
    if strategy == "grpo":
        for r in rows:
            r["reward/accuracy"], r["reward/format"] = 0.1 * r["step"], 0.5
    rows.append({"step": 6, **{k: 0.5 for k in keys if k.startswith("eval_")}})
    task = _imported(live_service.service, strategy, rows)
    page, _ = page_factory()
    page.goto(f"{live_service.url}/tasks/{task['id']}")
    page.wait_for_function("window.tfLive && window.tfLive.loaded")
    for ch in STRATEGY_CHARTS[strategy]:
        scale = ch.get("scale", 1)
        for label, key in ch["series"]:
            if "*" in key:
                continue
            want = [(r["step"], r[key] * scale) for r in rows if key in r]
            got = [tuple(p) for p in chart_points(page, ch["id"], label)]
            assert [x for x, _ in got] == [x for x, _ in want], (ch["id"], label)
            assert [y for _, y in got] == pytest.approx([y for _, y in want]), (ch["id"], label)
    if strategy == "grpo":  # one series per reward function, found in the records themselves
        assert [y for _, y in chart_points(page, "grpo-reward", "reward/accuracy")] == pytest.approx([0.1 * s for s in range(1, 7)])
        assert len(chart_points(page, "grpo-reward", "reward/format")) == 6
    page.wait_for_timeout(300)
    shot(page, f"{strategy}-charts")


def test_generated_answers_beside_references_and_their_scores(live_service, page_factory, shot):
    """eval_generation_steps (issue 30): BLEU and ROUGE-L charted, the latest answers shown next to the
    references, from the run's metrics.jsonl and generations.jsonl."""
    run = live_service.service.settings.runs_dir / "generation-run"
    run.mkdir(parents=True)
    metrics = [{"step": s, "loss": 2.0 / s} for s in range(1, 5)]
    metrics += [{"step": s, "eval_generation_bleu": 10.0 * s, "eval_generation_rouge_l": 0.1 * s, "eval_generation_rows": 2}
                for s in (2, 4)]
    rows = lambda step: [{"source": "val.jsonl:1", "prompt": "枸杞怎么保存?", "reference": "密封冷藏。",
                          "answer": f"answer at step {step}", "bleu": 12.5, "rouge_l": 0.25},
                         {"source": "val.jsonl:2", "prompt": "How long is delivery?", "reference": "Two days.",
                          "answer": "<b>not html</b>", "bleu": 0.0, "rouge_l": 0.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    (run / "generations.jsonl").write_text("".join(json.dumps({"step": s, "rows": rows(s)}, ensure_ascii=False) + "\n"
                                                   for s in (2, 4)), encoding="utf-8")
    (run / "tuneforge_config.yaml").write_text("training_strategy: sft\nmodel: builtin:toy\neval_generation_steps: 2\n")
    task = live_service.service.import_run(run, name="generation-import")
    page, _ = page_factory()
    page.goto(f"{live_service.url}/tasks/{task['id']}")
    page.wait_for_function("window.tfLive && window.tfLive.loaded")
    assert chart_points(page, "generation-bleu", "BLEU") == [[2, 20.0], [4, 40.0]]
    assert [y for _, y in chart_points(page, "generation-rouge", "ROUGE-L")] == pytest.approx([20.0, 40.0])
    page.wait_for_function("document.getElementById('generations').textContent.includes('answer at step 4')")
    text = page.locator("#generations").inner_text()
    assert "枸杞怎么保存?" in text and "密封冷藏。" in text and "<b>not html</b>" in text and "Step 4" in text
    shot(page, "generated-answers")


def test_evaluation_page_shows_rows_side_by_side_and_filters_to_losses(live_service, page_factory, shot):
    """`tuneforge eval` results of a task (issue 30, item 5): metrics with units, the judge's summary, each row's
    prompt, reference, tuned and base answers with the verdicts, and the filter to the rows the tuned model lost."""
    run = live_service.service.settings.runs_dir / "evaluated-run"
    (run / "eval" / "sft_val").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    (run / "tuneforge_config.yaml").write_text("training_strategy: sft\nmodel: builtin:toy\n")
    results = {"tuneforge_eval": 1, "created": "2026-12-02T01:00:00", "data": {"path": "/data/sft_val.jsonl",
               "name": "sft_val", "format": "sft"}, "metrics": {"tuned": {"eval_loss": 1.25, "bleu": 12.0},
               "base": {"eval_loss": 1.5, "bleu": 8.0}}, "delta": {"eval_loss": -0.25, "bleu": 4.0},
               "judge": {"model": "judge-m", "endpoint": "http://127.0.0.1:9/v1",
                         "requests": {"sent": 4, "cached": 0, "retries": 0},
                         "pairwise": {"first": "tuned", "second": "base", "pairs": 2, "judged": 2,
                                      "counts": {"win": 1, "tie": 0, "loss": 1},
                                      "rates": {"win": 0.5, "tie": 0.0, "loss": 0.5},
                                      "ci95": {"win": [0.0, 1.0], "tie": [0.0, 0.0], "loss": [0.0, 1.0]},
                                      "inconsistent_to_tie": 0, "unparseable": 0, "failed": 0}}}
    (run / "eval" / "sft_val" / "eval_results.json").write_text(json.dumps(results))
    rows = [{"source": "sft_val.jsonl:1", "prompt": "枸杞怎么保存?", "reference": "密封冷藏。", "prediction": "tuned wins here",
             "base_prediction": "base one", "scores": {"bleu": 20.0, "rouge_l": 0.5}, "base_scores": {"bleu": 1.0, "rouge_l": 0.1},
             "judge": {"pairwise": {"first": "tuned", "second": "base", "outcome": "win", "consistent": True}}},
            {"source": "sft_val.jsonl:2", "prompt": "Delivery?", "reference": "Two days.", "prediction": "<i>tuned loses</i>",
             "base_prediction": "base wins here", "scores": {"bleu": 0.0, "rouge_l": 0.0}, "base_scores": {"bleu": 5.0, "rouge_l": 0.3},
             "judge": {"pairwise": {"first": "tuned", "second": "base", "outcome": "loss", "consistent": True}}}]
    (run / "eval" / "sft_val" / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                             encoding="utf-8")
    task = live_service.service.import_run(run, name="evaluated")
    page, errors = page_factory()
    errors.allowed_urls.add("/evaluations?name=..%2Fx")  # the last check asks for a name outside the run: a 404
    page.goto(f"{live_service.url}/tasks/{task['id']}")
    page.click("text=Evaluations…")
    page.wait_for_url(f"**/tasks/{task['id']}/evaluations")
    table = page.locator("#eval-metrics").inner_text()
    assert "eval_loss" in table and "nats/token" in table and "-0.2500" in table and "+4.0000" in table
    summary = page.locator("#judge-summary").inner_text()  # the words `tuneforge eval` prints
    assert "judge: judge-m at http://127.0.0.1:9/v1 (4 requests sent" in summary and "{" not in summary
    assert page.locator(".eval-row").count() == 2 and "枸杞怎么保存?" in page.locator("#eval-rows").inner_text()
    assert "<i>tuned loses</i>" in page.locator("#eval-rows").inner_text()  # shown as text, never as HTML
    page.check("#only-losses")
    visible = [t for t in page.locator(".eval-row:visible").all_inner_texts()]
    assert len(visible) == 1 and "base wins here" in visible[0]
    shot(page, "evaluations")
    assert page.goto(f"{live_service.url}/tasks/{task['id']}/evaluations?name=..%2Fx").status == 404
