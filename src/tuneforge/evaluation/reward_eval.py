"""``tuneforge eval RUN --data FILE`` for a reward-model run: preference accuracy on prompt/chosen/rejected rows.

The run's own output is loaded as a sequence classifier (``models.reward.load_reward_model``), the file is read
and encoded exactly as training reads it (DPO's pairs, the run's seq_length, template and system prompt, an
optional ``margin`` column), and every pair goes through the training recipe once. Metrics, as training logs
them without the ``eval_`` prefix: ``accuracy`` (pairs whose chosen reward is strictly higher), ``margin``
(mean chosen − rejected reward), ``loss`` (Bradley–Terry), ``chosen_reward``, ``rejected_reward``.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch



def reward_run_settings(model: str | None, adapter: str | None) -> dict[str, Any] | None:
    """The run's config keys when ``model`` is a reward run directory (no separate adapter), else None."""
    from .loading import saved_run_settings

    return saved_run_settings(model, adapter, "reward")


@torch.no_grad()
def evaluate_reward_run(run: str, data_path: str, settings: dict[str, Any], *, batch_size: int | None = None,
                        seq_length: int | None = None, device: str | None = None) -> dict[str, Any]:
    """The results document (``eval_results.json``) of a reward-model run on ``data_path``."""
    from ..data.reward import build_reward_data
    from ..models.reward import RewardScore, load_reward_model
    from ..training.reward import RewardRecipe
    from .loading import eval_config

    cfg = eval_config(settings, data_path, "reward", batch_size=batch_size, seq_length=seq_length)
    model, tokenizer = load_reward_model(run, device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data = build_reward_data(cfg, tokenizer)  # bad rows stop here, as in training
    margins = data.margins  # type: ignore[attr-defined]
    data = dataclasses.replace(data, validation=data.train)  # the whole file is what is evaluated
    data.margins = {"validation": margins["train"]} if "train" in margins else {}  # type: ignore[attr-defined]
    recipe = RewardRecipe(data, tokenizer.pad_token_id, cfg.per_device_train_batch_size, cfg.reward_center_coefficient)
    module, sums = RewardScore(model), {}
    first = next(model.parameters())
    for batch in recipe.eval_batches():
        _, stats = recipe.loss(module, batch.to(first.device))
        for key, value in stats.items():
            sums[key] = sums.get(key, 0.0) + float(value)
    return {"tuneforge_eval": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "model": {"path": str(Path(run).resolve()), "kind": "reward model run"},
            "data": {"path": str(Path(data_path).resolve()), "name": Path(data_path).stem, "format": "preference"},
            "counts": {"rows": len(data.train)},
            "settings": {"seq_length": cfg.seq_length, "batch_size": cfg.per_device_train_batch_size,
                         "margin_column": bool(getattr(data, "margins", {}))},
            "metrics": {"model": recipe.summarize(sums)}, "delta": None, "metric_info": {}}  # run.py adds the versions
