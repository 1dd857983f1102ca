"""The KTO loss against values worked out by hand (kto_losses.py), and the paper's weight advice."""
from __future__ import annotations

import math

import pytest
import torch

from tuneforge.kto_losses import kto_loss, ratio_advice


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_kto_loss_by_hand():
    # beta 0.5; row 0 desirable, row 1 undesirable; log-ratios +1 and -1;
    # KL rows: policy - reference = 0.4 and 0.8 -> z0 = 0.6
    out = kto_loss(torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0]), torch.tensor([True, False]),
                   torch.tensor([-1.0, -1.0]), torch.tensor([-1.4, -1.8]), beta=0.5,
                   desirable_weight=1.0, undesirable_weight=2.0)
    assert float(out.kl) == pytest.approx(0.6, abs=1e-6)
    # desirable: 1 - sigmoid(0.5 * (1 - 0.6)) = 1 - sigmoid(0.2) = 0.450166
    # undesirable: 2 * (1 - sigmoid(0.5 * (0.6 - (-1)))) = 2 * (1 - sigmoid(0.8)) = 0.620052
    assert out.losses.tolist() == pytest.approx([1 - _sigmoid(0.2), 2 * (1 - _sigmoid(0.8))], abs=1e-6)
    assert out.losses.tolist() == pytest.approx([0.450166, 0.620052], abs=1e-6)
    assert out.rewards.tolist() == pytest.approx([0.5, -0.5], abs=1e-6)


def test_kl_is_clamped_at_zero_and_carries_no_gradient():
    policy_kl = torch.tensor([-2.0, -2.0], requires_grad=True)
    policy = torch.tensor([-1.0], requires_grad=True)
    out = kto_loss(policy, torch.tensor([-1.0]), torch.tensor([True]), policy_kl, torch.tensor([-1.0, -1.0]), beta=1.0)
    assert float(out.kl) == 0.0  # mean -1 clamped
    assert float(out.losses[0].detach()) == pytest.approx(0.5)  # 1 - sigmoid(0)
    out.losses.sum().backward()
    assert policy_kl.grad is None and policy.grad is not None
    assert float(policy.grad) == pytest.approx(-0.25)  # d/dx (1 - sigmoid(x)) at 0


def test_ratio_advice_gives_the_paper_range():
    assert ratio_advice(100, 100, 1.0, 1.0) is None
    text = ratio_advice(100, 300, 1.0, 1.0)
    assert "100 desirable and 300 undesirable" in text and "[3.00, 4.00]" in text and "[0.25, 0.33]" in text
    assert ratio_advice(100, 300, 3.5, 1.0) is None  # 3.5 x 100 / 300 = 1.17, inside [1, 4/3]
    assert ratio_advice(300, 100, 1.0, 2.5) is None  # 300 / (2.5 x 100) = 1.2
    assert ratio_advice(300, 100, 1.0, 1.0) is not None
