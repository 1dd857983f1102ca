"""Losses as small pure functions.

Token-level: the language-model head is applied only at positions that carry a label, in chunks,
so the ``batch x sequence x vocabulary`` logits tensor is never materialised (most of a naive
trainer's CPU time and memory goes there). Sequence-level preference losses take summed
log-probabilities and return ``(losses, chosen_rewards, rejected_rewards)``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .data.templates import IGNORE_INDEX

# Logits materialised at once: chunk rows so that one chunk holds at most this many fp32 values.
_CHUNK_ELEMENTS = 1 << 25


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """Targets aligned with positions: position t predicts label t+1 (last position predicts nothing)."""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def _chunks(n: int, vocab: int) -> list[tuple[int, int]]:
    size = max(1, _CHUNK_ELEMENTS // max(vocab, 1))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T + bias`` against ``targets``, gradients computed chunk
    by chunk in the forward pass (the loss is a plain sum, so they are known up to the scalar
    ``grad_output``); nothing of size N x V survives a chunk."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets):
        n, vocab = hidden.shape[0], weight.shape[0]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(vocab, dtype=torch.float32, device=weight.device) if need_b else None
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.long, device=hidden.device)
        for s, e in _chunks(n, vocab):
            h = hidden[s:e]
            logits = (h @ weight.t()).float()
            if bias is not None:
                logits = logits + bias.float()
            t = targets[s:e]
            lse = torch.logsumexp(logits, dim=-1)
            loss += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            correct += (logits.argmax(-1) == t).sum()
            if need_h or need_w or need_b:
                # d(sum CE)/d logits = softmax - onehot
                grad_logits = torch.exp(logits - lse[:, None])
                grad_logits[torch.arange(e - s, device=t.device), t] -= 1.0
                if need_b:
                    grad_b += grad_logits.sum(0)
                grad_logits = grad_logits.to(weight.dtype)
                if need_h:
                    grad_h[s:e] = (grad_logits @ weight).to(hidden.dtype)
                if need_w:
                    grad_w += (grad_logits.t() @ h).float()
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        out_h = grad_h * grad_loss.to(grad_h.dtype) if grad_h is not None else None
        out_w = (grad_w * grad_loss).to(ctx.weight_dtype) if grad_w is not None else None
        out_b = (grad_b * grad_loss).to(ctx.weight_dtype) if grad_b is not None else None
        return out_h, out_w, out_b, None


def linear_cross_entropy_sum(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                             targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of token cross-entropies, number of argmax-correct tokens)`` over rows of ``hidden`` (N x H)."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0, torch.zeros((), dtype=torch.long, device=hidden.device)
    return _FusedLinearCrossEntropy.apply(hidden, weight, bias, targets)


def _token_logps_chunk(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, t: torch.Tensor) -> torch.Tensor:
    logits = (h @ weight.t()).float()
    if bias is not None:
        logits = logits + bias.float()
    return logits.gather(1, t[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)


def linear_token_logps(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       targets: torch.Tensor) -> torch.Tensor:
    """Per-token log-probabilities of ``targets`` (N,), chunked; chunks recompute their logits in the
    backward pass so memory stays bounded for any N (used where per-token weights are not known
    in advance, as in preference losses)."""
    chunks = _chunks(hidden.shape[0], weight.shape[0])
    if len(chunks) <= 1 or not torch.is_grad_enabled():
        return _token_logps_chunk(hidden, weight, bias, targets)
    parts = [checkpoint(_token_logps_chunk, hidden[s:e], weight, bias, targets[s:e], use_reentrant=False)
             for s, e in chunks]
    return torch.cat(parts)


def masked_mean_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference definition (full logits, B x T x V): mean next-token cross-entropy over labelled tokens.
    Used by tests to check the fused path, and as the fallback for heads with logit soft-capping."""
    targets = next_token_targets(labels)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="mean")


# ---------------------------------------------------------------------------------------------
# Preference losses. Inputs are summed log-probs of the whole response under policy and reference
# (B,); each returns (per-pair losses, chosen rewards, rejected rewards).

PreferenceLoss = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
PREFERENCE_LOSSES: dict[str, PreferenceLoss] = {}


def register(name: str) -> Callable[[PreferenceLoss], PreferenceLoss]:
    def deco(fn: PreferenceLoss) -> PreferenceLoss:
        PREFERENCE_LOSSES[name] = fn
        return fn
    return deco


@register("sigmoid")
def dpo_sigmoid_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                     ref_rejected: torch.Tensor, beta: float, **_: object):
    """DPO, Rafailov et al. 2023, https://arxiv.org/abs/2305.18290 :
    -log σ(β[(log πθ(yw|x) − log πref(yw|x)) − (log πθ(yl|x) − log πref(yl|x))])."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return -F.logsigmoid(chosen - rejected), chosen.detach(), rejected.detach()


@register("ipo")
def ipo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float, **_: object):
    """IPO, Azar et al. 2023, https://arxiv.org/abs/2310.12036 : (h − 1/(2β))² with h the log-ratio margin
    (summed log-probs here, like DPO; the paper's τ is our β)."""
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    losses = (h - 1.0 / (2.0 * beta)) ** 2
    return losses, (beta * (policy_chosen - ref_chosen)).detach(), (beta * (policy_rejected - ref_rejected)).detach()


@register("hinge")
def hinge_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float, **_: object):
    """Hinge (SLiC), Zhao et al. 2023, https://arxiv.org/abs/2305.10425 : max(0, 1 − β·margin)."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return torch.relu(1.0 - (chosen - rejected)), chosen.detach(), rejected.detach()


@register("simpo")
def simpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float, *,
               chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor, gamma: float = 0.5, **_: object):
    """SimPO, Meng et al. 2024, https://arxiv.org/abs/2405.14734 : reference-free, length-normalised
    −log σ(β/|yw| log πθ(yw|x) − β/|yl| log πθ(yl|x) − γ). ``ref_*`` are ignored."""
    chosen = beta * policy_chosen / chosen_tokens
    rejected = beta * policy_rejected / rejected_tokens
    return -F.logsigmoid(chosen - rejected - gamma), chosen.detach(), rejected.detach()


@register("orpo")
def orpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float, *,
              chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor, **_: object):
    """ORPO, Hong et al. 2024, https://arxiv.org/abs/2403.07691 : NLL(yw) + β·(−log σ(log odds(yw) − log odds(yl))),
    with mean token log-probs and odds(y) = p/(1−p). Reference-free; ``ref_*`` are ignored."""
    mean_c = policy_chosen / chosen_tokens
    mean_r = policy_rejected / rejected_tokens
    log_odds = (mean_c - torch.log1p(-torch.exp(mean_c).clamp(max=1 - 1e-6))) - \
               (mean_r - torch.log1p(-torch.exp(mean_r).clamp(max=1 - 1e-6)))
    losses = -mean_c - beta * F.logsigmoid(log_odds)
    return losses, (beta * mean_c).detach(), (beta * mean_r).detach()

