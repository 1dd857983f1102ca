"""A config written by `tuneforge models config builtin:toy` trains as written (only output_dir and a step cap added)."""
from __future__ import annotations

import os

from tuneforge.config import load_config
from tuneforge.gallery.cli import config_text


def test_toy_config_trains(tmp_path, monkeypatch):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    monkeypatch.chdir(repo)  # the written config names examples/data relative to the repository root
    path = tmp_path / "toy.yaml"
    path.write_text(config_text("builtin:toy", "sft", "lora", None, None))
    cfg = load_config(path, [f"output_dir={tmp_path / 'run'}", "max_steps=2", "eval_steps=2"])
    from tuneforge.training.run import run_training

    summary = run_training(cfg, progress=False)
    assert summary.steps == 2 and summary.train_loss is not None
    assert (tmp_path / "run" / "adapter_config.json").is_file()


def test_every_strategys_toy_config_is_valid_and_names_its_example_data(tmp_path, monkeypatch):
    """`models config --strategy` for the post-training family: each writes a config tuneforge accepts, on the
    repository's example data made for that strategy (training them is each strategy's own test)."""
    from tuneforge.gallery import METHODS, STRATEGIES

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    monkeypatch.chdir(repo)
    expected = {"kto": "kto_train.jsonl", "reward": "dpo_train.jsonl", "pretrain": "pretrain"}
    for strategy in STRATEGIES:
        for method in METHODS:
            text = config_text("builtin:toy", strategy, method, None, None)
            path = tmp_path / f"{strategy}-{method}.yaml"
            path.write_text(text, encoding="utf-8")
            cfg = load_config(path)
            assert cfg.training_strategy == strategy
            if strategy in expected:
                assert os.path.basename(str(cfg.train_data)) == expected[strategy], (strategy, cfg.train_data)
