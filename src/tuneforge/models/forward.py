"""The training forward pass: decoder hidden states, then the LM head only where labels exist.

Wrapping the Hugging Face model in one module whose ``forward`` returns the loss terms keeps
distributed wrappers (DDP/FSDP) correct: everything that touches parameters runs inside forward.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data.templates import IGNORE_INDEX
from ..losses import linear_cross_entropy_sum, linear_token_logps


def base_causal_lm(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (LoRA layers are injected in place there)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class CausalLMLoss(nn.Module):
    """``forward(input_ids, attention_mask, position_ids, targets, kind)``.

    ``kind='ce'``: ``(sum of token cross-entropies, argmax-correct count)`` over labelled positions.
    ``kind='logps'``: per-position log-probs of the targets, (B, T), zero where unlabelled.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def _hidden(self, input_ids, attention_mask, position_ids):
        base = base_causal_lm(self.model)
        out = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 use_cache=False)
        return out[0] if isinstance(out, tuple) else out.last_hidden_state

    def _plain_head(self) -> nn.Linear | None:
        """The LM head as a plain Linear (fused loss), or None when it is adapted, quantized or its
        logits are post-processed (soft-capping, scaling), which the module call handles instead."""
        base = base_causal_lm(self.model)
        head = base.get_output_embeddings()
        cfg = base.config
        if type(head) is not nn.Linear or getattr(cfg, "final_logit_softcapping", None) or \
                getattr(cfg, "logit_scale", None) not in (None, 1, 1.0):
            return None
        return head

    def _head_logits(self, h: torch.Tensor) -> torch.Tensor:
        base = base_causal_lm(self.model)
        logits = base.get_output_embeddings()(h).float()
        scale = getattr(base.config, "logit_scale", None)
        if scale not in (None, 1, 1.0):
            logits = logits * scale
        cap = getattr(base.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, *, targets: torch.Tensor, kind: str = "ce"):
        hidden = self._hidden(input_ids, attention_mask, position_ids)
        mask = targets != IGNORE_INDEX
        h, t = hidden[mask], targets[mask]
        head = self._plain_head()
        if kind == "ce":
            if head is not None:
                return linear_cross_entropy_sum(h, head.weight, head.bias, t)
            logits = self._head_logits(h)
            loss = nn.functional.cross_entropy(logits, t, reduction="sum")
            return loss, (logits.argmax(-1) == t).sum()
        if head is not None:
            token_logps = linear_token_logps(h, head.weight, head.bias, t)
        else:
            logits = self._head_logits(h)
            token_logps = logits.gather(1, t[:, None]).squeeze(1) - torch.logsumexp(logits, -1)
        out = torch.zeros(targets.shape, dtype=token_logps.dtype, device=token_logps.device)
        return out.masked_scatter(mask, token_logps)
