"""GRPO end to end on the built-in toy model: a few steps per reference kind, the metrics, bad rewards, exact
resume, the rollout sampler against transformers' generate and its per-row seeds, and a dense reward that rises."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import tuneforge
from tuneforge.models.builtin import toy_model, toy_tokenizer
from tuneforge.models.rollout import SamplingSettings, sample_completions
from tuneforge.rewards import RewardError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TRAIN, VAL = EXAMPLES / "data" / "grpo_arithmetic_train.jsonl", EXAMPLES / "data" / "grpo_arithmetic_val.jsonl"
DESIGN_METRICS = ("reward", "reward_std", "reward/accuracy", "reward/length:8", "advantage_std", "clip_ratio/low",
                  "clip_ratio/high", "completion_length", "completion_length_max", "truncated_fraction", "entropy",
                  "rollout_seconds", "scoring_seconds", "update_seconds", "rollout_tokens_per_second")



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster than two, and much faster on busy shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

def _grpo(out: Path, **keys):
    base = {"training_strategy": "grpo", "train_data": str(TRAIN), "validation_data": str(VAL), "output_dir": str(out),
            "per_device_train_batch_size": 2, "num_generations": 4, "max_completion_length": 6, "seq_length": 64,
            "max_steps": 2, "logging_steps": 1, "eval_steps": 2, "learning_rate": 5e-3, "lora_dim": 8,
            "reward_functions": ["accuracy", "length:8"], "save_steps": -1}
    return tuneforge.train({**base, **keys}, progress=False)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_lora_run_with_kl_logs_every_metric(tmp_path):
    _grpo(tmp_path / "run", grpo_beta=0.04)
    records = _records(tmp_path / "run")
    train = [r for r in records if "reward" in r and "eval_reward" not in r]
    evals = [r for r in records if "eval_reward" in r]
    assert [r["step"] for r in train] == [1, 2] and [r["step"] for r in evals] == [0, 2]
    for name in DESIGN_METRICS + ("kl",):
        assert all(math.isfinite(r[name]) for r in train), name
    first = train[0]
    # step 1: the policy is still the reference (a new adapter is zero); later the toy's near-uniform policy moves
    # too little in one LoRA step for a float32 KL to show it: the full run below checks KL > 0
    assert first["kl"] == pytest.approx(0.0, abs=1e-6) and train[1]["kl"] >= 0.0
    assert 1 <= first["completion_length"] <= 6 and first["completion_length_max"] <= 6
    assert 0.0 <= first["truncated_fraction"] <= 1.0 and first["entropy"] > 0
    assert {"eval_reward/accuracy", "eval_reward_sampled"} <= set(evals[0])
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_full_run_with_copy_reference_and_two_iterations(tmp_path):
    _grpo(tmp_path / "full", lora_dim=0, grpo_beta=0.1, grpo_num_iterations=2, grpo_loss_type="grpo",
          grpo_scale_rewards="batch", max_steps=2, eval_steps=0)
    train = [r for r in _records(tmp_path / "full") if "reward" in r and "eval_reward" not in r]
    # mu = 2: step 2 reuses step 1's completions, so the reward statistics repeat exactly
    assert train[0]["reward"] == train[1]["reward"] and train[0]["completion_length"] == train[1]["completion_length"]
    assert train[1]["kl"] > 0.0


def test_a_bad_reward_stops_the_run_and_keeps_the_checkpoint(tmp_path):
    rewards = tmp_path / "flaky.py"
    rewards.write_text("calls = []\n"
                       "def flaky(prompts, completions, **columns):\n"
                       "    calls.append(1)\n"
                       "    if len(calls) == 3:\n"
                       "        return [float('nan')] * len(completions)\n"
                       "    return [float(len(c)) for c in completions]\n")
    with pytest.raises(RewardError, match=r"flaky.py:flaky' returned nan for completion 0 of row .*grpo_arithmetic_train"):
        _grpo(tmp_path / "run", reward_functions=[f"{rewards}:flaky"], max_steps=4, save_steps=1,
              validation_data=None)
    assert (tmp_path / "run" / "checkpoint-2").is_dir()


def test_greedy_rollouts_equal_transformers_generate():
    """Left-padded batched decoding with a cache and rows leaving early gives generate()'s tokens, row by row."""
    tok = toy_tokenizer()
    model = toy_model(tok).eval()
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("What is 2 + 3?", "Hi", "当归是哪里产的？请简短回答")]
    stop = [tok.eos_token_id, 1500]  # a second stop id, so some rows end before others
    got = sample_completions(model, prompts, SamplingSettings(12, greedy=True), stop)
    for p, tokens, truncated in zip(prompts, got.tokens, got.truncated):
        ref = model.generate(torch.tensor([p]), max_new_tokens=12, do_sample=False, eos_token_id=stop,
                             pad_token_id=tok.pad_token_id)[0, len(p):].tolist()
        assert tokens == ref
        assert truncated == (tokens[-1] not in stop)


