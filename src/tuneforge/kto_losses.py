"""The KTO loss (Kahneman-Tversky Optimization) as a small pure function.

Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization",
https://arxiv.org/abs/2402.01306, eq. (7)-(8):

    r(x, y)  = log pi(y|x) - log pi_ref(y|x)                     (the implied reward, before beta)
    z0       = max(0, mean over mismatched pairs (x, y') of r(x, y'))   (the KL reference point, no gradient)
    loss(x, y) = lambda_D * (1 - sigmoid(beta * (r - z0)))   if y is desirable
               = lambda_U * (1 - sigmoid(beta * (z0 - r)))   if y is undesirable

z0 is estimated per micro-batch from its KL rows (each prompt paired with another row's completion); as in
the paper and TRL's KTOTrainer it is detached and clamped at 0 after the mean. Rewards reported are
``beta * r`` (detached).
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class KTOOutput(NamedTuple):
    losses: torch.Tensor  # (B,) per-row weighted loss
    rewards: torch.Tensor  # (B,) beta * (policy - reference) log-prob, detached
    kl: torch.Tensor  # () the reference point z0, detached


def kto_loss(policy_logps: torch.Tensor, reference_logps: torch.Tensor, desirable: torch.Tensor,
             policy_kl_logps: torch.Tensor, reference_kl_logps: torch.Tensor, *, beta: float,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> KTOOutput:
    """Per-row KTO losses; ``desirable`` is a bool (B,) tensor, the log-probs are summed over each completion."""
    kl = (policy_kl_logps - reference_kl_logps).mean().detach().clamp(min=0)
    logratios = policy_logps - reference_logps
    good = desirable_weight * (1 - torch.sigmoid(beta * (logratios - kl)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (kl - logratios)))
    return KTOOutput(torch.where(desirable, good, bad), beta * logratios.detach(), kl)


def ratio_advice(n_desirable: int, n_undesirable: int, desirable_weight: float,
                 undesirable_weight: float) -> str | None:
    """A warning with the numbers when the weights are outside the paper's recommended range, else None.

    The paper (section 4.2, eq. 8) recommends lambda_D * n_D / (lambda_U * n_U) in [1, 4/3]; like TRL, the
    weights count as fine when either of them alone would be in its range given the other."""
    if n_desirable == n_undesirable or not n_desirable or not n_undesirable:
        return None
    d_lo = n_undesirable * undesirable_weight / n_desirable
    u_hi = n_desirable * desirable_weight / n_undesirable
    d_ok = d_lo <= desirable_weight <= d_lo * 4 / 3
    u_ok = u_hi * 3 / 4 <= undesirable_weight <= u_hi
    if d_ok or u_ok:
        return None
    ratio = desirable_weight * n_desirable / (undesirable_weight * n_undesirable)
    return (f"warning: {n_desirable} desirable and {n_undesirable} undesirable rows with kto_desirable_weight="
            f"{desirable_weight:g} and kto_undesirable_weight={undesirable_weight:g} give weighted ratio {ratio:.2f}; "
            f"the KTO paper recommends 1 to 1.33: set kto_desirable_weight in [{d_lo:.2f}, {d_lo * 4 / 3:.2f}] "
            f"or kto_undesirable_weight in [{u_hi * 3 / 4:.2f}, {u_hi:.2f}] (not both)")
