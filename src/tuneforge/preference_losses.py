"""Preference losses as small pure functions, each registered with what it needs.

A loss takes one ``PairLogps`` (summed response log-probs of B pairs under the policy and, unless it is
reference-free, the reference) and its hyperparameters as keyword-only arguments, and returns
``PreferenceOutput(losses (B,), chosen_rewards (B,), rejected_rewards (B,))``. The registry records for
each loss whether it needs a reference model and which hyperparameters it takes (read from its
signature); ``bind_from_config`` fixes them from the config when a run builds its loss, so a recipe
calls ``loss(pair)`` and a misspelled or missing hyperparameter is an error at that point, never
silently dropped. The config's allowed ``dpo_loss_type`` values and the reference-free set come from
this registry; adding a loss is one decorated function (docs/architecture.md, "Add a preference loss").

This module does not import torch at import time (the config reads the registry, and ``tuneforge
train --help`` or a config error should not wait for torch); the losses use tensor methods, and
``log_sigmoid`` imports torch when a loss first runs.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

if TYPE_CHECKING:
    from torch import Tensor

# Loss hyperparameter -> the config key that sets it. A new hyperparameter is a config field plus a line here.
CONFIG_KEYS = {"beta": "dpo_beta", "gamma": "simpo_gamma"}


@dataclass(frozen=True)
class PairLogps:
    """Summed response log-probs of B preference pairs (each (B,)), and the response lengths in tokens."""

    policy_chosen: Tensor
    policy_rejected: Tensor
    reference_chosen: Optional[Tensor]  # None for a reference-free loss (no reference pass is run)
    reference_rejected: Optional[Tensor]
    chosen_tokens: Tensor  # trained tokens per chosen response, for length-normalised losses
    rejected_tokens: Tensor

    def reference_margins(self) -> tuple[Tensor, Tensor]:
        """(log πθ(yw|x) − log πref(yw|x), log πθ(yl|x) − log πref(yl|x))."""
        if self.reference_chosen is None or self.reference_rejected is None:
            raise ValueError("this preference loss needs reference log-probs, and none were given")
        return self.policy_chosen - self.reference_chosen, self.policy_rejected - self.reference_rejected


class PreferenceOutput(NamedTuple):
    losses: Tensor  # (B,) per pair
    chosen_rewards: Tensor  # (B,) detached: what the log calls rewards/chosen
    rejected_rewards: Tensor


BoundLoss = Callable[[PairLogps], PreferenceOutput]


@dataclass(frozen=True)
class PreferenceLoss:
    """A registered loss: its function, whether it runs without a reference model, its hyperparameters."""

    name: str
    function: Callable[..., PreferenceOutput]
    reference_free: bool
    hyperparameters: tuple[str, ...]

    def bind(self, **values: float) -> BoundLoss:
        """The loss with its hyperparameters fixed; exactly the declared ones must be given."""
        unknown = sorted(set(values) - set(self.hyperparameters))
        missing = sorted(set(self.hyperparameters) - set(values))
        if unknown or missing:
            raise TypeError(f"preference loss {self.name!r} takes hyperparameters {list(self.hyperparameters)}; "
                            f"unknown: {unknown}, missing: {missing}")
        return functools.partial(self.function, **values)


PREFERENCE_LOSSES: dict[str, PreferenceLoss] = {}


def preference_loss(name: str, *, reference_free: bool = False) -> Callable[[Callable], Callable]:
    """Register ``function(pair, *, hyperparameter, ...)`` under ``name``; its keyword-only parameters
    are the hyperparameters (each must have a config key in ``CONFIG_KEYS``)."""

    def register(function: Callable[..., PreferenceOutput]) -> Callable[..., PreferenceOutput]:
        params = inspect.signature(function).parameters.values()
        hyper = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
        unknown = [h for h in hyper if h not in CONFIG_KEYS]
        if unknown:
            raise TypeError(f"preference loss {name!r}: hyperparameters {unknown} have no config key in CONFIG_KEYS")
        PREFERENCE_LOSSES[name] = PreferenceLoss(name, function, reference_free, hyper)
        return function

    return register


def bind_from_config(cfg: Any) -> BoundLoss:
    """The run's loss (``cfg.dpo_loss_type``) with its hyperparameters read from their config keys."""
    loss = PREFERENCE_LOSSES[cfg.dpo_loss_type]
    return loss.bind(**{h: getattr(cfg, CONFIG_KEYS[h]) for h in loss.hyperparameters})


