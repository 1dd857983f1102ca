"""The fused chunked linear cross-entropy equals the plain full-logits F.cross_entropy (loss and grads)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tuneforge import losses
from tuneforge.losses import linear_cross_entropy_sum, linear_token_logps

N, H, V = 13, 16, 37


def _inputs(bias: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, H, generator=g, dtype=torch.float64).float()
    weight = (torch.randn(V, H, generator=g) * 0.5).float()
    b = torch.randn(V, generator=g).float() if bias else None
    targets = torch.randint(0, V, (N,), generator=g)
    return hidden, weight, b, targets


def _reference(hidden, weight, bias, targets):
    logits = F.linear(hidden, weight, bias)
    loss = F.cross_entropy(logits, targets, reduction="sum")
    correct = (logits.argmax(-1) == targets).sum()
    return loss, correct


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("weight_grad", [False, True])
@pytest.mark.parametrize("chunk_rows", [None, 1, 4])
def test_fused_ce_matches_full_logits(monkeypatch, bias, weight_grad, chunk_rows):
    if chunk_rows is not None:  # force several chunks (a chunk holds chunk_rows x V logits)
        monkeypatch.setitem(losses.CHUNK_ELEMENTS, "cpu", chunk_rows * V)
    hidden, weight, b, targets = _inputs(bias)
    leaves = []
    for _ in range(2):
        h = hidden.clone().requires_grad_(True)
        w = weight.clone().requires_grad_(weight_grad)
        bb = b.clone().requires_grad_(weight_grad) if b is not None else None
        leaves.append((h, w, bb))
    (h1, w1, b1), (h2, w2, b2) = leaves
    loss, correct = linear_cross_entropy_sum(h1, w1, b1, targets)
    ref_loss, ref_correct = _reference(h2, w2, b2, targets)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5, abs=1e-5)
    assert int(correct) == int(ref_correct)
    # a non-unit upstream gradient checks that backward scales the precomputed gradients
    (loss * 0.37).backward()
    (ref_loss * 0.37).backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-5, atol=1e-5)
    if weight_grad:
        torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-5)
        if bias:
            torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-5, atol=1e-5)
    else:
        assert w1.grad is None


def test_fused_ce_hand_worked():
    """Two tokens, vocabulary 2, identity head: CE = log(1 + e^(other - target))."""
    hidden = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    weight = torch.eye(2)
    loss, correct = linear_cross_entropy_sum(hidden, weight, None, torch.tensor([0, 0]))
    expected = torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(1.0)))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert int(correct) == 1  # first row predicts 0 (correct), second predicts 1
    loss.backward()
    p = torch.softmax(hidden.detach() @ weight.t(), -1)
    torch.testing.assert_close(hidden.grad, p - torch.tensor([[1.0, 0.0], [1.0, 0.0]]))


def test_fused_ce_empty_and_no_grad():
    hidden, weight, b, targets = _inputs(bias=True)
    loss, correct = linear_cross_entropy_sum(hidden[:0].requires_grad_(True), weight, b, targets[:0])
    assert loss.item() == 0.0 and int(correct) == 0
    with torch.no_grad():
        loss, _ = linear_cross_entropy_sum(hidden, weight, b, targets)
    assert loss.item() == pytest.approx(_reference(hidden, weight, b, targets)[0].item(), rel=1e-5)


def test_large_logits_stay_finite(monkeypatch):
    """Row-max subtraction: logits of 1e4 would overflow a naive exp."""
    monkeypatch.setitem(losses.CHUNK_ELEMENTS, "cpu", 2 * V)
    hidden, weight, b, targets = _inputs(bias=False)
    hidden = (hidden * 1000).requires_grad_(True)
    loss, _ = linear_cross_entropy_sum(hidden, weight, None, targets)
    ref, _ = _reference(hidden.detach(), weight, None, targets)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(ref.item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(hidden.grad).all()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("weight_grad", [False, True])
@pytest.mark.parametrize("chunk_rows", [None, 3])
def test_token_logps_match_log_softmax(monkeypatch, bias, weight_grad, chunk_rows):
    if chunk_rows is not None:
        monkeypatch.setitem(losses.CHUNK_ELEMENTS, "cpu", chunk_rows * V)
    hidden, weight, b, targets = _inputs(bias=bias, seed=1)
    leaves = [(hidden.clone().requires_grad_(True), weight.clone().requires_grad_(weight_grad),
               b.clone().requires_grad_(weight_grad) if bias else None) for _ in range(2)]
    (h1, w1, b1), (h2, w2, b2) = leaves
    got = linear_token_logps(h1, w1, b1, targets)
    ref = F.log_softmax(F.linear(h2, w2, b2), -1).gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    coeff = torch.linspace(-1, 1, N)  # per-token upstream gradients, as a preference loss gives
    (got * coeff).sum().backward()
    (ref * coeff).sum().backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-5, atol=1e-5)
    if weight_grad:
        torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-5)
        if bias:
            torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-5, atol=1e-5)


def test_token_logps_without_grad_are_chunked(monkeypatch):
    """Reference passes (no grad) must stay chunked too: no N x V buffer."""
    monkeypatch.setitem(losses.CHUNK_ELEMENTS, "cpu", 2 * V)
    hidden, weight, b, targets = _inputs(bias=False)
    seen = []
    real_chunks = losses._chunks
    monkeypatch.setattr(losses, "_chunks", lambda *a: seen.append(real_chunks(*a)) or seen[-1])
    with torch.no_grad():
        got = linear_token_logps(hidden, weight, None, targets)
    ref = F.log_softmax(hidden @ weight.t(), -1).gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert max(e - s for s, e in seen[0]) == 2
