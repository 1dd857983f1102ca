"""KTO, reward-model and pre-training runs in two CPU processes (gloo) train like one process with twice the
accumulation (issue 25): the same per-step losses and the same final adapter. Marked slow: each 2-process run
starts torchrun (10-30 s on a quiet 2-core machine); SFT and DPO keep their 2-process tests in the default suite.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import tuneforge

from .test_distributed import COMMON, _assert_same_adapter, _pairs, _records, _train_two_processes

pytestmark = pytest.mark.slow


def _feedback(n: int, offset: int = 0) -> list[dict]:
    return [{"prompt": f"Question {i}: what is {i} plus {i}?", "completion": f"It is {2 * i}." + " Sure" * (i % 3),
             "label": i % 3 != 0} for i in range(offset, offset + n)]


def _documents(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"doc{i:02d}.md").write_text(f"Herb {i} is dried in the shade. " * (2 + i % 5), encoding="utf-8")
    return folder


def _compare(one: Path, two: Path, keys: tuple[str, ...]) -> None:
    rec1, rec2 = _records(one), _records(two)
    for key in keys:
        v1, v2 = [r[key] for r in rec1 if key in r], [r[key] for r in rec2 if key in r]
        assert len(v1) == len(v2) > 0, key
        assert v2 == pytest.approx(v1, abs=1e-5), key
    _assert_same_adapter(one, two)


@pytest.mark.parametrize("strategy", ["reward", "pretrain", "kto"])
def test_two_processes_match_one_process(tmp_path, write_jsonl, monkeypatch, strategy):
    if strategy == "pretrain":
        data = {"train_data": str(_documents(tmp_path / "docs", 18)), "validation_split": 0.2}
        keys = ("loss", "eval_loss")
    elif strategy == "reward":
        data = {"train_data": str(write_jsonl(tmp_path / "p.jsonl", _pairs(18))),
                "validation_data": str(write_jsonl(tmp_path / "pv.jsonl", _pairs(5, offset=100)))}
        keys = ("loss", "accuracy", "eval_loss", "eval_accuracy")
    else:
        data = {"train_data": str(write_jsonl(tmp_path / "f.jsonl", _feedback(18))),
                "validation_data": str(write_jsonl(tmp_path / "fv.jsonl", _feedback(6, offset=100)))}
        keys = ("loss", "rewards/desirable", "eval_loss")
    base = {**COMMON, **data, "training_strategy": strategy, "learning_rate": 1e-3}
    one, two = tmp_path / "one", tmp_path / "two"
    tuneforge.train({**base, "gradient_accumulation_steps": 4, "output_dir": str(one)}, progress=False)
    assert _train_two_processes(monkeypatch, {**base, "gradient_accumulation_steps": 2, "output_dir": str(two)}) == 0
    _compare(one, two, keys)
    assert json.loads((two / "metrics.jsonl").read_text().splitlines()[0])["event"] == "start"
