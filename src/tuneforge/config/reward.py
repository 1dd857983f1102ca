"""Reward models (training_strategy: reward)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .keys import config_key


@dataclass
class RewardArgs:
    """Reward models (training_strategy: reward)."""

    reward_center_coefficient: Optional[float] = config_key(
        None, "Reward model: add this x (chosen reward + rejected reward)^2 to each pair's loss, keeping rewards "
        "centred on 0 (Eisenstein et al. 2023; 0.01 is usual). null = off.", lo=0.0, hi=100.0)
