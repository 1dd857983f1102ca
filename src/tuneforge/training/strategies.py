"""The training strategies, as one static table: how each builds its data and its recipe.

A strategy is the part of a run that differs between SFT and DPO; everything else (setup, the loop,
checkpoints, outputs) is shared. The table is written out here rather than filled in when the recipe
modules are imported, so nothing depends on import order and there is no import cycle with the run.
Adding a strategy: docs/architecture.md, "Add a training strategy".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..config import TrainConfig
from ..data.dpo import build_dpo_data
from ..data.prompts import build_prompt_data
from ..data.kto import build_kto_data
from ..data.pretrain import build_pretrain_data
from ..data.reward import build_reward_data
from ..data.sft import build_sft_data
from ..errors import ConfigError
from ..models.reward import RewardScore
from .dpo import make_dpo_recipe
from .grpo import describe_prompts, make_grpo_recipe
from .kto import describe_feedback, make_kto_recipe
from .pretrain import describe_documents, make_pretrain_recipe
from .reward import make_reward_recipe
from .reporting import describe_splits
from .sft import make_sft_recipe


@dataclass(frozen=True)
class Strategy:
    """How one training strategy builds its data and its recipe; the rest of a run is shared."""

    build_data: Callable[[TrainConfig, Any], Any]  # (cfg, tokenizer) -> data; bad data is refused here
    make_recipe: Callable[..., Any]  # (cfg, data, tokenizer, loss_module, accelerator) -> loop.Recipe
    describe_data: Callable[[Any], str]  # data -> the start banner's data line
    # model -> the module the loop runs (default: models.forward.CausalLMLoss)
    wrap_model: Callable[[Any], Any] | None = None


def _describe_rows(data: Any) -> str:
    val = data.validation
    return describe_splits("rows", len(data.train.rows), data.train.truncated,
                           (len(val.rows), val.truncated) if val else None, data.report.summary())


def _describe_pairs(data: Any) -> str:
    val = data.validation
    return describe_splits("pairs", len(data.train.pairs), data.train.truncated,
                           (len(val.pairs), val.truncated) if val else None, data.report.summary())


STRATEGIES: dict[str, Strategy] = {
    "sft": Strategy(build_data=build_sft_data, make_recipe=make_sft_recipe, describe_data=_describe_rows),
    "dpo": Strategy(build_data=build_dpo_data, make_recipe=make_dpo_recipe, describe_data=_describe_pairs),
    "grpo": Strategy(build_data=build_prompt_data, make_recipe=make_grpo_recipe, describe_data=describe_prompts),
    "kto": Strategy(build_data=build_kto_data, make_recipe=make_kto_recipe, describe_data=describe_feedback),
    "pretrain": Strategy(build_data=build_pretrain_data, make_recipe=make_pretrain_recipe,
                         describe_data=describe_documents),
    "reward": Strategy(build_data=build_reward_data, make_recipe=make_reward_recipe, describe_data=_describe_pairs,
                       wrap_model=RewardScore),
}


def strategy_for(cfg: TrainConfig) -> Strategy:
    try:
        return STRATEGIES[cfg.training_strategy]
    except KeyError:
        raise ConfigError(f"training_strategy={cfg.training_strategy!r}: not available") from None
