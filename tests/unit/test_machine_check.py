"""A valid config that cannot run on this machine is refused before anything loads (issue 29, item 1)."""
from __future__ import annotations

import pytest

from tuneforge import machine_check
from tuneforge.config import from_dict
from tuneforge.errors import ConfigError


def _cfg(data, **keys):
    return from_dict({"train_data": data, **keys})


def test_a_misspelled_gallery_id_gets_a_did_you_mean(data):
    with pytest.raises(ConfigError, match=r"model='qwen2.5-7b-instruc'.*did you mean 'qwen2.5-7b-instruct'"):
        machine_check.check_machine(_cfg(data, model="qwen2.5-7b-instruc"), "cpu")


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-0.5B-Instruct", "someone/their-model", "builtin:toy"])
def test_hub_ids_and_the_builtin_pass_the_name_check(data, model):
    machine_check.model_facts(_cfg(data, model=model))


def test_seq_length_beyond_the_context_is_refused(data, tmp_path):
    with pytest.raises(ConfigError, match=r"seq_length=100000: longer than qwen2.5-0.5b-instruct's context of 32768"):
        machine_check.check_machine(_cfg(data, model="qwen2.5-0.5b-instruct", seq_length=100000), "cpu")
    local = tmp_path / "tiny"
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=2, vocab_size=100, max_position_embeddings=128).save_pretrained(local)
    with pytest.raises(ConfigError, match=r"seq_length=256: longer than .* context of 128 tokens"):
        machine_check.check_machine(_cfg(data, model=str(local), seq_length=256), "cpu")


def test_a_run_over_the_devices_memory_is_refused_with_ways_that_fit(data, monkeypatch):
    monkeypatch.setattr(machine_check, "device_total", lambda _device: (16 * 2**30, "host RAM"))
    cfg = _cfg(data, model="qwen2.5-7b-instruct", lora_dim=32)
    with pytest.raises(ConfigError) as err:
        machine_check.check_machine(cfg, "cpu")
    message = str(err.value)
    assert message.startswith("memory_check=true: this run is estimated at") and "has 16.0 GiB" in message
    assert "Ways that fit: qlora4" in message and "memory_check: false" in message
    machine_check.check_machine(_cfg(data, model="qwen2.5-7b-instruct", memory_check=False), "cpu")  # the override
    machine_check.check_machine(_cfg(data, model="builtin:toy"), "cpu")  # the toy fits anywhere
