"""GRPO's policy loss as small pure functions: group-relative advantages and the clipped surrogate.

Papers:
- GRPO: Shao et al. 2024, DeepSeekMath, https://arxiv.org/abs/2402.03300 — group-relative advantages
  (reward minus the group mean, over the group std), PPO's clipped ratio, a k3 KL estimate to a reference;
  the loss is averaged per sequence, then over sequences (``grpo``).
- DAPO: Yu et al. 2025, https://arxiv.org/abs/2503.14476 — clip-higher (``epsilon_high`` > ``epsilon``) and a
  token-level average over every completion token of the batch (``dapo``).
- Dr. GRPO: Liu et al. 2025, "Understanding R1-Zero-Like Training", https://arxiv.org/abs/2503.20783 — no
  std scaling (``scale_rewards: none``) and a constant normaliser, completions x max_completion_length
  (``dr_grpo``), removing the length bias of the per-sequence mean.
- ``bnpo``: a token-level average within each micro-batch (TRL's definition, kept for comparability).

The training loop divides a micro-batch's *summed* loss by the step's total *units* (summed over its
micro-batches and processes), so each loss type returns ``(loss_sum, units)`` with units chosen so that the
loop's division gives the type's normaliser exactly, whatever the accumulation and number of processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

ADVANTAGE_EPS = 1e-4  # added to the std before dividing (as the GRPO reference implementations do)


def nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected std ignoring NaN (a completion no reward function could score); NaN for one value."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True) * count / (count - 1).clamp(min=1)
    std = torch.where(count > 1, var.sqrt(), torch.full_like(var, float("nan")))
    return std if dim is None else std.squeeze(dim)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str) -> torch.Tensor:
    """(N,) rewards of N/G prompts x G completions (group-major) -> advantages.

    ``scale``: ``group`` divides by each group's std, ``batch`` by the std of all N rewards, ``none`` does not
    divide (Dr. GRPO). NaN rewards (unscorable completions) stay out of the baseline and get advantage 0.
    """
    grouped = rewards.view(-1, group_size)
    advantages = (grouped - torch.nanmean(grouped, dim=1, keepdim=True)).view(-1)
    if scale == "group":
        std = nanstd(grouped, dim=1).repeat_interleave(group_size) if group_size > 1 else torch.zeros_like(rewards)
        advantages = advantages / (std + ADVANTAGE_EPS)
    elif scale == "batch":
        std = nanstd(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        advantages = advantages / (std + ADVANTAGE_EPS)
    elif scale != "none":
        raise ValueError(f"grpo_scale_rewards={scale!r}")
    return torch.nan_to_num(advantages, nan=0.0)


@dataclass(frozen=True)
class PolicyLossOutput:
    loss_sum: torch.Tensor  # what the loop divides by the step's total units
    units: float  # this micro-batch's share of the normaliser
    per_token_kl: torch.Tensor | None  # (B, T), for the kl metric
    low_clipped: torch.Tensor  # (B, T) bool: ratio below 1-eps with a negative advantage
    high_clipped: torch.Tensor  # (B, T) bool: ratio above 1+eps_high with a positive advantage


def _sequence_mean(loss: torch.Tensor, mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, float]:
    return ((loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum(), float(loss.shape[0])


def _micro_batch_token_mean(loss: torch.Tensor, mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, float]:
    return (loss * mask).sum() / mask.sum().clamp(min=1.0), 1.0


def _constant_normaliser(loss: torch.Tensor, mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, float]:
    return (loss * mask).sum() / max_len, float(loss.shape[0])


def _step_token_mean(loss: torch.Tensor, mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, float]:
    return (loss * mask).sum(), float(mask.sum())


# loss_type -> (per-token loss, mask, max_completion_length) -> (loss_sum, units)
AGGREGATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, float]]] = {
    "grpo": _sequence_mean,  # mean over each completion's tokens, then over completions (DeepSeekMath)
    "bnpo": _micro_batch_token_mean,  # mean over the micro-batch's tokens, then over micro-batches
    "dr_grpo": _constant_normaliser,  # sum / (completions x max_completion_length) (Dr. GRPO)
    "dapo": _step_token_mean,  # mean over every completion token of the step (DAPO)
}


def policy_loss(logps: torch.Tensor, old_logps: torch.Tensor | None, ref_logps: torch.Tensor | None,
                advantages: torch.Tensor, mask: torch.Tensor, *, loss_type: str, beta: float, epsilon: float,
                epsilon_high: float, max_completion_length: int, kl_ratio_correction: bool = True) -> PolicyLossOutput:
    """The clipped surrogate with an optional k3 KL penalty, per completion token (B, T), aggregated by type.

    ``logps``: the policy's token log-probs of the sampled completions (with gradients); ``old_logps``: the same
    under the weights that sampled them (None = these weights, ratio 1 with the gradient of the log-prob);
    ``ref_logps``: under the reference (needed when ``beta`` > 0); ``advantages`` (B,); ``mask`` (B, T) 1 for a
    completion token that counts. ``kl_ratio_correction`` multiplies the KL term by the importance ratio, which
    makes its gradient the unbiased reverse-KL gradient even on-policy (DeepSeek-V3.2, 2025,
    https://arxiv.org/abs/2512.02556; TRL 1.16's default ``use_bias_correction_kl``).
    """
    mask = mask.to(logps.dtype)
    old = logps.detach() if old_logps is None else old_logps
    ratio = torch.exp(logps - old)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    adv = advantages.unsqueeze(1).to(logps.dtype)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = None
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("grpo_beta > 0 needs the reference log-probs")
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1  # k3 estimator of KL(policy || reference), Schulman 2020
        if kl_ratio_correction:
            kl = kl * ratio
        per_token = per_token + beta * kl
    loss_sum, units = AGGREGATIONS[loss_type](per_token, mask, max_completion_length)
    with torch.no_grad():
        low = (ratio < 1 - epsilon) & (adv < 0)
        high = (ratio > 1 + epsilon_high) & (adv > 0)
    return PolicyLossOutput(loss_sum, units, None if kl is None else kl.detach(), low, high)
