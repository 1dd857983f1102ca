"""DPO end to end on the built-in toy model: the reference model of each method, and learning."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import tuneforge
from tuneforge.config import from_dict
from tuneforge.data.dpo import build_dpo_data
from tuneforge.models.builtin import toy_model, toy_tokenizer
from tuneforge.models.forward import CausalLMLoss
from tuneforge.training.dpo import collate_pairs, sequence_logps

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DPO_TRAIN, DPO_VAL = EXAMPLES / "data" / "dpo_train.jsonl", EXAMPLES / "data" / "dpo_val.jsonl"
SFT_TRAIN = EXAMPLES / "data" / "sft_train.jsonl"
LOG2 = math.log(2.0)
KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
        "logps/rejected")


def _head(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """16 training and 8 validation pairs of the sample data (with message-list prompts among them)."""
    d = tmp_path_factory.mktemp("dpo_small")
    return _head(DPO_TRAIN, d / "train.jsonl", 16), _head(DPO_VAL, d / "val.jsonl", 8)


def _dpo(train, val, out, **keys):
    base = {"training_strategy": "dpo", "train_data": str(train), "validation_data": str(val), "output_dir": str(out),
            "per_device_train_batch_size": 4, "max_steps": 2, "logging_steps": 1, "eval_steps": 2,
            "learning_rate": 5e-3, "lora_dim": 8, "lora_dropout": 0.0, "seq_length": 256}
    return tuneforge.train({**base, **keys}, progress=False)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _mean_val_logps(model, val: Path) -> tuple[float, float]:
    """Mean summed log-probs of the validation pairs' responses under ``model``, computed here independently."""
    tok = toy_tokenizer()
    cfg = from_dict({"training_strategy": "dpo", "train_data": str(val), "seq_length": 256})
    pairs = build_dpo_data(cfg, tok).train.pairs
    module = CausalLMLoss(model).eval()
    with torch.no_grad():
        chosen, rejected = sequence_logps(module, collate_pairs(pairs, range(len(pairs)), tok.pad_token_id))
    return float(chosen.mean()), float(rejected.mean())


def test_lora_run_logs_metrics_and_its_reference_is_the_frozen_base(small, tmp_path):
    train, val = small
    summary = _dpo(train, val, tmp_path / "run", max_steps=3, eval_steps=3)
    records = _records(tmp_path / "run")
    logged = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval_loss" in r]
    assert len(logged) == 3 and len(evals) == 2  # steps 1-3; evaluations at steps 0 and 3
    for r in logged:
        assert all(k in r and math.isfinite(r[k]) for k in KEYS)
    for r in evals:
        assert all("eval_" + k in r for k in KEYS)
    # step 0: the policy is its reference: loss log 2, zero rewards
    assert abs(evals[0]["eval_loss"] - LOG2) < 1e-6 and evals[0]["eval_rewards/margins"] == 0.0

    model = summary.model.eval()
    base_before = _mean_val_logps(toy_model(toy_tokenizer()).eval(), val)
    # the reference (the same model, adapter off) has not moved while the policy trained ...
    assert _mean_val_logps_disabled(model, val) == pytest.approx(base_before, abs=1e-4)
    # ... the policy has; the first evaluation's log-probs are the base model's
    policy = _mean_val_logps(model, val)
    assert abs(policy[0] - base_before[0]) > 1e-2
    assert evals[0]["eval_logps/chosen"] == pytest.approx(base_before[0], abs=1e-3)
    assert evals[0]["eval_logps/rejected"] == pytest.approx(base_before[1], abs=1e-3)
    # and the last evaluation's rewards are β x (policy - base)
    assert summary.last_eval["eval_rewards/chosen"] == pytest.approx(0.1 * (policy[0] - base_before[0]), abs=1e-3)


def _mean_val_logps_disabled(peft_model, val: Path) -> tuple[float, float]:
    with peft_model.disable_adapter():
        return _mean_val_logps(peft_model, val)


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory):
    """A short SFT LoRA run on the sample SFT data: the adapter DPO continues from."""
    d = tmp_path_factory.mktemp("sft")
    data = _head(SFT_TRAIN, d / "sft.jsonl", 32)
    out = d / "run"
    tuneforge.train({"train_data": str(data), "output_dir": str(out), "max_steps": 4, "per_device_train_batch_size": 8,
                     "learning_rate": 1e-2, "lora_dim": 8, "lora_dropout": 0.0, "seq_length": 256}, progress=False)
    return out


