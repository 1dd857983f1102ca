"""Token-level losses: the language-model head applied only at positions that carry a label, in chunks.

The ``batch x sequence x vocabulary`` logits tensor is never materialised (most of a naive trainer's CPU
time and memory goes there). The sequence-level preference losses (DPO and its variants) are in
``preference_losses``.
"""
from __future__ import annotations

import torch

# Logits materialised at once: chunk rows so that one chunk holds at most this many fp32 values
# (128 MiB on CPU; larger on GPUs, where each chunk re-reads the whole head weight). The memory
# estimate (models/memory.py) reads the same numbers.
CHUNK_ELEMENTS = {"cpu": 1 << 25, "cuda": 1 << 27}


def _chunks(n: int, vocab: int, device: torch.device | None = None) -> list[tuple[int, int]]:
    budget = CHUNK_ELEMENTS.get(device.type if device is not None else "cpu", CHUNK_ELEMENTS["cpu"])
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
            # free this chunk's buffers before the next chunk's are made: otherwise two chunks are alive at once
            del logits, expd, expd_w
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
            del logits  # before the next chunk's logits exist
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
            del scaled, scaled_w  # before the next chunk's are made
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