def test_dense_reward_rises(tmp_path):
    """The share of CJK characters: a random toy model's completions spread around it, so every group has
    variance from the first step; GRPO must raise it clearly within 100 CPU steps. Full fine-tuning: the toy's
    near-uniform head is what has to move, and LoRA does not adapt the head."""
    reward = tmp_path / "cjk.py"
    reward.write_text((EXAMPLES / "rewards" / "cjk_share.py").read_text(encoding="utf-8"))
    _grpo(tmp_path / "learn", train_data=str(TRAIN), validation_data=None, reward_functions=[f"{reward}:cjk_share"],
          max_steps=100, logging_steps=10, learning_rate=1e-3, lora_dim=0, max_completion_length=8,
          num_generations=8, warmup_ratio=0.0, lr_scheduler_type="constant")
    rewards = [r["reward"] for r in _records(tmp_path / "learn") if "reward" in r]
    # measured: 0.58 -> 0.80 over 100 steps, 13-20 s on 2 CPU cores
    assert rewards[-1] > rewards[0] + 0.15, rewards


@pytest.mark.parametrize("mu,save_steps", [(1, 2), (2, 1)], ids=["mu1-checkpoint2", "mu2-mid-iteration"])
def test_crash_then_resume_draws_the_same_completions(tmp_path, monkeypatch, mu, save_steps):
    """A run stopped after a checkpoint and resumed logs the same rewards, completion lengths and losses, and ends
    with the same weights, as a run never stopped: its draws depend on seeds, not on RNG state, and with
    grpo_num_iterations 2 a checkpoint between the two iterations keeps the rollouts the next step reuses."""
    from safetensors.torch import load_file

    from tuneforge.training import checkpoint as ck

    keys = dict(max_steps=4, save_steps=save_steps, logging_steps=1, validation_data=None, learning_rate=5e-2,
                lora_target_modules=["q_proj", "v_proj", "lm_head"], grpo_num_iterations=mu)
    _grpo(tmp_path / "ref", **keys)
    original = ck.Checkpointer.__call__

    def crash_at_3(self, loop):
        original(self, loop)
        if loop.state.global_step == 3:
            raise RuntimeError("crash")  # stand-in for a kill after checkpoint-2

    monkeypatch.setattr(ck.Checkpointer, "__call__", crash_at_3)
    with pytest.raises(RuntimeError, match="crash"):
        _grpo(tmp_path / "b", **keys)
    monkeypatch.setattr(ck.Checkpointer, "__call__", original)
    _grpo(tmp_path / "b", resume_from_checkpoint="auto", **keys)

    def trace(out):
        return [(r["step"], r["reward"], r["completion_length"], r["loss"]) for r in _records(out) if "reward" in r]

    assert trace(tmp_path / "ref") == trace(tmp_path / "b") and len(trace(tmp_path / "ref")) == 4
    wa, wb = (load_file(str(p / "adapter_model.safetensors")) for p in (tmp_path / "ref", tmp_path / "b"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=0, msg=k)


def test_a_rows_draw_depends_on_its_seed_only():
    """Per-row generators: the same seed draws the same completion whatever shares the batch, in any order."""
    tok = toy_tokenizer()
    model = toy_model(tok).eval()
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("What is 2 + 3?", "Hi", "当归是哪里产的？")]
    settings = SamplingSettings(10, temperature=1.0, top_k=50)
    together = sample_completions(model, prompts, settings, [tok.eos_token_id], seeds=[1, 2, 3])
    alone = sample_completions(model, [prompts[1]], settings, [tok.eos_token_id], seeds=[2])
    reordered = sample_completions(model, prompts[::-1], settings, [tok.eos_token_id], seeds=[3, 2, 1],
                                   batch_size=2)
    assert together.tokens[1] == alone.tokens[0] and reordered.tokens == together.tokens[::-1]
    other = sample_completions(model, [prompts[1]], settings, [tok.eos_token_id], seeds=[7])
    assert other.tokens != alone.tokens


def test_gumbel_draws_follow_the_distribution():
    from tuneforge.models.rollout import pick_tokens, row_generators

    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0, 1e-9]])).repeat(3000, 1)
    tokens, entropy = pick_tokens(logits, SamplingSettings(1), row_generators(range(3000), torch.device("cpu")))
    freq = torch.bincount(tokens, minlength=4).float() / 3000
    assert freq.tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6, 0.0], abs=0.03)
    top1, _ = pick_tokens(logits[:50], SamplingSettings(1, top_k=1), row_generators(range(50), torch.device("cpu")))
    assert top1.tolist() == [2] * 50
    nucleus, _ = pick_tokens(logits[:500], SamplingSettings(1, top_p=0.6), row_generators(range(500), torch.device("cpu")))
    assert set(nucleus.tolist()) == {1, 2}  # 3/6 < 0.6: the second most likely token is kept, the rest not


def test_preview_shows_prompts_sampled_completions_and_rewards(capsys):
    from tuneforge.cli import main

    config = EXAMPLES / "configs" / "grpo_lora.yaml"
    assert main(["preview", str(config), "--n", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["columns"]["answer"] for r in rows] == ["24", "5"]
    assert "What is 5 + 19?" in rows[0]["prompt"] and len(rows[0]["completions"]) == 4
    for completion in rows[0]["completions"]:
        assert set(completion["rewards"]) == {"accuracy", "number_share"}
        assert 1 <= completion["tokens"] <= 8