def test_sft_adapter_is_the_starting_policy_and_the_reference(small, sft_adapter, tmp_path):
    from peft import PeftModel

    train, val = small
    out = tmp_path / "dpo"
    summary = _dpo(train, val, out, adapter_name_or_path=str(sft_adapter), max_steps=3, eval_steps=3)
    base = toy_model(toy_tokenizer()).eval()
    with_sft = PeftModel.from_pretrained(toy_model(toy_tokenizer()), str(sft_adapter)).eval()
    bare, sft = _mean_val_logps(base, val), _mean_val_logps(with_sft, val)
    assert abs(bare[0] - sft[0]) > 0.5  # the SFT adapter really changed the model (a meaningful check)
    first = summary.first_eval
    # before any step: the policy is base + SFT adapter and so is the reference → loss log 2, rewards 0
    assert first["eval_logps/chosen"] == pytest.approx(sft[0], abs=1e-3)
    assert first["eval_logps/rejected"] == pytest.approx(sft[1], abs=1e-3)
    assert abs(first["eval_loss"] - LOG2) < 1e-5 and abs(first["eval_rewards/margins"]) < 1e-6
    # after training: rewards are measured against base + SFT adapter, not the bare base
    last = summary.last_eval
    policy = _mean_val_logps(summary.model.eval(), val)
    beta = 0.1
    assert last["eval_rewards/chosen"] == pytest.approx(beta * (policy[0] - sft[0]), abs=1e-3)
    assert last["eval_rewards/rejected"] == pytest.approx(beta * (policy[1] - sft[1]), abs=1e-3)
    # the output is one adapter (no reference adapter saved beside it)
    assert (out / "adapter_model.safetensors").is_file() and not any(p.is_dir() and (p / "adapter_config.json").is_file()
                                                                     for p in out.iterdir())


def test_full_precompute_and_copy_give_equal_losses(small, tmp_path):
    train, val = small
    runs = {}
    for reference in ("precompute", "copy"):
        out = tmp_path / reference
        _dpo(train, val, out, lora_dim=0, learning_rate=1e-3, max_steps=3, eval_steps=3, dpo_reference=reference)
        runs[reference] = [r for r in _records(out) if "loss" in r or "eval_loss" in r]
    assert len(runs["precompute"]) == len(runs["copy"]) == 5  # 3 logged steps, 2 evaluations
    for a, b in zip(runs["precompute"], runs["copy"]):
        for key in [k for k in a if k.split("eval_")[-1] in KEYS]:
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
    assert runs["precompute"][-1]["eval_rewards/margins"] != 0.0


@pytest.mark.parametrize("keys", [
    {"load_in_4bit": True},
    {"dpo_loss_type": "ipo"},
    {"dpo_loss_type": "hinge"},
    {"dpo_loss_type": "simpo"},
    {"dpo_loss_type": "orpo"},
], ids=["qlora4-sigmoid", "ipo", "hinge", "simpo", "orpo"])
def test_methods_and_losses_train(small, tmp_path, keys):
    train, val = small
    summary = _dpo(train, val, tmp_path / "run", **keys)
    assert summary.steps == 2
    assert all(math.isfinite(summary.last_eval["eval_" + k]) for k in KEYS)
    assert summary.last_eval["eval_loss"] < summary.first_eval["eval_loss"]


def test_learns_on_held_out_pairs_smoke(tmp_path):
    """Fast: a few LoRA DPO steps on the sample preference data raise held-out reward accuracy."""
    summary = _dpo(DPO_TRAIN, DPO_VAL, tmp_path / "run", max_steps=4, eval_steps=4, per_device_train_batch_size=8,
                   learning_rate=2e-3, seq_length=512)
    first, last = summary.first_eval, summary.last_eval
    assert last["eval_rewards/accuracies"] >= 0.75
    assert last["eval_loss"] < first["eval_loss"] - 0.02
    assert last["eval_rewards/margins"] > 0


@pytest.mark.slow
def test_learns_after_sft_with_example_configs(tmp_path, monkeypatch):
    """The documented two-command sequence, unchanged: the SFT LoRA example, then DPO from its adapter,
    evaluated on the held-out sample pairs. (Shortened runs are not used: on the toy model, how fast DPO
    learns depends on how far SFT went.)"""
    monkeypatch.chdir(tmp_path)
    configs = EXAMPLES / "configs"
    tuneforge.train(str(configs / "sft_lora.yaml"), progress=False)
    assert (tmp_path / "runs" / "sft-lora" / "adapter_config.json").is_file()
    summary = tuneforge.train(str(configs / "dpo_lora.yaml"), progress=False)
    first, last = summary.first_eval, summary.last_eval
    assert abs(first["eval_loss"] - LOG2) < 1e-5  # the reference is base + the SFT adapter
    assert last["eval_rewards/accuracies"] >= 0.8
    assert last["eval_loss"] < first["eval_loss"] and last["eval_rewards/margins"] > 0
