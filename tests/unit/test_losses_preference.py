"""Preference losses against values worked out by hand (the arithmetic is in the comments)."""
from __future__ import annotations

import math

import pytest
import torch

from tuneforge.preference_losses import PREFERENCE_LOSSES, PairLogps

T = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731

# One pair for the reference-based losses:
#   policy: log π(yw|x) = -1, log π(yl|x) = -3;   reference: log πref(yw|x) = -2, log πref(yl|x) = -2
#   chosen log-ratio  = -1 - (-2) = +1
#   rejected log-ratio = -3 - (-2) = -1
PC, PR, RC, RR = T(-1.0), T(-3.0), T(-2.0), T(-2.0)


def _pair(pc, pr, rc, rr, chosen_tokens=None, rejected_tokens=None) -> PairLogps:
    return PairLogps(pc, pr, rc, rr, chosen_tokens, rejected_tokens)


def _close(a: torch.Tensor, b: float) -> None:
    assert a.shape == (1,)
    assert abs(float(a[0]) - b) < 1e-12, (float(a[0]), b)


def test_registry_has_every_configurable_loss():
    import typing

    from tuneforge.config import TrainConfig

    choices = typing.get_args(typing.get_type_hints(TrainConfig)["dpo_loss_type"])
    assert set(PREFERENCE_LOSSES) == set(choices) == {"sigmoid", "ipo", "hinge", "simpo", "orpo"}


def test_sigmoid_hand_worked():
    # β = 0.5: rewards = 0.5·(+1) = 0.5 and 0.5·(-1) = -0.5, margin = 1
    # loss = -log σ(1) = log(1 + e^-1) = 0.31326168751822286
    loss, rc, rr = PREFERENCE_LOSSES["sigmoid"].bind(beta=0.5)(_pair(PC, PR, RC, RR))
    _close(loss, math.log1p(math.exp(-1.0)))
    _close(loss, 0.31326168751822286)
    _close(rc, 0.5)
    _close(rr, -0.5)


def test_sigmoid_policy_equal_to_reference_is_log2():
    # identical policy and reference: every log-ratio is 0, loss = -log σ(0) = log 2 for any β
    torch.manual_seed(0)
    chosen, rejected = -torch.rand(5, dtype=torch.float64) * 50, -torch.rand(5, dtype=torch.float64) * 50
    for beta in (0.1, 0.5, 2.0):
        loss, rc, rr = PREFERENCE_LOSSES["sigmoid"].bind(beta=beta)(_pair(chosen, rejected, chosen.clone(), rejected.clone()))
        torch.testing.assert_close(loss, torch.full((5,), math.log(2.0), dtype=torch.float64))
        assert torch.all(rc == 0) and torch.all(rr == 0)


def test_ipo_hand_worked():
    # h = (+1) - (-1) = 2; β = 1 → target 1/(2β) = 0.5; loss = (2 - 0.5)² = 2.25
    loss, rc, rr = PREFERENCE_LOSSES["ipo"].bind(beta=1.0)(_pair(PC, PR, RC, RR))
    _close(loss, 2.25)
    _close(rc, 1.0)
    _close(rr, -1.0)
    # β = 0.25 → target 2 = h → loss 0
    loss, _, _ = PREFERENCE_LOSSES["ipo"].bind(beta=0.25)(_pair(PC, PR, RC, RR))
    _close(loss, 0.0)


def test_hinge_hand_worked():
    # β = 0.25: rewards ±0.25, margin 0.5; loss = max(0, 1 - 0.5) = 0.5
    loss, rc, rr = PREFERENCE_LOSSES["hinge"].bind(beta=0.25)(_pair(PC, PR, RC, RR))
    _close(loss, 0.5)
    _close(rc, 0.25)
    _close(rr, -0.25)
    # β = 1: margin 2 ≥ 1 → loss 0 (the hinge is satisfied)
    loss, _, _ = PREFERENCE_LOSSES["hinge"].bind(beta=1.0)(_pair(PC, PR, RC, RR))
    _close(loss, 0.0)


def test_simpo_hand_worked_and_reference_free():
    # chosen: summed log-prob -6 over 3 tokens → mean -2; rejected: -12 over 4 tokens → mean -3
    # β = 2: rewards 2·(-2) = -4 and 2·(-3) = -6; γ = 0.5
    # loss = -log σ(-4 - (-6) - 0.5) = -log σ(1.5) = log(1 + e^-1.5) = 0.2014132779827524
    simpo = PREFERENCE_LOSSES["simpo"].bind(beta=2.0, gamma=0.5)
    loss, rc, rr = simpo(_pair(T(-6.0), T(-12.0), T(-100.0), T(7.0), T(3.0), T(4.0)))
    _close(loss, math.log1p(math.exp(-1.5)))
    _close(loss, 0.2014132779827524)
    _close(rc, -4.0)
    _close(rr, -6.0)
    # the reference arguments are ignored
    again, _, _ = simpo(_pair(T(-6.0), T(-12.0), None, None, T(3.0), T(4.0)))
    _close(again, float(loss[0]))


