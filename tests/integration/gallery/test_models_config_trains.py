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
