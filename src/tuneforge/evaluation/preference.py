"""Preference metrics on prompt/chosen/rejected rows, as DPO training defines them.

The reference is the run's own (``training.dpo.reference_kind``): a LoRA adapter's base with the adapter
disabled; the adapter a DPO run continued from (base + that adapter, frozen); a full run's starting model;
none for the reference-free losses. Its log-probs are computed once by training's ``precompute_reference``
and the DPO recipe then runs through training's evaluation, giving the logged names without the
``eval_`` prefix: loss, rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies
(reward accuracy), logps/chosen, logps/rejected.
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError
from .loading import EvalModel
from .teacher import training_evaluation

REFERENCE_DESCRIPTIONS = {
    "none": "none (reference-free loss)",
    "adapter_disabled": "the base model (the run's adapter disabled)",
    "adapter": "base + the adapter the run started from ({adapter})",
    "start": "the run's starting model ({model})",
    "itself": "the model itself (not a run, so every reward is 0)",
}


def describe_reference(model: EvalModel, cfg: TrainConfig) -> tuple[str, str]:
    """(training's reference kind, a sentence saying which weights that is for this run)."""
    from ..training.dpo import reference_kind

    adapter = model.settings.get("adapter_name_or_path")
    kind = reference_kind(dataclasses.replace(cfg, adapter_name_or_path=adapter))
    if not model.is_run and kind != "none":
        return kind, REFERENCE_DESCRIPTIONS["itself"]
    if kind == "precompute" and adapter:
        return kind, REFERENCE_DESCRIPTIONS["adapter"].format(adapter=adapter)
    if kind in ("precompute", "copy"):
        return kind, REFERENCE_DESCRIPTIONS["start"].format(model=cfg.model)
    return kind, REFERENCE_DESCRIPTIONS[kind]


@contextlib.contextmanager
def _reference_module(model: EvalModel, kind: str, cfg: TrainConfig) -> Iterator[nn.Module | None]:
    if kind == "none":
        yield None
    elif kind == "adapter_disabled":
        with model.base_model() as base:
            yield model.loss_module(base)
    else:
        adapter = model.settings.get("adapter_name_or_path")
        if kind == "precompute" and adapter:
            if not (Path(adapter) / "adapter_config.json").is_file():
                raise ConfigError(f"the run's DPO reference is the adapter it started from, "
                                  f"adapter_name_or_path={adapter!r}, which is not found from here; run the "
                                  "command from the directory the run was trained in.")
            other = model.load_other(model.source.base, adapter)
        elif not model.source.run_config:
            other = model.model  # a bare model is its own reference: every reward is 0
        else:
            other = model.load_other(cfg.model)
        try:
            yield model.loss_module(other)
        finally:
            del other


def reference_logps(model: EvalModel, cfg: TrainConfig, data: Any) -> tuple[torch.Tensor | None, str]:
    """(N, 2) reference log-probs [chosen, rejected] of the split's pairs (None for reference-free losses)."""
    from ..training.dpo import precompute_reference

    kind, described = describe_reference(model, cfg)
    with _reference_module(model, kind, cfg) as module:
        if module is None:
            return None, described
        values = precompute_reference(module, data.validation.pairs, model.tokenizer.pad_token_id,
                                      cfg.per_device_train_batch_size, model.accelerator)
    return values, described


def _recipe(data: Any, pad_id: int, cfg: TrainConfig, reference: torch.Tensor | None) -> Any:
    """Training's DPO recipe with the run's loss and a precomputed reference (the one place it is built)."""
    from ..preference_losses import bind_from_config
    from ..training.dpo import DPORecipe, NoReference, PrecomputedReference

    source = NoReference() if reference is None else PrecomputedReference({"validation": reference})
    return DPORecipe(data, pad_id, cfg.per_device_train_batch_size, bind_from_config(cfg), source, cfg.packing)


def preference_metrics(data: Any, module: nn.Module, model: EvalModel, cfg: TrainConfig,
                       reference: torch.Tensor | None) -> dict[str, float]:
    """Training's DPO evaluation of ``module`` on ``data.validation`` against precomputed reference log-probs."""
    recipe = _recipe(data, model.tokenizer.pad_token_id, cfg, reference)
    metrics = training_evaluation(recipe, module, model.accelerator)
    return {k.removeprefix("eval_"): v for k, v in metrics.items()}
