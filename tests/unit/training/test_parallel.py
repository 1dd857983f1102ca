"""Multi-device config: strategy keys, refusals with their fix, DeepSpeed config filling, the launcher command."""
import importlib.util
import json
import sys
from types import SimpleNamespace

import pytest
import torch

from tuneforge import preflight
from tuneforge.config import from_dict
from tuneforge.errors import ConfigError
from tuneforge.training import parallel
from tuneforge.training.launch import launch_command

def test_defaults_are_ddp(data):
    cfg = from_dict({"train_data": data})
    assert cfg.fsdp is None and cfg.deepspeed is None
    assert parallel.accelerator_kwargs(cfg, "no") == {}


def test_fsdp_value_checked(data):
    assert from_dict({"train_data": data, "fsdp": "full_shard"}).fsdp == "full_shard"
    with pytest.raises(ConfigError, match="full_shard"):
        from_dict({"train_data": data, "fsdp": "full_shrad"})


def test_fsdp_and_deepspeed_together_refused(data):
    with pytest.raises(ConfigError, match="choose one"):
        from_dict({"train_data": data, "fsdp": "full_shard", "deepspeed": "zero2"})


@pytest.mark.parametrize("quant", ["load_in_4bit", "load_in_8bit"])
def test_qlora_with_zero3_refused_with_suggestion(data, quant):
    with pytest.raises(ConfigError) as err:
        from_dict({"train_data": data, "deepspeed": "zero3", quant: True, "lora_dim": 8})
    text = str(err.value)
    assert "ZeRO-3" in text or "stage 3" in text
    assert "zero2" in text and "fsdp" in text


def test_qlora_with_a_stage3_json_refused(data, tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(ConfigError, match="zero2"):
        from_dict({"train_data": data, "deepspeed": str(path), "load_in_4bit": True})


@pytest.mark.parametrize("value", ["zero2", "zero3"])
def test_missing_deepspeed_refused_with_pip_command(data, value, monkeypatch):
    real_find_spec = importlib.util.find_spec  # deepspeed is a test dependency: hide it as a user without it sees
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="pip install deepspeed"):
        from_dict({"train_data": data, "deepspeed": value})


def test_deepspeed_bad_path_and_bad_json(data, tmp_path):
    with pytest.raises(ConfigError, match="zero2"):
        from_dict({"train_data": data, "deepspeed": str(tmp_path / "missing.json")})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        from_dict({"train_data": data, "deepspeed": str(bad)})


def test_shipped_deepspeed_configs_are_package_data():
    assert parallel.zero_stage(parallel.load_deepspeed_config("zero2")) == 2
    assert parallel.zero_stage(parallel.load_deepspeed_config("zero3")) == 3
    for path in preflight.SHIPPED_DEEPSPEED.values():
        assert path.parent.name == "configs" and path.parent.parent.name == "tuneforge"


def test_deepspeed_auto_values_filled_from_the_run_config(data):
    cfg = from_dict({"train_data": data, "per_device_train_batch_size": 3, "gradient_accumulation_steps": 4,
                     "max_grad_norm": 0.5})
    ds = parallel._fill_auto(parallel.load_deepspeed_config("zero3"), cfg, "bf16")
    assert ds["train_micro_batch_size_per_gpu"] == 3
    # The loop normalises the loss and marks the accumulation boundary itself: DeepSpeed must not divide again.
    assert ds["gradient_accumulation_steps"] == 1
    assert ds["gradient_clipping"] == 0.5
    assert ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert "auto" not in json.dumps(ds)


def test_deepspeed_config_with_its_own_optimizer_refused(data):
    cfg = from_dict({"train_data": data})
    with pytest.raises(ConfigError, match="optimizer"):
        parallel._fill_auto({"zero_optimization": {"stage": 2}, "optimizer": {"type": "Adam"}}, cfg, "no")


def test_fsdp_where_accelerate_would_fall_back_to_ddp_is_refused(data):
    from accelerate.utils import DistributedType

    cfg = from_dict({"train_data": data, "fsdp": "full_shard"})
    cpu_ddp = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="only on GPUs"):
        parallel.check_parallelism(cfg, cpu_ddp)
    parallel.check_parallelism(from_dict({"train_data": data}), cpu_ddp)  # DDP is fine


def test_fsdp_loads_lora_base_weights_in_fp32(data):
    from tuneforge.models.load import Precision

    half = Precision(torch.bfloat16, "bf16", torch.bfloat16)
    assert parallel.adjust_precision(from_dict({"train_data": data, "fsdp": "full_shard"}), half).load_dtype == torch.float32
    assert parallel.adjust_precision(from_dict({"train_data": data}), half).load_dtype == torch.bfloat16


def test_launch_command_is_torchrun_without_shell():
    cmd = launch_command("my config.yaml", ["learning_rate=2e-4", "system_prompt=a b"], 2)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in cmd and "--standalone" in cmd
    i = cmd.index("tuneforge.cli")
    assert cmd[i + 1:] == ["train", "my config.yaml", "learning_rate=2e-4", "system_prompt=a b"]
    assert launch_command(None, ["train_data=x.jsonl"], 3)[-2:] == ["train", "train_data=x.jsonl"]
    with pytest.raises(ConfigError):
        launch_command("c.yaml", [], 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_fsdp_on_a_cpu_only_machine_refused_before_loading(data):
    with pytest.raises(ConfigError, match="only on GPUs"):
        parallel.accelerator_kwargs(from_dict({"train_data": data, "fsdp": "full_shard"}), "no")


@pytest.mark.parametrize("parallelism", [{"fsdp": "full_shard"}, {"deepspeed": "zero3"}])
def test_copied_dpo_reference_refused_with_sharded_weights(data, parallelism):
    with pytest.raises(ConfigError, match="dpo_reference: precompute"):
        from_dict({"train_data": data, "training_strategy": "dpo", "lora_dim": 0, "dpo_reference": "copy",
                   **parallelism})


def test_copied_dpo_reference_accepted_with_zero2(data):
    cfg = from_dict({"train_data": data, "training_strategy": "dpo", "lora_dim": 0, "dpo_reference": "copy",
                     "deepspeed": "zero2"})
    assert cfg.dpo_reference == "copy"


@pytest.mark.parametrize("env,key", [("ACCELERATE_USE_DEEPSPEED", "deepspeed"), ("ACCELERATE_USE_FSDP", "fsdp")])
def test_parallelism_switched_on_by_accelerate_launch_but_not_in_config_refused(data, tmp_path, monkeypatch, env, key):
    """`accelerate launch --use_deepspeed` without the config key would run a parallelism the loop was not set
    up for (or, on CPU, silently DDP): refused, naming the key to set, before anything is written."""
    import tuneforge

    monkeypatch.setenv(env, "true")
    with pytest.raises(ConfigError, match=f"no {key} key"):
        tuneforge.train({"train_data": data, "output_dir": str(tmp_path / "out"), "max_steps": 1}, progress=False)
    assert not (tmp_path / "out" / "metrics.jsonl").exists()
