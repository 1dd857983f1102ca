"""``tuneforge eval`` on tiny runs trained once per module: the teacher-forced numbers equal the ones training
logged, DPO preference accuracy equals its logged eval_rewards/accuracies, --compare-base shows the tuned
model ahead on data it overfitted, bad data exits 2, and eval_after_training writes its results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import tuneforge
from tuneforge.cli import main
from tuneforge.evaluation.run import EvalOptions, run_eval

SFT_ROWS = [{"instruction": f"{tea}怎么泡？", "output": f"用热水冲泡{n}分钟。"}
            for n, tea in zip((3, 4, 5, 6), ("菊花茶", "玫瑰花茶", "枸杞", "红枣"))] + \
           [{"instruction": f"How long do I steep {tea} tea?", "output": f"Steep it for {n} minutes."}
            for n, tea in zip((3, 4, 5, 6), ("rose", "mint", "green", "black"))]
DPO_ROWS = [{"prompt": f"{tea}可以每天喝吗？", "chosen": "可以适量饮用，如有疾病请咨询医生。", "rejected": "能治百病，越多越好！"}
            for tea in ("菊花茶", "玫瑰花茶", "枸杞茶", "红枣茶", "mint tea", "green tea")]


def _write(path: Path, rows: list) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _saved_eval(run: Path) -> dict:
    """The logged evaluation of the weights the run saved (its best), which must also be its last one here."""
    records = _records(run)
    evals = [r for r in records if "eval_loss" in r]
    best_step = next(r for r in reversed(records) if r.get("event") == "end")["best_step"]
    assert evals[-1]["step"] == best_step, "fixture: the last evaluation should be the saved (best) model"
    return evals[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An SFT LoRA run (with eval_after_training), a DPO LoRA run and a full SFT run, each overfitting a few rows."""
    root = tmp_path_factory.mktemp("eval-runs")
    sft_data, dpo_data = _write(root / "sft.jsonl", SFT_ROWS), _write(root / "dpo.jsonl", DPO_ROWS)
    common = dict(lora_dim=8, seq_length=128, warmup_ratio=0.0, lr_scheduler_type="constant", eval_steps=0,
                  logging_steps=4, save_steps=-1, data_cache_dir=str(root / "cache"))
    # eval_after_training through the command line (the Python API's hook: tests/unit/evaluation)
    sft_keys = dict(common, train_data=sft_data, validation_data=sft_data, output_dir=str(root / "sft"), max_steps=8,
                    learning_rate=5e-3, per_device_train_batch_size=4, eval_after_training=True)
    assert main(["train", "--no-progress"] + [f"{k}={v}" for k, v in sft_keys.items()]) == 0
    tuneforge.train(dict(common, training_strategy="dpo", train_data=dpo_data, validation_data=dpo_data,
                         output_dir=str(root / "dpo"), max_steps=4, learning_rate=5e-3, per_device_train_batch_size=3),
                    progress=False)
    tuneforge.train(dict(common, train_data=sft_data, validation_data=sft_data, output_dir=str(root / "full"),
                         lora_dim=0, max_steps=6, learning_rate=1e-3, per_device_train_batch_size=8), progress=False)
    return {"root": root, "sft": root / "sft", "dpo": root / "dpo", "full": root / "full", "sft_data": sft_data,
            "dpo_data": dpo_data}


def test_teacher_forced_eval_equals_logged_eval_loss(runs):
    logged = _saved_eval(runs["sft"])
    outcome = run_eval(EvalOptions(model=str(runs["sft"]), data=runs["sft_data"], metrics=["loss"]), write=False)
    tuned = outcome.results["metrics"]["tuned"]
    assert tuned["eval_loss"] == pytest.approx(logged["eval_loss"], abs=1e-5)
    assert tuned["token_accuracy"] == pytest.approx(logged["eval_token_accuracy"], abs=1e-5)
    assert tuned["perplexity"] == pytest.approx(2.718281828 ** logged["eval_loss"], rel=1e-4)
    assert outcome.results["counts"]["rows"] == len(SFT_ROWS)


