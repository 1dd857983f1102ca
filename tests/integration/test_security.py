"""Security: safetensors only (pickle refused unless allowed), torch.load only with weights_only=True,
no shell, no remote code by default, nothing written outside output_dir."""
import os
import re
from pathlib import Path

import pytest
import torch

import tuneforge
from tuneforge.config import TrainConfig
from tuneforge.errors import ConfigError

PACKAGE = Path(tuneforge.__file__).parent


@pytest.fixture(scope="module")
def pickle_only_model(tmp_path_factory, toy_tokenizer):
    from tuneforge.models.builtin import toy_model

    d = tmp_path_factory.mktemp("bin_model")
    model = toy_model(toy_tokenizer)
    model.config.save_pretrained(str(d))
    toy_tokenizer.save_pretrained(str(d))
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    assert not list(d.glob("*.safetensors"))
    return d


def test_pickle_weights_are_refused_with_a_clear_message(tmp_path, sft_file, pickle_only_model):
    with pytest.raises(ConfigError) as err:
        tuneforge.train({"train_data": str(sft_file), "model": str(pickle_only_model), "lora_dim": 4,
                         "output_dir": str(tmp_path / "o"), "max_steps": 1}, progress=False)
    assert "only safetensors" in str(err.value) and "allow_pickle_weights: true" in str(err.value)


def test_package_never_unpickles_shells_out_or_trusts_remote_code():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"
        assert "shell=True" not in text, path
        assert "os.system(" not in text and "pickle.load" not in text, path
        assert "trust_remote_code=True" not in text, path
    assert TrainConfig().trust_remote_code is False and TrainConfig().allow_pickle_weights is False


def test_nothing_is_written_outside_output_dir(tmp_path, sft_file, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = set(os.listdir(tmp_path))
    out = tmp_path / "out"
    tuneforge.train({"train_data": str(sft_file), "output_dir": str(out), "max_steps": 2, "save_steps": 1,
                     "lora_dim": 4, "per_device_train_batch_size": 4}, progress=False)
    assert list(cwd.iterdir()) == []
    assert set(os.listdir(tmp_path)) - before == {"out"}
    assert (out / "base_model" / "config.json").is_file()  # the toy base for the adapter lives inside the run
