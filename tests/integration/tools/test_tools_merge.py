"""`tuneforge merge`: the merged model computes what base + adapter compute; QLoRA adapters are merged
into 16/32-bit base weights; a full-parameter run has nothing to merge."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from tuneforge.cli import main


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merged_logits_equal_base_plus_adapter(lora_run, tools_model_dir, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    assert main(["merge", str(lora_run), "--output", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    ids = torch.tensor([[5, 17, 230, 99, 1000, 42, 7, 3]])
    base = AutoModelForCausalLM.from_pretrained(str(tools_model_dir), dtype=torch.float32)
    plain = _logits(base, ids)
    adapted = _logits(PeftModel.from_pretrained(base, str(lora_run)).eval(), ids)
    merged = _logits(AutoModelForCausalLM.from_pretrained(str(out)).eval(), ids)
    assert (adapted - plain).abs().max() > 1e-3  # the adapter changes the model, so equality below means something
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=1e-4)
    settings = yaml.safe_load((out / "tuneforge_config.yaml").read_text())
    assert settings["system_prompt"] == "You answer as a ship's cook." and settings["lora_dim"] == 0


def test_adapter_from_quantized_training_merges_into_full_precision(lora_run, tmp_path, capsys):
    run = tmp_path / "qlora-run"
    shutil.copytree(lora_run, run)
    cfg_path = run / "tuneforge_config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["load_in_4bit"] = True
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "merged"
    assert main(["merge", str(run), "--output", str(out)]) == 0
    said = capsys.readouterr().out
    assert "4-bit" in said and "never into quantized weights" in said and "float32" in said
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert yaml.safe_load((out / "tuneforge_config.yaml").read_text())["_merged"]["trained_on_quantized_base"] == "4-bit"


def test_full_run_and_existing_output_are_refused(full_run, lora_run, tmp_path, capsys):
    assert main(["merge", str(full_run), "--output", str(tmp_path / "m")]) == 2
    assert "nothing to merge" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep")
    assert main(["merge", str(lora_run), "--output", str(busy)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (busy / "x").read_text() == "keep"


@pytest.mark.slow
def test_real_qlora_run_merges(tools_model_dir, tools_data, tmp_path, capsys):
    """A run trained with load_in_4bit (bitsandbytes' CPU backend) merges into the fp32 base."""
    import tuneforge

    run = tmp_path / "qlora"
    tuneforge.train(dict(model=str(tools_model_dir), train_data=str(tools_data["sft"]), output_dir=str(run),
                         max_steps=2, lora_dim=8, load_in_4bit=True, per_device_train_batch_size=4, seq_length=96),
                    progress=False)
    assert main(["merge", str(run), "--output", str(tmp_path / "m")]) == 0
    assert "4-bit quantized base" in capsys.readouterr().out
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))
    assert merged.dtype == torch.float32 and getattr(merged.config, "quantization_config", None) is None
