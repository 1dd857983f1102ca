"""GRPO's advantages and clipped loss on values worked out by hand (grpo_loss.py)."""
from __future__ import annotations

import math

import pytest
import torch

from tuneforge.grpo_loss import ADVANTAGE_EPS, group_advantages, policy_loss

LN = math.log


def test_group_advantages_by_scale():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0])  # three groups of two
    # each group: mean 0.5 or 2, Bessel std sqrt(0.5) or 0
    group = group_advantages(rewards, 2, "group")
    s = math.sqrt(0.5) + ADVANTAGE_EPS
    assert group.tolist() == pytest.approx([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0.0, 0.0], abs=1e-6)
    assert group_advantages(rewards, 2, "none").tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0.0, 0.0])
    # batch: std of all six rewards: mean 1, squares 0,1,1,0,1,1 -> var 4/5
    b = math.sqrt(4 / 5) + ADVANTAGE_EPS
    assert group_advantages(rewards, 2, "batch").tolist() == pytest.approx(
        [0.5 / b, -0.5 / b, -0.5 / b, 0.5 / b, 0.0, 0.0], abs=1e-6)


def test_unscorable_completion_stays_out_of_the_baseline():
    rewards = torch.tensor([float("nan"), 1.0, 3.0, 0.0, 2.0, 4.0])  # groups of three
    adv = group_advantages(rewards, 3, "none")
    # group 1 baseline: mean of 1 and 3 = 2; the NaN completion gets 0
    assert adv.tolist() == pytest.approx([0.0, -1.0, 1.0, -2.0, 0.0, 2.0])


def _two_tokens(loss_type, **kw):
    """One completion of two tokens, advantage +1: token 1 ratio 2 (clipped to 1.2), token 2 ratio 1."""
    logps = torch.tensor([[LN(0.5), LN(0.5)]], requires_grad=True)
    old = torch.tensor([[LN(0.25), LN(0.5)]])
    return logps, policy_loss(logps, old, kw.pop("ref", None), torch.tensor([1.0]), torch.ones(1, 2),
                              loss_type=loss_type, epsilon=0.2, epsilon_high=0.2, max_completion_length=4,
                              beta=kw.pop("beta", 0.0), **kw)


@pytest.mark.parametrize("loss_type,loss_sum,units", [
    ("grpo", -1.1, 1.0),  # (-1.2 + -1) / 2 tokens, one completion
    ("bnpo", -1.1, 1.0),  # token mean of the micro-batch
    ("dr_grpo", -0.55, 1.0),  # sum / max_completion_length 4
    ("dapo", -2.2, 2.0),  # token sum over the step's 2 tokens
])
def test_loss_types_aggregate_as_written(loss_type, loss_sum, units):
    logps, out = _two_tokens(loss_type)
    assert float(out.loss_sum.detach()) == pytest.approx(loss_sum)
    assert out.units == units
    assert out.high_clipped.tolist() == [[True, False]]
    out.loss_sum.backward()
    # the clipped token carries no gradient; the unclipped one d(-ratio)/dlogp = -ratio = -1, over the normaliser
    scale = {"grpo": 2, "bnpo": 2, "dr_grpo": 4, "dapo": 1}[loss_type]
    assert logps.grad.flatten().tolist() == pytest.approx([0.0, -1.0 / scale])


def test_negative_advantage_clips_low_and_kl_adds():
    logps = torch.tensor([[LN(0.25)]], requires_grad=True)
    old = torch.tensor([[LN(0.5)]])  # ratio 0.5 < 0.8
    ref = torch.tensor([[LN(0.5)]])  # ref/policy = 2: k3 = 2 - ln 2 - 1
    out = policy_loss(logps, old, ref, torch.tensor([-1.0]), torch.ones(1, 1), loss_type="grpo", beta=0.1,
                      epsilon=0.2, epsilon_high=0.2, max_completion_length=1, kl_ratio_correction=False)
    k3 = 2 - LN(2) - 1
    # -min(0.5 * -1, 0.8 * -1) = 0.8, plus 0.1 * k3
    assert float(out.loss_sum.detach()) == pytest.approx(0.8 + 0.1 * k3)
    assert out.low_clipped.tolist() == [[True]]
    assert float(out.per_token_kl) == pytest.approx(k3)
    corrected = policy_loss(logps, old, ref, torch.tensor([-1.0]), torch.ones(1, 1), loss_type="grpo", beta=0.1,
                            epsilon=0.2, epsilon_high=0.2, max_completion_length=1)
    assert float(corrected.loss_sum.detach()) == pytest.approx(0.8 + 0.1 * k3 * 0.5)  # KL x ratio (0.5)


def test_masked_tokens_do_not_count():
    logps = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out = policy_loss(logps, None, None, torch.tensor([1.0, -1.0]), mask, loss_type="dapo", beta=0.0,
                      epsilon=0.2, epsilon_high=0.28, max_completion_length=3)
    # on-policy ratio 1: -adv per counted token: -1 -1 +1
    assert float(out.loss_sum.detach()) == pytest.approx(-1.0)
    assert out.units == 3.0
