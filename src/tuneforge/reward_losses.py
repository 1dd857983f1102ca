"""The reward-model loss (Bradley–Terry) as a small pure function.

Bradley & Terry 1952; as a reward-model objective: Ouyang et al. 2022, "Training language models to follow
instructions with human feedback", https://arxiv.org/abs/2203.02155, eq. (1):

    loss = -log sigmoid(r(x, y_chosen) - r(x, y_rejected) - margin)
           + reward_center_coefficient * (r(x, y_chosen) + r(x, y_rejected))^2

``margin`` (optional, per pair) asks for at least that reward difference (Llama 2, https://arxiv.org/abs/2307.09288,
eq. 2); the centering term (Eisenstein et al. 2023, https://arxiv.org/abs/2312.09244) keeps the rewards near zero
mean. Both as in TRL's RewardTrainer; per pair, so the loop's mean over pairs equals TRL's batch mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None,
                       center_coefficient: float | None = None) -> torch.Tensor:
    """Per-pair losses (B,) from the scalar rewards of the chosen and the rejected sequence."""
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    losses = -F.logsigmoid(diff)
    if center_coefficient is not None:
        losses = losses + center_coefficient * (chosen + rejected) ** 2
    return losses
