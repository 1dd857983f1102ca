"""``eval_generation_steps``: a toy LoRA run answers its first validation prompts at steps 2 and 4; the logged
BLEU/ROUGE-L are the scores of the answers in generations.jsonl, and the last answers are the ones
``tuneforge eval`` gives with the saved run (same greedy decoding, same weights)."""
from __future__ import annotations

import json

import pytest

import tuneforge
from tuneforge.cli import main
from tuneforge.errors import ConfigError
from tuneforge.evaluation.metrics import score_corpus

ROWS = [{"instruction": f"{tea}怎么泡？", "output": f"用热水冲泡{n}分钟。"}
        for n, tea in zip((3, 4, 5, 6), ("菊花茶", "玫瑰花茶", "枸杞", "红枣"))] + \
       [{"instruction": f"How long do I steep {tea} tea?", "output": f"Steep it for {n} minutes."}
        for n, tea in zip((3, 4, 5, 6), ("rose", "mint", "green", "black"))]


def test_answers_and_scores_are_logged_during_training(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    out = tmp_path / "run"
    tuneforge.train(dict(train_data=str(data), validation_data=str(data), output_dir=str(out), lora_dim=8,
                         seq_length=128, max_steps=4, learning_rate=5e-3, per_device_train_batch_size=4,
                         warmup_ratio=0.0, lr_scheduler_type="constant", eval_steps=0, logging_steps=2, save_steps=-1,
                         eval_generation_steps=2, eval_generation_rows=3, max_completion_length=8,
                         data_cache_dir=str(tmp_path / "cache")), progress=False)
    assert "eval_generation_steps: 3 validation prompts answered every 2 steps" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "eval_generation_bleu" in r]
    generations = [json.loads(line) for line in (out / "generations.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in logged] == [2, 4] == [g["step"] for g in generations]
    for record, generated in zip(logged, generations):
        answers = [row["answer"] for row in generated["rows"]]
        references = [row["reference"] for row in generated["rows"]]
        assert references == [r["output"] for r in ROWS[:3]] and record["eval_generation_rows"] == 3
        scores = score_corpus(answers, references, ("bleu", "rouge_l"))
        assert record["eval_generation_bleu"] == pytest.approx(scores.summary["bleu"])
        assert record["eval_generation_rouge_l"] == pytest.approx(scores.summary["rouge_l"])
    # the saved run is the weights of step 4 (its last evaluation is its best): tuneforge eval answers the same
    end = next(r for r in reversed(records) if r.get("event") == "end")
    assert end["best_step"] == 4, "fixture: the last evaluation should be the saved (best) model"
    first3 = tmp_path / "first3.jsonl"
    first3.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS[:3]), encoding="utf-8")
    assert main(["eval", str(out), "--data", str(first3), "--metrics", "generation", "--max-new-tokens", "8",
                 "--output", str(tmp_path / "eval")]) == 0
    predictions = [json.loads(line)["prediction"] for line in (tmp_path / "eval" / "predictions.jsonl").read_text(
        encoding="utf-8").splitlines()]
    assert predictions == [row["answer"] for row in generations[-1]["rows"]]


@pytest.mark.parametrize("keys, words", [
    (dict(eval_generation_steps=2), "needs a validation set"),
    (dict(eval_generation_steps=2, validation_split=0.2, training_strategy="pretrain"), "SFT or DPO rows"),
    (dict(eval_generation_steps=-1), "eval_generation_steps"),
    (dict(eval_generation_rows=0), "eval_generation_rows"),
])
def test_bad_generation_keys_are_refused(data, keys, words):
    from tuneforge.config import from_dict

    with pytest.raises(ConfigError) as err:
        from_dict(dict(train_data=data, **keys))
    assert words in str(err.value)
