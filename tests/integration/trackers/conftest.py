"""Tracker tests: short toy runs (a few steps, evaluations on) whose metrics.jsonl is the reference."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest


def read_records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def numeric_fields(record):
    """What every tracker must show for one record: its numeric fields (booleans as 0/1)."""
    return {k: float(v) for k, v in record.items()
            if k not in ("step", "time") and isinstance(v, (int, float)) and v is not None}


@pytest.fixture
def run_keys(tmp_path, write_jsonl):
    rows = [{"instruction": f"Question {i}: what is {i} plus {i}?", "output": f"It is {2 * i}."} for i in range(12)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    # 3 steps of 3 rows (12 rows, a quarter held out): training records every step, an evaluation at 0, 2, 3.
    return {"train_data": str(data), "per_device_train_batch_size": 3, "seq_length": 64, "lora_dim": 4,
            "max_steps": 3, "logging_steps": 1, "validation_split": 0.25, "eval_steps": 2}


@pytest.fixture
def helpers():
    """read_records(out) and numeric_fields(record), for the test modules (importlib mode: no conftest import)."""
    return SimpleNamespace(read_records=read_records, numeric_fields=numeric_fields)
