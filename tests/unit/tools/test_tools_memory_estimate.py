"""The memory estimate's terms, worked out by hand for a small shape, and the advice when it won't fit."""
from __future__ import annotations

import torch

from tuneforge.config import TrainConfig
from tuneforge.models import memory
from tuneforge.models.memory import ModelShape, estimate

SHAPE = ModelShape(hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2, head_dim=16, vocab=100, tied=False)
# per layer: q 64x64 + k 64x32 + v 64x32 + o 64x64 = 12288; MLP 3 x 64 x 128 = 24576 -> 36864; x 2 layers = 73728
BLOCK = 73728
TOTAL = BLOCK + 2 * 100 * 64 + 2 * 2 * 64 + 64  # + untied embeddings and head, 2 norms per layer, final norm = 86848


def _cfg(**keys) -> TrainConfig:
    return TrainConfig(**{"train_data": "x.jsonl", "per_device_train_batch_size": 2, "seq_length": 16, **keys})


def test_shape_counts():
    assert SHAPE.block_linear_params() == BLOCK
    assert SHAPE.total_params() == TOTAL
    # LoRA r=8 on q,k,v,o: 8 x (in + out) = 8 x (128 + 96 + 96 + 128) = 3584 per layer
    assert SHAPE.lora_params(8, ["q_proj", "k_proj", "v_proj", "o_proj"]) == 7168


def test_full_fp32_terms():
    est = estimate(_cfg(lora_dim=0), SHAPE, "cpu")
    assert est.weights == TOTAL * 4 and est.trainable == 0
    assert est.gradients == TOTAL * 4 and est.optimizer == TOTAL * 8
    # 32 tokens x (2 layers x (12x64 + 2x32 + 6x128 = 1600) + 4x64) x 4 bytes = 442368
    # + logits chunk 32 x 100 x 4 x 3 = 38400 + LM-head weight-gradient buffers 100 x 64 x 4 x 2 = 51200
    assert est.activations == 442368 + 38400 + 51200
    assert est.overhead == 0


def test_lora_and_qlora_weights():
    lora = estimate(_cfg(lora_dim=8), SHAPE, "cpu", trainable_params=7168, total_params=TOTAL + 7168)
    assert lora.weights == TOTAL * 4 and lora.trainable == 7168 * 4
    assert lora.gradients == 7168 * 4 and lora.optimizer == 7168 * 8
    q4 = estimate(_cfg(lora_dim=8, load_in_4bit=True), SHAPE, "cuda", "bf16")
    # quantized block linears 0.5 byte (+4% scales); embeddings, head and norms in bf16
    assert q4.weights == BLOCK * 0.5 * 1.04 + (TOTAL - BLOCK) * 2
    assert q4.overhead == memory.CUDA_CONTEXT_GIB * memory.GIB
    # gradient checkpointing keeps each layer's input plus one layer's activations
    ckpt = estimate(_cfg(lora_dim=8, gradient_checkpointing=True), SHAPE, "cpu")
    assert ckpt.activations < lora.activations


def test_shorter_rows_and_dpo_scale_the_activations():
    full = estimate(_cfg(lora_dim=0), SHAPE, "cpu")
    short = estimate(_cfg(lora_dim=0), SHAPE, "cpu", longest_row=8)
    dpo = estimate(_cfg(lora_dim=0, training_strategy="dpo"), SHAPE, "cpu")
    per_token = 442368 / 32
    assert full.activations - short.activations == 16 * per_token + 16 * 100 * 4 * 3
    assert dpo.activations - full.activations == 32 * per_token + 32 * 100 * 4 * 3


class _Model:
    def __init__(self):
        from transformers import LlamaConfig

        self.config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, vocab_size=100)


def test_warning_with_concrete_suggestions(monkeypatch):
    monkeypatch.setattr(memory, "device_memory", lambda device: memory.DeviceMemory("tiny GPU", 1e5, 1e5))
    lines, record = memory.estimate_lines(_cfg(lora_dim=8, per_device_train_batch_size=4), _Model(),
                                          torch.device("cpu"), "no", total_params=TOTAL, trainable_params=7168)
    text = "\n".join(lines)
    assert "WARNING" in text and "tiny GPU" in text
    assert "load_in_4bit: true (QLoRA)" in text
    assert "per_device_train_batch_size: 2, gradient_accumulation_steps: 2" in text
    assert "gradient_checkpointing: true" in text
    assert record["memory_estimate_total_gib"] > 0 and record["device_memory_usable_gib"] == round(1e5 / memory.GIB, 3)


def test_no_warning_when_it_fits(monkeypatch):
    monkeypatch.setattr(memory, "device_memory", lambda device: memory.DeviceMemory("big", 1e12, 1e12))
    lines, _ = memory.estimate_lines(_cfg(lora_dim=0), _Model(), torch.device("cpu"), "no",
                                     total_params=TOTAL, trainable_params=TOTAL)
    assert len(lines) == 1 and "memory estimate" in lines[0]


def test_curves_plot_from_metrics(tmp_path):
    from tuneforge.plots import plot_metrics_file

    metrics = tmp_path / "metrics.jsonl"
    rows = [{"event": "start", "step": 0, "host_rss_gib": 0.5}, {"step": 0, "eval_loss": 3.0, "host_rss_gib": 0.6},
            {"step": 1, "loss": 2.5, "learning_rate": 1e-4, "host_rss_gib": 0.7}]
    metrics.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows) + '{"torn', encoding="utf-8")
    out = plot_metrics_file(metrics)
    assert out == tmp_path / "training_curves.png" and out.read_bytes()[:4] == b"\x89PNG"
