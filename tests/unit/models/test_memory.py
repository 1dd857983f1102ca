"""The memory estimate's terms worked out by hand for a small shape; the banner; the advice when a run won't fit."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from tuneforge.config import TrainConfig
from tuneforge.models import memory, memory_report
from tuneforge.models.memory import GIB, TOKENIZER_BYTES_PER_TOKEN, ModelShape, estimate

SHAPE = ModelShape(hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2, head_dim=16, vocab=100, tied=False)
# per layer: q 64x64 + k 64x32 + v 64x32 + o 64x64 = 12288; MLP 3 x 64 x 128 = 24576 -> 36864; x 2 layers = 73728
BLOCK = 73728
TOTAL = BLOCK + 2 * 100 * 64 + 2 * 2 * 64 + 64  # + untied embeddings and head, 2 norms per layer, final norm = 86848
CPU = memory.PROFILES["cpu"]


def _cfg(**keys) -> TrainConfig:
    return TrainConfig(**{"train_data": "x.jsonl", "per_device_train_batch_size": 2, "seq_length": 16,
                          "lora_dropout": 0.0, **keys})


def test_shape_counts():
    assert SHAPE.block_linear_params() == BLOCK
    assert SHAPE.total_params() == TOTAL
    # LoRA r=8 on q,k,v,o: 8 x (in + out) = 8 x (128 + 96 + 96 + 128) = 3584 per layer
    assert SHAPE.lora_params(8, ["q_proj", "k_proj", "v_proj", "o_proj"]) == 7168


def test_layer_elements_by_method():
    # LoRA r8 on q,k,v,o: 5 x 64 + 2 x 32 + 3 x 128 + 8 x 4 = 800
    assert memory.layer_elements(_cfg(lora_dim=8), SHAPE) == 800
    # + dropout: 1.75 x the inputs of the 4 adapted projections (4 x 64)
    assert memory.layer_elements(_cfg(lora_dim=8, lora_dropout=0.1), SHAPE) == 800 + 1.75 * 256
    # full: 8 x 64 + 2 x 32 + 4 x 128 = 1088
    assert memory.layer_elements(_cfg(lora_dim=0), SHAPE) == 1088
    # adapters on the MLP keep its normed input (gate/up) and the product (down): + 64 + 128, + rank x 3
    all_linear = _cfg(lora_dim=8, lora_target_modules=["all-linear"])
    assert memory.layer_elements(all_linear, SHAPE) == 800 + 8 * 3 + 64 + 128


def test_full_fp32_terms():
    est = estimate(_cfg(lora_dim=0), SHAPE, "cpu")
    assert est.weights == TOTAL * 4 and est.trainable == 0
    assert est.gradients == TOTAL * 4 and est.optimizer == TOTAL * 8
    # 32 tokens x (2 layers x 1088 + 7 x 64 outside the layers) x 4 bytes x the CPU scale
    assert est.activations == pytest.approx(32 * (2 * 1088 + 448) * 4 * CPU.activation_scale)
    # one chunk of fp32 logits (32 rows x 100) + the fp32 LM-head gradient buffer (100 x 64)
    assert est.logits == 32 * 100 * CPU.logits_bytes + 100 * 64 * 4
    # the process baseline, what the C allocator keeps of freed blocks (1.2x the activations, at least the logits
    # chunk, capped) and the tokenizer (its vocabulary: 100 tokens here)
    retained = min(max(CPU.retained_ratio * est.activations, est.logits), CPU.retained_cap_gib * GIB)
    assert est.overhead == pytest.approx(CPU.runtime_gib * GIB + retained + 100 * TOKENIZER_BYTES_PER_TOKEN)
    assert est.total == pytest.approx(est.allocated + est.overhead)


def test_lora_and_qlora_weights():
    lora = estimate(_cfg(lora_dim=8), SHAPE, "cpu", trainable_params=7168, total_params=TOTAL + 7168)
    assert lora.weights == TOTAL * 4 and lora.trainable == 7168 * 4
    assert lora.gradients == 7168 * 4 and lora.optimizer == 7168 * 8
    q4 = estimate(_cfg(lora_dim=8, load_in_4bit=True), SHAPE, "cuda", "bf16")
    # quantized block linears 0.5 byte (+4% scales); embeddings, head and norms in fp32 (peft's k-bit preparation)
    assert q4.weights == BLOCK * 0.5 * 1.04 + (TOTAL - BLOCK) * 4
    gpu = memory.PROFILES["cuda"]
    assert q4.overhead == pytest.approx(gpu.runtime_gib * GIB + gpu.allocator_slack * q4.allocated)
    ckpt = estimate(_cfg(lora_dim=8, gradient_checkpointing=True), SHAPE, "cpu")
    # checkpointing keeps each layer's input, plus one layer recomputed and its gradients
    assert ckpt.activations == pytest.approx(32 * (2 * 64 + 2 * 800 + 80) * 4 * CPU.activation_scale)


def test_batch_never_exceeds_the_data_and_dpo_doubles_the_rows():
    huge = estimate(_cfg(lora_dim=0, per_device_train_batch_size=16384), SHAPE, "cpu", train_rows=360)
    rows = estimate(_cfg(lora_dim=0, per_device_train_batch_size=360), SHAPE, "cpu")
    assert huge.total == rows.total
    sft = estimate(_cfg(lora_dim=0), SHAPE, "cpu")
    dpo = estimate(_cfg(lora_dim=0, training_strategy="dpo"), SHAPE, "cpu")
    assert dpo.activations == pytest.approx(2 * sft.activations)
    short = estimate(_cfg(lora_dim=0), SHAPE, "cpu", longest_row=8)
    assert short.activations == pytest.approx(sft.activations / 2)


def test_largest_batch_is_the_edge_of_the_budget():
    cfg = _cfg(lora_dim=8)
    budget = estimate(dataclasses.replace(cfg, per_device_train_batch_size=37), SHAPE, "cuda", "bf16").total
    assert memory.largest_batch(cfg, SHAPE, "cuda", "bf16", budget) == 37
    assert memory.largest_batch(cfg, SHAPE, "cuda", "bf16", 1.0) == 0


class _Model:
    def __init__(self, layers=2):
        from transformers import LlamaConfig

        self.config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
                                  num_key_value_heads=2, vocab_size=100)


def _lines(monkeypatch, cfg, usable, device="cpu", layers=2, **kw):
    monkeypatch.setattr(memory, "device_memory", lambda device: memory.DeviceMemory("test device", usable, usable))
    shape = dataclasses.replace(SHAPE, layers=layers)
    trainable = shape.lora_params(8, cfg.lora_target_modules) if cfg.lora_dim else shape.total_params()
    total = shape.total_params() + (trainable if cfg.lora_dim else 0)
    return memory_report.estimate_lines(cfg, _Model(layers), torch.device(device), "no", total_params=total,
                                        trainable_params=trainable, **kw)


def test_banner_says_what_the_estimate_covers(monkeypatch):
    lines, record = _lines(monkeypatch, _cfg(lora_dim=0), 1e12)
    assert "peak RSS of the training process" in lines[0] and "runtime" in lines[0]
    assert record["memory_estimate_overhead_gib"] >= CPU.runtime_gib
    assert record["memory_estimate_total_gib"] >= CPU.runtime_gib  # comparable with the end banner's peak RSS
    assert not any("WARNING" in line for line in lines)
    gpu_lines, _ = _lines(monkeypatch, _cfg(lora_dim=0), 1e12, device="cuda")
    assert "peak GPU memory" in gpu_lines[0] and "CUDA context" in gpu_lines[0]


def test_advice_never_suggests_something_worse(monkeypatch):
    """Issue 12: full training of a tiny model with a huge batch was told to use LoRA/QLoRA (more memory)."""
    cfg = _cfg(lora_dim=0, per_device_train_batch_size=16384, seq_length=512)
    now = estimate(cfg, SHAPE, "cpu", train_rows=360).total
    lines, _ = _lines(monkeypatch, cfg, now * 0.6, train_rows=360)
    text = "\n".join(lines)
    assert "WARNING" in text
    assert "larger than the 360 training rows" in text and "360 x 512 tokens" in text
    tips = [line for line in lines if line.startswith("    - ")]
    assert tips
    for tip in tips:
        assert float(tip.split("about ")[1].split(" GiB")[0]) < now / GIB
    # on a 2-layer model checkpointing keeps more than it saves (one layer recomputed + its gradients): not offered
    assert not any("gradient_checkpointing" in t for t in tips)
    assert any("per_device_train_batch_size:" in t and "(fits)" in t for t in tips)  # the batch that fits comes first
    assert "(fits)" in tips[0]


def test_advice_for_lora_offers_batch_checkpointing_and_qlora(monkeypatch):
    cfg = _cfg(lora_dim=8, per_device_train_batch_size=64, seq_length=512)
    now = estimate(cfg, dataclasses.replace(SHAPE, layers=8), "cpu").total
    lines, record = _lines(monkeypatch, cfg, (now + CPU.runtime_gib * GIB) / 2, layers=8)
    text = "\n".join(lines)
    assert "gradient_checkpointing: true" in text and "same rows per step" in text
    assert record["device_memory_usable_gib"] < record["memory_estimate_total_gib"]
    assert memory_report.checkpointing_needed(dataclasses.replace(cfg, gradient_checkpointing="auto"), record)
    assert not memory_report.checkpointing_needed(cfg, record)  # only for 'auto'
