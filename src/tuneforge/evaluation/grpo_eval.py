"""``tuneforge eval RUN --data PROMPTS --reward-functions accuracy,format`` for a GRPO run: the mean reward of its
answers, in total and per function, on a prompt file.

The prompts are read as GRPO training reads them (``data/prompts.py``: the run's template, system prompt and
seq_length), and scored as training's evaluation scores its validation prompts — the recipe's own evaluation
(a greedy answer and one sampled answer per prompt), through ``teacher.training_evaluation``. The reward
functions come from the command line only, never from the run's saved config: a run directory from elsewhere
must not run code (as ``trust_remote_code``).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any


from ..errors import ConfigError


def grpo_run_settings(model: str | None, adapter: str | None) -> dict[str, Any] | None:
    """The run's config keys when ``model`` is a grpo run directory (no separate adapter), else None."""
    from .loading import saved_run_settings

    return saved_run_settings(model, adapter, "grpo")


def evaluate_grpo_run(opts: Any) -> dict[str, Any]:
    """The results document (eval_results.json) of a GRPO run on ``opts.data`` with ``opts.reward_functions``."""
    from ..data.prompts import build_prompt_data
    from ..training.grpo import make_grpo_recipe
    from .loading import eval_config, open_eval_model
    from .teacher import training_evaluation

    if not opts.reward_functions:
        raise ConfigError("--reward-functions: a GRPO run is scored by reward functions you name here (e.g. "
                          "--reward-functions accuracy,format); the run's saved ones are not run from its directory.")
    model = open_eval_model(opts.model, None, device=opts.device, dtype=opts.dtype,
                            trust_remote_code=opts.trust_remote_code, allow_pickle_weights=opts.allow_pickle_weights)
    cfg = eval_config(model.settings, opts.data, "grpo", batch_size=opts.batch_size, seq_length=opts.seq_length)
    cfg = dataclasses.replace(cfg, validation_data=opts.data, reward_functions=list(opts.reward_functions),
                              reward_weights=None)
    data = build_prompt_data(cfg, model.tokenizer)  # bad rows stop here, before the weights load
    started = time.perf_counter()
    module = model.loss_module(model.load_weights())
    recipe = make_grpo_recipe(cfg, data, model.tokenizer, module, model.accelerator)
    found = training_evaluation(recipe, module, model.accelerator)
    metrics = {key.removeprefix("eval_"): value for key, value in found.items()}
    return {"tuneforge_eval": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": model.describe(),
            "data": {"path": str(Path(opts.data).resolve()), "name": Path(opts.data).stem, "format": "prompts"},
            "counts": {"rows": len(data.validation.rows) if data.validation else 0},
            "settings": {"reward_functions": list(opts.reward_functions), "seq_length": cfg.seq_length,
                         "max_completion_length": cfg.max_completion_length, "temperature": cfg.temperature,
                         "answers": "greedy ('reward') and one sampled answer per prompt ('reward_sampled')"},
            "metrics": {"tuned": metrics}, "delta": None, "metric_info": {},
            "seconds": round(time.perf_counter() - started, 2)}
