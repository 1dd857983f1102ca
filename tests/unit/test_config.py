import pytest

from tuneforge.config import TrainConfig, from_dict, load_config, help_lines
from tuneforge.errors import ConfigError


def test_defaults_follow_the_guide(data):
    cfg = from_dict({"train_data": data})
    assert cfg.lora_dim == 32 and cfg.dpo_beta == 0.1 and cfg.training_strategy == "sft"
    assert cfg.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert cfg.resolved_lora_alpha == 64.0
    assert cfg.method == "lora"


@pytest.mark.parametrize("overrides, method", [
    ({"lora_dim": 0}, "full"),
    ({"load_in_4bit": True}, "qlora-4bit"),
    ({"load_in_8bit": True}, "qlora-8bit"),
])
def test_method_from_keys(data, overrides, method):
    assert from_dict({"train_data": data, **overrides}).method == method


@pytest.mark.parametrize("raw, needle", [
    ({"learnig_rate": 1e-4}, "did you mean 'learning_rate'"),
    ({"lora_dim": "big"}, "lora_dim='big': expected integer"),
    ({"lora_dim": -1}, "lora_dim=-1: must be >= 0"),
    ({"learning_rate": 0}, "learning_rate=0.0: must be > 0"),
    ({"per_device_train_batch_size": 0}, "per_device_train_batch_size=0"),
    ({"apply_chat_template": "maybe"}, "apply_chat_template='maybe': expected boolean"),
    ({"training_strategy": "ppo"}, "training_strategy='ppo': expected one of 'sft', 'dpo'"),
    ({"lr_scheduler_type": "cosin"}, "did you mean 'cosine'"),
    ({"load_in_4bit": True, "load_in_8bit": True}, "choose one quantization"),
    ({"load_in_4bit": True, "lora_dim": 0}, "quantized weights cannot be trained directly"),
    ({"validation_split": 0.9}, "validation_split=0.9: must be <= 0.5"),
    ({"metric_for_best_model": "eval_rewards/accuracies"}, "metric_for_best_model"),
])
def test_invalid_values_are_refused_with_key_and_value(data, raw, needle):
    with pytest.raises(ConfigError) as err:
        from_dict({"train_data": data, **raw})
    assert needle in str(err.value)


def test_missing_data_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="train_data='nope.jsonl': no such file"):
        from_dict({"train_data": "nope.jsonl"})


def test_yaml_overrides_and_relative_paths(tmp_path, data):
    (tmp_path / "sub").mkdir()
    cfg_file = tmp_path / "sub" / "c.yaml"
    (tmp_path / "sub" / "rows.jsonl").write_text('{"prompt": "q", "completion": "a"}\n')
    cfg_file.write_text("train_data: rows.jsonl\nlearning_rate: 1e-4\nlora_target_modules: [q_proj]\n")
    cfg = load_config(cfg_file, ["learning_rate=3e-4", "num_train_epochs=2", "system_prompt=Be kind."])
    assert cfg.learning_rate == 3e-4 and cfg.num_train_epochs == 2.0 and cfg.system_prompt == "Be kind."
    assert cfg.train_data == str(tmp_path / "sub" / "rows.jsonl")
    assert cfg.lora_target_modules == ["q_proj"]


def test_broken_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1e-4\nlora_dim: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml', line"):
        load_config(bad)


def test_every_key_has_help_and_default():
    rows = help_lines()
    assert {r[0] for r in rows} >= {"learning_rate", "num_train_epochs", "per_device_train_batch_size", "seq_length",
                                    "lora_dim", "lora_alpha", "dpo_beta", "load_in_4bit", "load_in_8bit",
                                    "gradient_accumulation_steps", "apply_chat_template", "system_prompt"}
    assert all(r[3] for r in rows)
    assert len(rows) == len(TrainConfig.__dataclass_fields__)


def test_config_file_that_is_not_utf8_or_not_a_mapping(tmp_path):
    latin = tmp_path / "c.yaml"
    latin.write_bytes("system_prompt: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(latin)
    listing = tmp_path / "l.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listing)
