"""DPO and the other preference losses (training_strategy: dpo)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..preference_losses import PREFERENCE_LOSSES
from .keys import config_key

# dpo_loss_type's allowed values: the registered preference losses (preference_losses.py).
PreferenceLossName = Literal[tuple(PREFERENCE_LOSSES)]


@dataclass
class DpoArgs:
    """DPO and the other preference losses (training_strategy: dpo)."""

    dpo_beta: float = config_key(
        0.1, "DPO beta: higher keeps the policy closer to the reference. Ignored for SFT.",
        lo=0.0, lo_open=True, hi=100.0)
    dpo_loss_type: PreferenceLossName = config_key(
        "sigmoid", "Preference loss: sigmoid (the DPO paper's loss), ipo, hinge, or the reference-free simpo and orpo.")
    dpo_reference: Literal["precompute", "copy"] = config_key(
        "precompute", "Full-parameter DPO reference: log-probs precomputed in one pass before training, or a frozen "
        "model copy.")
    simpo_gamma: float = config_key(0.5, "SimPO target reward margin (gamma/beta ratio x beta).", lo=0.0, hi=100.0)
