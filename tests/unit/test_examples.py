"""Every shipped example config is valid, and its data files load."""
from pathlib import Path

import pytest

from tuneforge.config import load_config
from tuneforge.data.formats import load_examples

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "examples" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_is_valid(path):
    # An adapter produced by an earlier example run may not exist yet in a fresh checkout.
    cfg = load_config(path, ["adapter_name_or_path=null"])
    if cfg.training_strategy == "grpo":  # prompt rows: their own reader, which encodes them
        from tuneforge.data.prompts import build_prompt_data
        from tuneforge.models.builtin import toy_tokenizer

        assert build_prompt_data(cfg, toy_tokenizer()).validation.rows
        return
    for data in (cfg.train_data, cfg.validation_data):
        if data:
            assert load_examples(data, cfg.training_strategy)


def test_there_are_examples_for_each_method():
    names = {p.stem for p in CONFIGS}
    assert {"sft_lora", "sft_qlora4", "sft_full"} <= names
