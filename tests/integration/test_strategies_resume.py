"""Exact resume for KTO, continued pre-training and reward models: a run crashed after a checkpoint and rerun
logs the same per-step losses and ends with the same weights as a run never stopped (CPU, same seed)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import tuneforge
from tuneforge.training import checkpoint as ck

WORDS = "goji ginseng tea jujube longan steep water store dry cool shop price".split()


def _data(strategy: str, tmp_path, write_jsonl) -> str:
    if strategy == "kto":
        rows = [{"prompt": f"Price of item {i}?", "completion": f"It costs {i} yuan." if i % 2 else "No.",
                 "label": bool(i % 2)} for i in range(10)]
    elif strategy == "reward":
        rows = [{"prompt": f"Price of item {i}?", "chosen": f"It costs {i} yuan.", "rejected": "No."} for i in range(10)]
    else:
        rows = [{"text": " ".join(WORDS[(i + j) % len(WORDS)] for j in range(7 + 3 * i))} for i in range(10)]
    return str(write_jsonl(tmp_path / f"{strategy}.jsonl", rows))


def _losses(out):
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["learning_rate"]) for r in recs if "loss" in r]


class _Crash(Exception):
    pass


@pytest.mark.parametrize("strategy", [pytest.param("kto", marks=pytest.mark.slow), "pretrain",
                                      pytest.param("reward", marks=pytest.mark.slow)])
def test_crash_then_resume_matches_an_uninterrupted_run(tmp_path, write_jsonl, monkeypatch, strategy):
    keys = {"training_strategy": strategy, "train_data": _data(strategy, tmp_path, write_jsonl),
            "per_device_train_batch_size": 2, "seq_length": 32, "lora_dim": 4, "max_steps": 5, "logging_steps": 2,
            "save_steps": 3, "learning_rate": 1e-2, "packing": strategy == "pretrain"}
    tuneforge.train({**keys, "output_dir": str(tmp_path / "ref")}, progress=False)
    original_call = ck.Checkpointer.__call__

    def call(self, loop):
        original_call(self, loop)
        if loop.state.global_step == 4:  # one step past checkpoint-3, mid logging window
            raise _Crash()

    monkeypatch.setattr(ck.Checkpointer, "__call__", call)
    with pytest.raises(_Crash):
        tuneforge.train({**keys, "output_dir": str(tmp_path / "b")}, progress=False)
    monkeypatch.setattr(ck.Checkpointer, "__call__", original_call)
    summary = tuneforge.train({**keys, "output_dir": str(tmp_path / "b"), "resume_from_checkpoint": "auto"},
                              progress=False)
    assert summary.steps == 5 and summary.start_step == 3
    assert _losses(tmp_path / "ref") == _losses(tmp_path / "b") and len(_losses(tmp_path / "b")) == 3
    wa = load_file(str(tmp_path / "ref" / "adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=0, msg=k)