def log_sigmoid(x: Tensor) -> Tensor:
    from torch.nn.functional import logsigmoid  # torch loads when a loss first runs, not with the config

    return logsigmoid(x)


# ---------------------------------------------------------------------------------------------
# The losses. Hand-worked values for each are in tests/unit/test_losses_preference.py.


@preference_loss("sigmoid")
def dpo_sigmoid_loss(pair: PairLogps, *, beta: float) -> PreferenceOutput:
    """DPO, Rafailov et al. 2023, https://arxiv.org/abs/2305.18290 :
    -log σ(β[(log πθ(yw|x) − log πref(yw|x)) − (log πθ(yl|x) − log πref(yl|x))])."""
    chosen_ratio, rejected_ratio = pair.reference_margins()
    chosen, rejected = beta * chosen_ratio, beta * rejected_ratio
    return PreferenceOutput(-log_sigmoid(chosen - rejected), chosen.detach(), rejected.detach())


@preference_loss("ipo")
def ipo_loss(pair: PairLogps, *, beta: float) -> PreferenceOutput:
    """IPO, Azar et al. 2023, https://arxiv.org/abs/2310.12036 : (h − 1/(2β))² with h the log-ratio margin
    (summed log-probs here, like DPO; the paper's τ is our β)."""
    chosen_ratio, rejected_ratio = pair.reference_margins()
    losses = (chosen_ratio - rejected_ratio - 1.0 / (2.0 * beta)) ** 2
    return PreferenceOutput(losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach())


@preference_loss("hinge")
def hinge_loss(pair: PairLogps, *, beta: float) -> PreferenceOutput:
    """Hinge (SLiC), Zhao et al. 2023, https://arxiv.org/abs/2305.10425 : max(0, 1 − β·margin)."""
    chosen_ratio, rejected_ratio = pair.reference_margins()
    chosen, rejected = beta * chosen_ratio, beta * rejected_ratio
    return PreferenceOutput((1.0 - (chosen - rejected)).relu(), chosen.detach(), rejected.detach())


@preference_loss("simpo", reference_free=True)
def simpo_loss(pair: PairLogps, *, beta: float, gamma: float) -> PreferenceOutput:
    """SimPO, Meng et al. 2024, https://arxiv.org/abs/2405.14734 : reference-free, length-normalised
    −log σ(β/|yw| log πθ(yw|x) − β/|yl| log πθ(yl|x) − γ)."""
    chosen = beta * pair.policy_chosen / pair.chosen_tokens
    rejected = beta * pair.policy_rejected / pair.rejected_tokens
    return PreferenceOutput(-log_sigmoid(chosen - rejected - gamma), chosen.detach(), rejected.detach())


@preference_loss("orpo", reference_free=True)
def orpo_loss(pair: PairLogps, *, beta: float) -> PreferenceOutput:
    """ORPO, Hong et al. 2024, https://arxiv.org/abs/2403.07691 : NLL(yw) + β·(−log σ(log odds(yw) − log odds(yl))),
    with mean token log-probs and odds(y) = p/(1−p). Reference-free."""
    mean_chosen = pair.policy_chosen / pair.chosen_tokens
    mean_rejected = pair.policy_rejected / pair.rejected_tokens
    log_odds = (mean_chosen - (-mean_chosen.exp().clamp(max=1 - 1e-6)).log1p()) - \
               (mean_rejected - (-mean_rejected.exp().clamp(max=1 - 1e-6)).log1p())
    losses = -mean_chosen - beta * log_sigmoid(log_odds)
    return PreferenceOutput(losses, (beta * mean_chosen).detach(), (beta * mean_rejected).detach())


REFERENCE_FREE = frozenset(name for name, loss in PREFERENCE_LOSSES.items() if loss.reference_free)
