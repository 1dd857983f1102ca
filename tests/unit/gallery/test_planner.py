"""The planner: what fits a GPU, with which batch, checkpointing and parallelism — from the run's own estimator."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.gallery import get, plan
from tuneforge.gallery.planner import method_config
from tuneforge.models import memory, memory_report
from tuneforge.models.memory import GIB, SAFETY_MARGIN, ModelShape, Sharding, estimate

BUDGET = 24 * GIB * (1 - SAFETY_MARGIN)


@pytest.fixture(scope="module")
def plan_7b_24():
    return plan("qwen2.5-7b-instruct", 24)


def _by_method(p):
    return {m.method: m for m in p.methods}


def test_7b_on_a_24_gib_card(plan_7b_24):
    methods = _by_method(plan_7b_24)
    assert methods["qlora4"].fits and methods["lora"].fits and not methods["full"].fits
    for name in ("qlora4", "lora"):
        fit = methods[name].fit
        assert fit.batch_size >= 1 and fit.parallelism == "single" and fit.estimate.total <= BUDGET
    # QLoRA needs less memory than LoRA, so it fits at least as large a batch
    assert methods["qlora4"].fit.batch_size >= methods["lora"].fit.batch_size
    full = methods["full"]
    gpus_per = {f.parallelism: f.gpus for f in full.needs}
    assert "zero3" in gpus_per and "fsdp" in gpus_per and 2 <= gpus_per["zero3"] <= 16
    assert all(f.estimate.total <= BUDGET for f in full.needs)
    assert full.minimum.total > 24 * GIB  # even batch 1 with checkpointing does not fit one card
    json.dumps(plan_7b_24.to_dict())


def test_the_batch_reported_is_the_largest_that_fits(plan_7b_24):
    shape = ModelShape.from_config(get("qwen2.5-7b-instruct").hf_config())
    for m in plan_7b_24.methods:
        if not m.fits:
            continue
        cfg = dataclasses.replace(method_config("sft", m.method, 1024), **m.fit.config_keys())
        assert estimate(cfg, shape, "cuda", "bf16").total <= BUDGET
        bigger = dataclasses.replace(cfg, per_device_train_batch_size=m.fit.batch_size + 1)
        assert estimate(bigger, shape, "cuda", "bf16").total > BUDGET


class _Model:
    def __init__(self, config):
        self.config = config


def test_plan_and_run_agree_on_checkpointing(plan_7b_24, monkeypatch):
    """The run's gradient_checkpointing: auto, given the plan's batch on the planned card, decides as the plan."""
    entry = get("qwen2.5-7b-instruct")
    monkeypatch.setattr(memory, "device_memory", lambda device: memory.DeviceMemory("24 GiB GPU", 24 * GIB, 24 * GIB))
    shape = ModelShape.from_config(entry.hf_config())
    for m in plan_7b_24.methods:
        if not m.fits:
            continue
        cfg = dataclasses.replace(method_config("sft", m.method, 1024), gradient_checkpointing="auto",
                                  per_device_train_batch_size=m.fit.batch_size)
        trainable = shape.lora_params(32, cfg.lora_target_modules)
        _, record = memory_report.estimate_lines(cfg, _Model(entry.hf_config()), torch.device("cuda"), "bf16",
                                                 total_params=shape.total_params() + trainable, trainable_params=trainable)
        assert memory_report.checkpointing_needed(cfg, record) == m.fit.gradient_checkpointing, m.method


def test_several_gpus_pick_a_parallelism_and_qlora_never_zero3():
    p = plan("qwen2.5-7b-instruct", 24, gpus=8, method="full")
    (full,) = p.methods
    assert full.fits and full.fit.parallelism in ("zero3", "fsdp") and full.fit.gpus == 8
    assert full.fit.config_keys().get("deepspeed") == "zero3" or full.fit.config_keys().get("fsdp") == "full_shard"
    big = plan("llama-3.1-70b-instruct", 24, gpus=4, method="qlora4")
    assert all(f.parallelism != "zero3" for f in big.methods[0].needs + ([big.methods[0].fit] if big.methods[0].fit else []))


def test_sharding_divides_states_and_weights():
    shape = ModelShape.from_config(get("qwen2.5-7b-instruct").hf_config())
    cfg = method_config("sft", "full", 1024)
    one = estimate(cfg, shape, "cuda", "bf16")
    z2 = estimate(cfg, shape, "cuda", "bf16", sharding=Sharding("zero2", 4))
    z3 = estimate(cfg, shape, "cuda", "bf16", sharding=Sharding("zero3", 4))
    assert z2.weights == one.weights and z2.optimizer == pytest.approx(one.optimizer / 4)
    assert z3.weights < one.weights / 3 and z3.gradients == pytest.approx(one.gradients / 4)


def test_local_directory_and_errors(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                vocab_size=1000).save_pretrained(str(tmp_path))
    p = plan(str(tmp_path), 8)
    assert p.source == str(tmp_path) and all(m.fits for m in p.methods)
    with pytest.raises(ConfigError, match="qwen2.5-7b-instruct"):
        plan("qwen2.5-7b", 24)
    with pytest.raises(TuneforgeError, match="gpu_memory"):
        plan("qwen2.5-7b-instruct", 0)
    with pytest.raises(TuneforgeError, match="method='lora4'"):
        plan("qwen2.5-7b-instruct", 24, method="lora4")