def test_orpo_hand_worked_and_reference_free():
    # chosen: -3 over 3 tokens → mean log p = -1; rejected: -8 over 4 tokens → mean log p = -2
    # log odds(p) = log p - log(1 - p):
    #   chosen   -1 - log(1 - e^-1) = -0.5413248546129181
    #   rejected -2 - log(1 - e^-2) = -1.854586542131141
    #   difference = 1 + log((1 - e^-2) / (1 - e^-1)) = 1 + log(1 + e^-1) = 1.3132616875182228
    # odds-ratio term = -log σ(1.3132616875182228) = log(1 + e^-1.3132616875182228) = 0.23818302641382824
    # β = 0.1: loss = NLL(chosen) + β · term = 1 + 0.1 · 0.23818302641382824 = 1.0238183026413827
    orpo = PREFERENCE_LOSSES["orpo"].bind(beta=0.1)
    loss, rc, rr = orpo(_pair(T(-3.0), T(-8.0), T(5.0), T(5.0), T(3.0), T(4.0)))
    _close(loss, 1.0238183026413827)
    _close(rc, -0.1)  # β · mean log p
    _close(rr, -0.2)
    again, _, _ = orpo(_pair(T(-3.0), T(-8.0), None, None, T(3.0), T(4.0)))
    _close(again, float(loss[0]))


@pytest.mark.parametrize("name", sorted(PREFERENCE_LOSSES))
def test_gradient_flows_to_policy_only_and_rewards_are_detached(name):
    pc = torch.tensor([-4.0, -2.0], requires_grad=True)
    pr = torch.tensor([-3.0, -5.0], requires_grad=True)
    registered = PREFERENCE_LOSSES[name]
    bound = registered.bind(**{h: 0.5 for h in registered.hyperparameters})  # beta = 0.5 (and SimPO's gamma = 0.5)
    loss, rc, rr = bound(_pair(pc, pr, torch.tensor([-4.5, -2.5]), torch.tensor([-3.0, -5.0]),
                               torch.tensor([2.0, 3.0]), torch.tensor([3.0, 2.0])))
    assert loss.shape == (2,) and torch.isfinite(loss).all()
    assert not rc.requires_grad and not rr.requires_grad
    loss.sum().backward()
    # log-ratios: chosen +0.5, rejected 0 → no loss is satisfied yet (hinge margin 0.25 < 1, IPO h 0.5 < 1/(2β) = 1),
    # so each pushes the chosen log-prob up: d loss / d log π(yw|x) < 0
    assert (pc.grad < 0).all()


def test_registry_properties_drive_the_config_and_the_reference():
    from tuneforge.config import from_dict
    from tuneforge.preference_losses import REFERENCE_FREE, bind_from_config
    from tuneforge.training.dpo import reference_kind

    assert REFERENCE_FREE == {"simpo", "orpo"}
    assert {n: l.hyperparameters for n, l in PREFERENCE_LOSSES.items()} == {
        "sigmoid": ("beta",), "ipo": ("beta",), "hinge": ("beta",), "simpo": ("beta", "gamma"), "orpo": ("beta",)}
    for name in PREFERENCE_LOSSES:
        cfg = from_dict({"train_data": __file__, "training_strategy": "dpo", "dpo_loss_type": name})
        assert (reference_kind(cfg) == "none") == (name in REFERENCE_FREE)
    # the config's values reach the loss: beta and gamma bound from dpo_beta and simpo_gamma
    cfg = from_dict({"train_data": __file__, "training_strategy": "dpo", "dpo_loss_type": "simpo",
                     "dpo_beta": 2.0, "simpo_gamma": 0.5})
    loss, _, _ = bind_from_config(cfg)(_pair(T(-6.0), T(-12.0), None, None, T(3.0), T(4.0)))
    _close(loss, 0.2014132779827524)


def test_unknown_or_missing_hyperparameters_are_refused():
    with pytest.raises(TypeError, match="unknown: \\['gamma'\\]"):
        PREFERENCE_LOSSES["sigmoid"].bind(beta=0.1, gamma=0.5)  # sigmoid has no gamma: not silently dropped
    with pytest.raises(TypeError, match="missing: \\['gamma'\\]"):
        PREFERENCE_LOSSES["simpo"].bind(beta=0.1)
    with pytest.raises(TypeError):
        PREFERENCE_LOSSES["ipo"].function(_pair(PC, PR, RC, RR), beta=0.1, gama=0.5)  # no **kwargs to hide a typo


def test_a_reference_based_loss_refuses_a_missing_reference():
    with pytest.raises(ValueError, match="reference"):
        PREFERENCE_LOSSES["sigmoid"].bind(beta=0.1)(_pair(PC, PR, None, None))