def test_dpo_preference_metrics_equal_logged_ones(runs):
    logged = _saved_eval(runs["dpo"])
    outcome = run_eval(EvalOptions(model=str(runs["dpo"]), data=runs["dpo_data"], metrics=["loss"]), write=False)
    tuned = outcome.results["metrics"]["tuned"]
    assert tuned["rewards/accuracies"] == pytest.approx(logged["eval_rewards/accuracies"], abs=1e-6)
    for key in ("rewards/margins", "logps/chosen", "logps/rejected"):
        assert tuned[key] == pytest.approx(logged[f"eval_{key}"], abs=1e-4)
    assert tuned["dpo_loss"] == pytest.approx(logged["eval_loss"], abs=1e-5)
    assert "adapter disabled" in outcome.results["settings"]["reference"]


def test_compare_base_shows_tuned_ahead_and_writes_both_files(runs, capsys):
    code = main(["eval", str(runs["sft"]), "--data", runs["sft_data"], "--compare-base", "--max-new-tokens", "8"])
    assert code == 0
    out = capsys.readouterr()
    assert "delta (tuned - base)" in out.out
    loss_line = next(line for line in out.out.splitlines() if line.startswith("eval_loss"))
    assert loss_line.endswith("tuned")
    target = runs["sft"] / "eval" / "sft"
    results = json.loads((target / "eval_results.json").read_text(encoding="utf-8"))
    tuned, base = results["metrics"]["tuned"], results["metrics"]["base"]
    assert tuned["eval_loss"] < base["eval_loss"] - 0.3
    assert tuned["token_accuracy"] > base["token_accuracy"]
    # A new LoRA adapter starts as a no-op (B = 0): the base is the model training evaluated at step 0.
    first = next(r for r in _records(runs["sft"]) if "eval_loss" in r)
    assert first["step"] == 0 and base["eval_loss"] == pytest.approx(first["eval_loss"], abs=1e-5)
    assert results["delta"]["eval_loss"] == pytest.approx(tuned["eval_loss"] - base["eval_loss"])
    assert {"bleu", "rouge_l", "chrf", "exact_match"} <= tuned.keys() and results["metric_info"]["bleu"]["tokenizer"] == "zh"
    rows = [json.loads(line) for line in (target / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(SFT_ROWS)
    assert {"prompt", "reference", "prediction", "scores", "base_prediction", "base_scores"} <= rows[0].keys()
    assert rows[0]["reference"] == SFT_ROWS[0]["output"]


def test_bad_data_exits_2_naming_file_line_field(runs, capsys):
    bad = _write(runs["root"] / "bad.jsonl", SFT_ROWS[:2] + [{"instruction": "no answer here"}])
    assert main(["eval", str(runs["sft"]), "--data", bad]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, line 3, field 'output'" in err and "Traceback" not in err
    assert not (runs["sft"] / "eval" / "bad").exists()


def test_eval_after_training_wrote_generation_metrics(runs):
    run, rows = "sft", len(SFT_ROWS)
    target = runs[run] / "eval" / "validation"
    results = json.loads((target / "eval_results.json").read_text(encoding="utf-8"))
    assert set(results["metrics"]["tuned"]) == {"exact_match", "bleu", "rouge_l", "chrf"}
    assert results["counts"]["rows"] == rows and results["model"]["run"]
    predictions = [json.loads(line) for line in (target / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(predictions) == rows and all("prediction" in p and "reference" in p for p in predictions)
    assert (runs[run] / "metrics.jsonl").is_file()  # beside the run's own metrics


def test_compare_base_of_a_full_run_loads_its_starting_model(runs, tmp_path):
    # Full fine-tuning memorises the rows quickly: the answers themselves get closer to the references.
    outcome = run_eval(EvalOptions(model=str(runs["full"]), data=runs["sft_data"], compare_base=True,
                                   max_new_tokens=12, output=str(tmp_path / "out")))
    tuned, base = outcome.results["metrics"]["tuned"], outcome.results["metrics"]["base"]
    assert outcome.results["model"]["method"] == "full"
    assert tuned["eval_loss"] < base["eval_loss"] - 1.0
    assert tuned["chrf"] > base["chrf"] + 5 and tuned["rouge_l"] > base["rouge_l"]
    assert outcome.output_dir == tmp_path / "out" and (tmp_path / "out" / "predictions.jsonl").is_file()
    # the same directory again is refused: results are never overwritten
    assert main(["eval", str(runs["full"]), "--data", runs["sft_data"], "--output", str(tmp_path / "out")]) == 2
