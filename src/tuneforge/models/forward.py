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


# Row groups of a padded batch: at most this many forwards, and only when they save this share of the
# padded tokens (on CPU compute scales with tokens; a GPU prefers one large batch, so it never splits).
MAX_ROW_GROUPS = 4
MIN_SAVING = 0.1


def length_groups(attention_mask: torch.Tensor | None) -> list[tuple[list[int], int]] | None:
    """``[(row indices, width)]`` cutting a right-padded batch, rows sorted by length, into at most
    ``MAX_ROW_GROUPS`` groups that minimise the padded tokens (sum of rows x longest row per group);
    None when the batch is not right-padded or the saving is under ``MIN_SAVING``."""
    if attention_mask is None or attention_mask.dim() != 2 or attention_mask.shape[0] < 2:
        return None
    lengths = attention_mask.sum(1)
    if not bool((attention_mask.cumprod(1).sum(1) == lengths).all()):  # not right-padded
        return None
    lens = lengths.tolist()
    order = sorted(range(len(lens)), key=lambda i: (-lens[i], i))
    n = len(order)
    # best[k][j]: least padded tokens for the first j sorted rows in k groups (a group's width is its first row's)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(MAX_ROW_GROUPS + 1)]
    cut = [[0] * (n + 1) for _ in range(MAX_ROW_GROUPS + 1)]
    best[0][0] = 0
    for k in range(1, MAX_ROW_GROUPS + 1):
        for j in range(1, n + 1):
            for i in range(j):
                cost = best[k - 1][i] + (j - i) * lens[order[i]]
                if cost < best[k][j]:
                    best[k][j], cut[k][j] = cost, i
    k = min(range(1, MAX_ROW_GROUPS + 1), key=lambda g: (best[g][n], g))
    if best[k][n] > (1 - MIN_SAVING) * n * attention_mask.shape[1] or k == 1:
        return None
    groups, j = [], n
    while k > 0:
        i = cut[k][j]
        if j > i:
            groups.append(([order[r] for r in range(i, j)], int(lens[order[i]])))
        j, k = i, k - 1
    return groups[::-1]


# What ``CausalLMLoss`` returns: SFT's summed cross-entropy, or DPO's per-token log-probs.
CROSS_ENTROPY = "cross_entropy"
TOKEN_LOGPS = "token_logps"


class CausalLMLoss(nn.Module):
    """``forward(input_ids, attention_mask, position_ids, targets, output)``; one module for both outputs, so
    a distributed wrapper sees every parameter use inside its forward.

    ``output=CROSS_ENTROPY``: ``(sum of token cross-entropies, argmax-correct count)`` over labelled positions.
    ``output=TOKEN_LOGPS``: per-position log-probs of the targets, (B, T), zero where unlabelled.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def _decoder(self, input_ids, attention_mask, position_ids):
        base = base_causal_lm(self.model)
        out = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 use_cache=False)
        return out[0] if isinstance(out, tuple) else out.last_hidden_state

    def _hidden(self, input_ids, attention_mask, position_ids):
        """Decoder hidden states (B, T, H). On CPU a right-padded batch whose rows differ much in length
        runs as a few row groups, each trimmed to its own longest row (see ``length_groups``); the
        states are put back in row order, zero at the trimmed padding, so nothing downstream changes."""
        # Single process only: sharded wrappers (FSDP) expect one pass through each layer per forward.
        split = input_ids.device.type == "cpu" and position_ids is None and not (
            torch.distributed.is_available() and torch.distributed.is_initialized())
        groups = length_groups(attention_mask) if split else None
        if groups is None:
            return self._decoder(input_ids, attention_mask, position_ids)
        width_all = input_ids.shape[1]
        parts, order = [], []
        for rows, width in groups:
            idx = torch.tensor(rows, device=input_ids.device)
            h = self._decoder(input_ids[idx, :width], attention_mask[idx, :width], None)
            parts.append(nn.functional.pad(h, (0, 0, 0, width_all - width)))
            order += rows
        inverse = torch.empty(len(order), dtype=torch.long, device=input_ids.device)
        inverse[torch.tensor(order, device=input_ids.device)] = torch.arange(len(order), device=input_ids.device)
        return torch.cat(parts).index_select(0, inverse)

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
                position_ids: torch.Tensor | None = None, *, targets: torch.Tensor,
                output: str = CROSS_ENTROPY, temperature: float = 1.0):
        hidden = self._hidden(input_ids, attention_mask, position_ids)
        mask = targets != IGNORE_INDEX
        h, t = hidden[mask], targets[mask]
        head = self._plain_head()
        if output == CROSS_ENTROPY:
            if head is not None:
                return linear_cross_entropy_sum(h, head.weight, head.bias, t)
            logits = self._head_logits(h)
            loss = nn.functional.cross_entropy(logits, t, reduction="sum")
            return loss, (logits.argmax(-1) == t).sum()
        if temperature != 1.0 and head is not None and head.bias is None:
            h = h / temperature  # (h / T) W^T = logits / T: the sampling distribution's log-probs (GRPO), fused
        elif temperature != 1.0:
            head = None
        if head is not None:
            token_logps = linear_token_logps(h, head.weight, head.bias, t)
        else:
            logits = self._head_logits(h) / temperature
            token_logps = logits.gather(1, t[:, None]).squeeze(1) - torch.logsumexp(logits, -1)
        out = torch.zeros(targets.shape, dtype=token_logps.dtype, device=token_logps.device)
        return out.masked_scatter(mask, token_logps)
