"""KTO: thumbs-up/down feedback (training_strategy: kto)."""
from __future__ import annotations

from dataclasses import dataclass

from .keys import config_key


@dataclass
class KtoArgs:
    """KTO: thumbs-up/down feedback (training_strategy: kto)."""

    kto_beta: float = config_key(
        0.1, "KTO beta: scales the implied reward log(policy/reference); higher keeps the policy closer to the "
        "reference.", lo=0.0, lo_open=True, hi=100.0)
    kto_desirable_weight: float = config_key(
        1.0, "KTO weight of the desirable (label true) rows' loss. With more undesirable than desirable rows, raise it "
        "so weight x desirable rows is 1 to 1.33 x undesirable weight x undesirable "
        "rows (the KTO paper's range; a warning gives the numbers).", lo=0.0, lo_open=True, hi=100.0)
    kto_undesirable_weight: float = config_key(
        1.0, "KTO weight of the undesirable (label false) rows' loss (see kto_desirable_weight).",
        lo=0.0, lo_open=True, hi=100.0)
