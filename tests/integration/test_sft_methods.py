"""Each method trains a few steps, saves, and the saved output reloads to the same logits."""
import json

import pytest
import torch

import tuneforge


def _reload(out, method):
    from transformers import AutoModelForCausalLM

    if method == "full":
        return AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    from peft import PeftModel

    cfg = json.loads((out / "adapter_config.json").read_text())
    kwargs = {}
    if method.startswith("qlora"):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True,
                                                           bnb_4bit_compute_dtype=torch.float32,
                                                           bnb_4bit_quant_storage=torch.float32) \
            if method == "qlora-4bit" else BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": "cpu"}
    base = AutoModelForCausalLM.from_pretrained(cfg["base_model_name_or_path"], dtype=torch.float32, **kwargs)
    if method == "qlora-4bit":
        # bitsandbytes' CPU eval kernel computes in bf16 after repacking; training (and tuneforge's eval)
        # keeps the fp32 layout, so compare like with like.
        from tuneforge.models.load import keep_cpu_4bit_layout

        keep_cpu_4bit_layout(base)
    return PeftModel.from_pretrained(base, out)


@pytest.mark.parametrize("keys, method", [
    ({"lora_dim": 0}, "full"),
    ({"lora_dim": 8}, "lora"),
    ({"lora_dim": 8, "load_in_4bit": True}, "qlora-4bit"),
    ({"lora_dim": 8, "load_in_8bit": True}, "qlora-8bit"),
])
def test_train_save_reload_same_logits(tmp_path, sft_file, keys, method):
    out = tmp_path / "run"
    summary = tuneforge.train({"train_data": str(sft_file), "output_dir": str(out), "max_steps": 3,
                               "per_device_train_batch_size": 4, "learning_rate": 5e-3, "lora_dropout": 0.0,
                               "logging_steps": 1, **keys}, progress=False)
    assert summary.method == method and summary.steps == 3
    assert (out / ("model.safetensors" if method == "full" else "adapter_model.safetensors")).is_file()
    assert (out / "tokenizer_config.json").is_file() and (out / "tuneforge_config.yaml").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 3 and all(l > 0 for l in losses)

    trained = summary.model.eval()
    reloaded = _reload(out, method).eval()
    ids = torch.tensor([[1, 85, 91, 277, 71, 79, 201, 304]])
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        got = reloaded(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    if method != "full":
        # the adapter really changed the model (B starts at zero, so a no-op adapter would give base logits)
        with torch.no_grad(), reloaded.disable_adapter():
            base = reloaded(input_ids=ids).logits
        assert (base - got).abs().max() > 1e-4


def test_qlora_4bit_on_a_model_with_attention_biases(tmp_path, sft_file, toy_tokenizer):
    """Qwen2 has q/k/v biases; bitsandbytes' CPU inference repacking broke biased 4-bit layers in eval."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    model_dir = tmp_path / "qwen2-tiny"
    cfg = Qwen2Config(vocab_size=len(toy_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(model_dir)
    toy_tokenizer.save_pretrained(model_dir)
    summary = tuneforge.train({"model": str(model_dir), "train_data": str(sft_file), "output_dir": str(tmp_path / "o"),
                               "lora_dim": 8, "load_in_4bit": True, "max_steps": 2, "validation_split": 0.25,
                               "per_device_train_batch_size": 4, "seq_length": 256}, progress=False)
    assert summary.method == "qlora-4bit" and len(summary.eval_history) == 2
    assert all(e["eval_loss"] > 0 for e in summary.eval_history)
