"""Reward models: Bradley–Terry on preference pairs, at parity with TRL 1.16's RewardTrainer, saved so that
``AutoModelForSequenceClassification`` (full) or ``PeftModel`` (LoRA, head included) loads and scores the same."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import tuneforge
from tuneforge.config import ConfigError, from_dict
from tuneforge.data.reward import build_reward_data
from tuneforge.models.builtin import toy_reward_model, toy_tokenizer
from tuneforge.models.reward import RewardScore, load_scorer
from tuneforge.reward_losses import bradley_terry_loss
from tuneforge.training.reward import RewardRecipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ATOL = 1e-5


def test_bradley_terry_by_hand():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    # -log sigmoid(1) = 0.313262, -log sigmoid(-1) = 1.313262
    assert bradley_terry_loss(chosen, rejected).tolist() == pytest.approx([0.313262, 1.313262], abs=1e-6)
    # margin 1 on the first pair: -log sigmoid(0) = log 2; centering 0.1 x (c + r)^2 = 0.9 and 0.1
    got = bradley_terry_loss(chosen, rejected, torch.tensor([1.0, 0.0]), 0.1)
    assert got.tolist() == pytest.approx([math.log(2) + 0.9, 1.313262 + 0.1], abs=1e-6)


def _pairs_file(tmp_path, n=5, margins=False):
    lines = (EXAMPLES / "data" / "dpo_train.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    rows = [json.loads(x) for x in lines]
    if margins:
        for i, r in enumerate(rows):
            r["margin"] = 0.5 * i
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _trl_values(tmp_path, tok, model, pairs, margins, center, peft_config=None):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    args = RewardConfig(output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, bf16=False, fp16=False,
                        max_length=None, per_device_train_batch_size=len(pairs), center_rewards_coefficient=center,
                        disable_dropout=True, seed=0)
    text = Dataset.from_list([{"prompt": "hi", "chosen": "a", "rejected": "b"}])
    trainer = RewardTrainer(model=model, args=args, train_dataset=text, processing_class=tok, peft_config=peft_config)
    examples = [{"chosen_ids": p.prompt + p.chosen, "rejected_ids": p.prompt + p.rejected} for p in pairs]
    if margins is not None:
        for e, m in zip(examples, margins):
            e["margin"] = float(m)
    inputs = trainer.data_collator(examples)
    trainer.model.eval()
    trainer._metrics["eval"].clear()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, inputs)
    return trainer, float(loss), {k: v[-1] for k, v in trainer._metrics["eval"].items()}, inputs


@pytest.mark.parametrize("method", [pytest.param("full", marks=pytest.mark.slow), "lora"])
def test_loss_and_metrics_match_trl(tmp_path, method):
    pytest.importorskip("trl")
    from peft import LoraConfig

    tok = toy_tokenizer()
    cfg = from_dict({"training_strategy": "reward", "train_data": str(_pairs_file(tmp_path, margins=True)),
                     "seq_length": 512, "reward_center_coefficient": 0.05})
    data = build_reward_data(cfg, tok)
    assert data.margins["train"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    torch.manual_seed(0)
    model = toy_reward_model(tok)
    with torch.no_grad():  # a head that scores: the drawn one is near zero
        model.score.weight.normal_(0, 0.5)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS",
                      modules_to_save=["score"]) if method == "lora" else None
    pairs = [data.train.pairs[i] for i in range(5)]
    trainer, loss, theirs, inputs = _trl_values(tmp_path, tok, model, pairs, data.margins["train"], 0.05, lora)
    their_ids = inputs["input_ids"]
    module = RewardScore(trainer.model).eval()
    recipe = RewardRecipe(data, tok.pad_token_id, 5, center_coefficient=0.05)
    batch = recipe.collate(list(range(5)))
    assert torch.equal(batch.sequences.input_ids, their_ids), "the compared sequences must be identical"
    with torch.no_grad():
        _, stats = recipe.loss(module, batch)
    ours = recipe.summarize({k: float(v) for k, v in stats.items()})
    assert abs(ours["loss"] - loss) < ATOL, (ours["loss"], loss)
    assert abs(ours["accuracy"] - theirs["accuracy"]) < ATOL and abs(ours["margin"] - theirs["margin"]) < ATOL
    assert abs(ours["margin"]) > 1e-3  # a non-trivial comparison
    # gradients of the same batch's loss (train mode; dropout is off on both sides; fp32 summation-order noise ~6e-6)
    grads = []
    for run in (lambda: recipe.loss(module.train(), batch)[0] / 5, lambda: trainer.compute_loss(trainer.model, inputs)):
        trainer.model.zero_grad(set_to_none=True)
        run().backward()
        grads.append({n: q.grad.clone() for n, q in trainer.model.named_parameters() if q.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any("score" in n for n in grads[0])
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4), (name, float((grads[0][name] - grads[1][name]).abs().max()))


def test_wrong_settings_are_refused(tmp_path):
    data = str(_pairs_file(tmp_path))
    with pytest.raises(ConfigError, match="packing"):
        from_dict({"training_strategy": "reward", "train_data": data, "packing": True})
    with pytest.raises(ConfigError, match="merge the adapter first"):
        from_dict({"training_strategy": "reward", "train_data": data, "adapter_name_or_path": str(tmp_path)})
    with pytest.raises(ConfigError, match="eval_accuracy"):
        from_dict({"training_strategy": "reward", "train_data": data, "metric_for_best_model": "eval_token_accuracy"})


@pytest.mark.parametrize("lora_dim", [8, pytest.param(0, marks=pytest.mark.slow)])
def test_trains_and_the_output_loads_as_a_sequence_classifier(tmp_path, lora_dim):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "run"
    summary = tuneforge.train({"training_strategy": "reward", "train_data": str(_pairs_file(tmp_path, n=12)),
                               "validation_split": 0.25, "seq_length": 256, "lora_dim": lora_dim,
                               "per_device_train_batch_size": 3, "max_steps": 3, "eval_steps": 3,
                               "learning_rate": 1e-2, "output_dir": str(out)}, progress=False)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_accuracy" in r and "eval_margin" in r for r in records)
    assert any("accuracy" in r and "margin" in r and "loss" in r for r in records)
    if lora_dim:
        adapter = json.loads((out / "adapter_config.json").read_text())
        assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]
        base = AutoModelForSequenceClassification.from_pretrained(str(out / "base_model"), num_labels=1)
        loaded = PeftModel.from_pretrained(base, str(out))
    else:
        loaded = AutoModelForSequenceClassification.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    loaded.config.pad_token_id = tok.pad_token_id
    ids = torch.tensor([[5, 6, 7, 8]])
    trained = summary.model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(input_ids=ids).logits, trained(input_ids=ids).logits, atol=1e-5)
    # the helper a GRPO model:PATH reward uses: texts in, one reward each, as the trained model scores them
    texts = ["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>", "short"]
    scores = load_scorer(str(out))(texts)
    enc = tok(texts[0], add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        assert scores[0] == pytest.approx(float(trained(**enc).logits[0, 0]), abs=1e-5) and len(scores) == 2


def test_eval_reports_preference_accuracy_as_training_measured_it(tmp_path):
    from tuneforge.evaluation.run import EvalOptions, run_eval

    lines = (EXAMPLES / "data" / "dpo_val.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    val = tmp_path / "val.jsonl"
    val.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    tuneforge.train({"training_strategy": "reward", "train_data": str(_pairs_file(tmp_path, n=8)),
                     "validation_data": str(val), "seq_length": 256, "lora_dim": 8, "per_device_train_batch_size": 4,
                     "max_steps": 2, "eval_steps": 1, "learning_rate": 1e-2, "output_dir": str(out)}, progress=False)
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"eval_loss"' in x]
    best = min(evals, key=lambda r: r["eval_loss"])  # the run's output is its best evaluated model
    got = run_eval(EvalOptions(model=str(out), data=str(val))).results
    metrics = got["metrics"]["model"]
    assert got["counts"]["rows"] == 6 and (out / "eval" / "val" / "eval_results.json").is_file()
    for key in ("loss", "accuracy", "margin"):
        assert metrics[key] == pytest.approx(best["eval_" + key], abs=1e-5), key


def test_wrong_data_shape_and_a_bad_margin_name_file_line_and_field(tmp_path, sft_file):
    from tuneforge.errors import DataError

    tok = toy_tokenizer()
    with pytest.raises(DataError, match="line 1, field 'rejected'.*reward needs prompt/chosen/rejected"):
        build_reward_data(from_dict({"training_strategy": "reward", "train_data": str(sft_file)}), tok)
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}) + "\n")
    with pytest.raises(DataError, match="line 1, field 'margin'.*finite number"):
        build_reward_data(from_dict({"training_strategy": "reward", "train_data": str(path)}), tok)
