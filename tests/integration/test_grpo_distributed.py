"""GRPO in two CPU processes (gloo, ``tuneforge train --nproc 2``) trains exactly like one process with twice
the accumulation: each completion's draw depends on its seed (run seed, epoch, row, choice) only, a prompt's G
completions stay in one micro-batch, and the loss is normalised over the whole step (DAPO: its tokens)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tuneforge
from tuneforge.cli import main as cli_main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEYS = {"training_strategy": "grpo", "train_data": str(EXAMPLES / "data" / "grpo_arithmetic_train.jsonl"),
        "validation_data": str(EXAMPLES / "data" / "grpo_arithmetic_val.jsonl"), "per_device_train_batch_size": 1,
        "num_generations": 4, "max_completion_length": 6, "seq_length": 64, "max_steps": 3, "logging_steps": 1,
        "eval_steps": 3, "learning_rate": 5e-3, "lora_dim": 8, "lora_target_modules": ["q_proj", "v_proj", "lm_head"],
        "reward_functions": ["accuracy", "length:8"], "save_steps": -1, "warmup_ratio": 0.0}


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one_process_with_double_accumulation(tmp_path, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    tuneforge.train({**KEYS, "gradient_accumulation_steps": 4, "output_dir": str(one)}, progress=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in
            {**KEYS, "gradient_accumulation_steps": 2, "output_dir": str(two)}.items()]
    assert cli_main(["train", *args, "--nproc", "2", "--no-progress"]) == 0
    keys = ("reward", "reward/length:8", "completion_length", "loss", "grad_norm", "advantage_std")
    rec1 = [r for r in _records(one) if "reward" in r and "eval_reward" not in r]
    rec2 = [r for r in _records(two) if "reward" in r and "eval_reward" not in r]
    assert [r["step"] for r in rec1] == [r["step"] for r in rec2] == [1, 2, 3]
    for a, b in zip(rec1, rec2):
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["step"], key)
    ev1 = [r["eval_reward"] for r in _records(one) if "eval_reward" in r]
    ev2 = [r["eval_reward"] for r in _records(two) if "eval_reward" in r]
    assert ev1 == pytest.approx(ev2, abs=1e-6) and len(ev1) == 2
    from safetensors.torch import load_file

    w1, w2 = load_file(str(one / "adapter_model.safetensors")), load_file(str(two / "adapter_model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=1e-4, msg=k)
