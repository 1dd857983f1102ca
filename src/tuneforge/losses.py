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

from .data.templates import IGNORE_INDEX

# Logits materialised at once: chunk rows so that one chunk holds at most this many fp32 values
# (128 MiB on CPU; larger on GPUs, where each chunk re-reads the whole head weight).
_CHUNK_ELEMENTS = {"cpu": 1 << 25, "cuda": 1 << 27}


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """Targets aligned with positions: position t predicts label t+1 (last position predicts nothing)."""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def _chunks(n: int, vocab: int, device: torch.device | None = None) -> list[tuple[int, int]]:
    budget = _CHUNK_ELEMENTS.get(device.type if device is not None else "cpu", _CHUNK_ELEMENTS["cpu"])
    size = max(1, budget // max(vocab, 1))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T + bias`` against ``targets``, gradients computed chunk
    by chunk in the forward pass (the loss is a plain sum, so they are known up to the scalar
    ``grad_output``); nothing of size N x V survives a chunk.

    Per chunk the logits buffer is turned in place into ``exp(logits - rowmax)`` and multiplied by the
    weight; the softmax normalisation and the one-hot term are applied to the (N x H) product instead
    of the (N x V) buffer: ``dL/dh = (E @ W) / s - W[t]``, ``dL/dW = E.T @ (h / s) - onehot.T @ h``.
    That is 4 passes over the chunk's logits besides the two matmuls (CPU time here is mostly memory
    traffic over those buffers)."""

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
        for s, e in _chunks(n, vocab, hidden.device):
            h = hidden[s:e]
            t = targets[s:e]
            logits = (h @ weight.t()).float()
            if bias is not None:
                logits += bias.float()
            target_logit = logits.gather(1, t[:, None]).squeeze(1)
            row_max = logits.amax(dim=-1)
            # argmax-correct: the target's logit is the row maximum (ties count as correct)
            correct += (target_logit >= row_max).sum()
            expd = logits.sub_(row_max[:, None]).exp_()  # in place: the logits are not needed again
            sum_exp = expd.sum(dim=-1)
            loss += (row_max + sum_exp.log() - target_logit).sum()
            if not (need_h or need_w or need_b):
                continue
            inv = sum_exp.reciprocal()
            if need_b:
                grad_b += inv @ expd
                grad_b.index_add_(0, t, torch.full(t.shape, -1.0, dtype=torch.float32, device=t.device))
            expd_w = expd.to(weight.dtype)
            if need_h:
                g = (expd_w @ weight).float()
                g.mul_(inv[:, None]).sub_(weight[t].float())
                grad_h[s:e] = g.to(hidden.dtype)
            if need_w:
                grad_w += (expd_w.t() @ (h.float() * inv[:, None]).to(weight.dtype)).float()
                grad_w.index_add_(0, t, h.float(), alpha=-1.0)
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


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    logits = (h @ weight.t()).float()
    if bias is not None:
        logits += bias.float()
    return logits


class _LinearTokenLogps(torch.autograd.Function):
    """log softmax(hidden @ weight.T + bias)[targets], chunk by chunk. Only the per-token log-sum-exp is
    kept for the backward pass, which recomputes each chunk's logits once and turns them in place into
    the softmax: ``d logp_t / dh = g * (W[t] - P @ W)``, ``d/dW = (onehot - P).T @ (g * h)``."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets):
        n = hidden.shape[0]
        out = torch.empty(n, dtype=torch.float32, device=hidden.device)
        lse = torch.empty(n, dtype=torch.float32, device=hidden.device)
        for s, e in _chunks(n, weight.shape[0], hidden.device):
            logits = _chunk_logits(hidden[s:e], weight, bias)
            target_logit = logits.gather(1, targets[s:e, None]).squeeze(1)
            row_max = logits.amax(dim=-1)
            sum_exp = logits.sub_(row_max[:, None]).exp_().sum(dim=-1)
            lse[s:e] = row_max + sum_exp.log()
            out[s:e] = target_logit - lse[s:e]
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_b else None
        g_all = grad_out.float()
        for s, e in _chunks(hidden.shape[0], weight.shape[0], hidden.device):
            h, t, g = hidden[s:e], targets[s:e], g_all[s:e]
            # softmax scaled by the upstream gradient, in place in the recomputed logits buffer
            scaled = _chunk_logits(h, weight, bias).sub_(lse[s:e, None]).exp_().mul_(g[:, None])
            if need_b:
                grad_b -= scaled.sum(0)
                grad_b.index_add_(0, t, g)
            scaled_w = scaled.to(weight.dtype)
            if need_h:
                gh = weight[t].float().mul_(g[:, None])
                gh -= (scaled_w @ weight).float()
                grad_h[s:e] = gh.to(hidden.dtype)
            if need_w:
                grad_w -= (scaled_w.t() @ h.to(weight.dtype)).float()
                grad_w.index_add_(0, t, h.float() * g[:, None])
        return (grad_h, grad_w.to(weight.dtype) if grad_w is not None else None,
                grad_b.to(bias.dtype) if grad_b is not None else None, None)


def linear_token_logps(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       targets: torch.Tensor) -> torch.Tensor:
    """Per-token log-probabilities of ``targets`` (N,), float32, chunked in the forward and the backward
    pass so memory stays bounded for any N, with or without gradients (used where per-token weights
    are not known in advance, as in preference losses)."""
    if hidden.shape[0] == 0:
        return hidden.sum(-1).float() * 0.0
    return _LinearTokenLogps.apply(hidden, weight, bias, targets)


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

