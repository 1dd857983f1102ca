"""The memory estimate against memory actually measured (bench/memory/measured.json, each figure with its source).

CPU figures are whole-process peak RSS, compared with the estimate's total (runtime baseline included); GPU
figures are torch's peak allocated, compared with the estimate's tensors (no CUDA context). The estimator's
per-layer activation coefficients are checked against counts of the tensors autograd saves.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.config import TrainConfig
from tuneforge.models.memory import GIB, ModelShape, estimate, layer_elements

DATA = json.loads((Path(__file__).resolve().parents[3] / "bench" / "memory" / "measured.json").read_text())
TOLERANCE = 0.20
SMALL = dict(hidden=512, intermediate=1408, layers=4, heads=8, kv_heads=4, vocab=32000, tied=True)  # bench/trl_side.py
TOY = dict(hidden=128, intermediate=384, layers=2, heads=4, kv_heads=2, vocab=6000, tied=True)  # models/builtin.py
# Qwen's vocabulary on a small body (bench/memory/calibrate_cpu.py): the tokenizer and the logits chunk dominate
QWEN_VOCAB = dict(hidden=256, intermediate=704, layers=2, heads=4, kv_heads=2, vocab=151646, tied=True)
SHAPES = {"toy": TOY, "small": SMALL, "qwen-vocab": QWEN_VOCAB}


def _shape(spec: dict) -> ModelShape:
    return ModelShape(hidden=spec["hidden"], layers=spec["layers"], intermediate=spec["intermediate"], heads=spec["heads"],
                      kv_heads=spec["kv_heads"], head_dim=spec["hidden"] // spec["heads"], vocab=spec["vocab"],
                      tied=spec["tied"])


def _config(run: dict) -> TrainConfig:
    return TrainConfig(train_data="x.jsonl", training_strategy=run["strategy"], seq_length=run["seq_length"],
                       per_device_train_batch_size=run["per_device_train_batch_size"],
                       lora_dim=0 if run["method"] == "full" else run.get("lora_dim", 32),
                       lora_dropout=run.get("lora_dropout", 0.0),
                       load_in_4bit=run["method"] == "qlora4", gradient_checkpointing=run.get("gradient_checkpointing", False))


def _cpu_runs():
    return [pytest.param(r, id=r["name"]) for r in DATA["cpu_runs"]]


def _reference_runs():
    return [pytest.param(r, id=r["name"]) for r in DATA["reference_runs"]]


def test_the_data_file_has_its_sources():
    assert len(DATA["cpu_runs"]) >= 9 and DATA["cpu_source"]["command"] == "python bench/memory/measure.py"
    assert all(r.get("source") for r in DATA["reference_runs"])
    assert {r["device"] for r in DATA["reference_runs"]} == {"cpu", "cuda"}


def test_toy_shape_is_the_builtin_model(toy_tokenizer):
    from tuneforge.models.builtin import toy_config

    assert ModelShape.from_config(toy_config(len(toy_tokenizer))) == _shape(TOY)


@pytest.mark.parametrize("run", _cpu_runs())
def test_cpu_peak_rss_within_20_percent(run):
    shape = _shape(SHAPES[run["shape"]])
    est = estimate(_config(run), shape, "cpu", "no", longest_row=run["row_tokens"]).total / GIB
    assert abs(est / run["peak_rss_gib"] - 1) <= TOLERANCE, f"estimate {est:.3f} GiB vs measured {run['peak_rss_gib']} GiB"


@pytest.mark.parametrize("run", _reference_runs())
def test_recorded_runs_within_20_percent(run):
    est = estimate(_config(run), _shape(run["shape"]), run["device"], run["mixed_precision"], longest_row=run["row_tokens"])
    # GPU: torch's peak allocated counts tensors only; CPU: peak RSS counts the whole process
    value = (est.allocated if run["device"] == "cuda" else est.total) / GIB
    assert abs(value / run["value_gib"] - 1) <= TOLERANCE, f"estimate {value:.2f} GiB vs measured {run['value_gib']} GiB"


def test_layer_coefficients_match_the_saved_tensors():
    rows = DATA.get("saved_tensors")
    assert rows, "run bench/memory/saved_tensors.py"
    for row in rows:
        # one kv head as wide as the measured kv width; q width = hidden, as in the measured Llama blocks
        shape = ModelShape(hidden=row["hidden"], layers=1, intermediate=row["intermediate"], heads=row["hidden"] // row["kv_width"],
                           kv_heads=1, head_dim=row["kv_width"], vocab=2000, tied=True)
        cfg = TrainConfig(train_data="x.jsonl", lora_dim=row["lora_dim"], lora_dropout=0.05 if row["mode"] == "lora_dropout" else 0.0)
        got = layer_elements(cfg, shape)
        assert abs(got / row["per_layer_elements"] - 1) <= 0.05, (row, got)
