"""The KTO recipe: unpaired rows (data/kto.py) → policy and reference log-probs → ``kto_losses.kto_loss``.

Per micro-batch of B rows: one policy forward over the B (prompt, completion) rows with gradients, one over
their B KL rows (prompt, another row's completion) without — the KL reference point carries no gradient, as
in the paper and TRL. The reference log-probs of both come from DPO's reference sources (training/dpo.py,
docs/architecture.md "DPO references"): the adapter switched off (LoRA), precomputed once (full with
``dpo_reference: precompute``, or LoRA continuing ``adapter_name_or_path``) or a frozen copy
(``dpo_reference: copy``). The loss is averaged over rows (the loop divides the summed loss by the step's rows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..data.collate import Batch, pack_batch, pad_batch
from ..data.kto import KTOData
from ..kto_losses import kto_loss
from ..models.forward import TOKEN_LOGPS
from .dpo import REFERENCE_BUILDERS, PairBatch, ReferenceSource, collate_pairs
from .batching import validation_batches


@dataclass
class KTOBatch:
    pairs: PairBatch  # [completion rows; KL rows], for the reference sources
    completions: Batch
    kl: Batch
    desirable: torch.Tensor  # (B,) bool

    def to(self, device: torch.device) -> "KTOBatch":
        return KTOBatch(self.pairs.to(device), self.completions.to(device), self.kl.to(device),
                        self.desirable.to(device))


def row_logps(loss_module: nn.Module, seqs: Batch) -> torch.Tensor:
    """Summed completion log-probs per row (n_rows,), padded or packed."""
    token_logps = loss_module(**seqs.model_inputs(), output=TOKEN_LOGPS)
    if seqs.position_ids is not None and seqs.n_rows != token_logps.shape[0]:
        row_of_token = torch.cumsum(seqs.position_ids[0] == 0, 0) - 1  # packed: rows start where positions restart
        return token_logps.new_zeros(seqs.n_rows).index_add(0, row_of_token, token_logps[0])
    return token_logps.sum(-1)


def reference_kind(cfg) -> str:
    """As DPO's (training/dpo.py), without its reference-free losses."""
    if cfg.is_lora:
        return "precompute" if cfg.adapter_name_or_path else "adapter_disabled"
    return cfg.dpo_reference


class KTORecipe:
    def __init__(self, data: KTOData, pad_id: int, batch_size: int, reference: ReferenceSource, *, beta: float,
                 desirable_weight: float, undesirable_weight: float, packing: bool = False):
        self.data, self.pad_id, self.batch_size, self.packing = data, pad_id, batch_size, packing
        self.reference = reference
        self.weights = dict(beta=beta, desirable_weight=desirable_weight, undesirable_weight=undesirable_weight)
        self.train_lengths = data.train.lengths
        self._eval: list[KTOBatch] | None = None

    def collate(self, rows: Sequence[int], split: str = "train") -> KTOBatch:
        source = self.data.train if split == "train" else self.data.validation
        items = [source.pairs[i] for i in rows]
        pairs = collate_pairs(items, rows, self.pad_id, self.reference.stored(split, rows), self.packing)
        seqs = [p.sequences() for p in items]
        make = pack_batch if self.packing else (lambda r: pad_batch(r, self.pad_id))
        desirable = torch.as_tensor(source.desirable[list(rows)], dtype=torch.bool)
        return KTOBatch(pairs, make([c for c, _ in seqs]), make([k for _, k in seqs]), desirable)

    def eval_batches(self) -> list[KTOBatch]:
        if self._eval is None:
            self._eval = validation_batches(self.data.validation, self.batch_size, self.collate)
        return self._eval

    def on_prepared(self, loss_module: nn.Module) -> None:
        if hasattr(self.reference, "on_prepared"):
            self.reference.on_prepared(loss_module)

    def units(self, batch: KTOBatch) -> int:
        return batch.pairs.n_pairs

    def real_tokens(self, batch: KTOBatch) -> int:
        return batch.completions.n_real_tokens

    def loss(self, loss_module: nn.Module, batch: KTOBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        ref_logps, ref_kl = self.reference.logps(loss_module, batch.pairs)
        logps = row_logps(loss_module, batch.completions)
        with torch.no_grad():
            kl_logps = row_logps(loss_module, batch.kl)
        out = kto_loss(logps, ref_logps.to(logps.dtype), batch.desirable, kl_logps, ref_kl.to(logps.dtype),
                       **self.weights)
        good, bad = batch.desirable, ~batch.desirable
        logps = logps.detach()
        stats = {"loss_sum": out.losses.sum().detach(), "rows": float(len(good)),
                 "desirable": good.sum().float(), "undesirable": bad.sum().float(),
                 "rewards_desirable": out.rewards[good].sum(), "rewards_undesirable": out.rewards[bad].sum(),
                 "logps_desirable": logps[good].sum(), "logps_undesirable": logps[bad].sum(),
                 "kl_sum": out.kl, "kl_batches": 1.0}
        return out.losses.sum(), stats

    def summarize(self, sums: dict[str, float], prefix: str = "") -> dict[str, float]:
        def mean(key: str, count: str) -> float:
            return sums.get(key, 0.0) / max(sums.get(count, 0.0), 1.0)

        good, bad = mean("rewards_desirable", "desirable"), mean("rewards_undesirable", "undesirable")
        return {f"{prefix}loss": mean("loss_sum", "rows"),
                f"{prefix}rewards/desirable": good, f"{prefix}rewards/undesirable": bad,
                f"{prefix}rewards/margins": good - bad,
                f"{prefix}logps/desirable": mean("logps_desirable", "desirable"),
                f"{prefix}logps/undesirable": mean("logps_undesirable", "undesirable"),
                f"{prefix}kl": mean("kl_sum", "kl_batches"), f"{prefix}rows": sums.get("rows", 0.0)}


def make_kto_recipe(cfg, data: KTOData, tokenizer, loss_module: nn.Module, accelerator) -> KTORecipe:
    reference = REFERENCE_BUILDERS[reference_kind(cfg)](cfg, data, tokenizer.pad_token_id, loss_module, accelerator)
    return KTORecipe(data, tokenizer.pad_token_id, cfg.per_device_train_batch_size, reference, beta=cfg.kto_beta,
                     desirable_weight=cfg.kto_desirable_weight, undesirable_weight=cfg.kto_undesirable_weight,
                     packing=cfg.packing)


def describe_feedback(data: KTOData) -> str:
    """The start banner's data line: rows per split and class (a preference pair counts once in each class)."""
    def part(split, name: str) -> str:
        good = split.n_desirable
        return f"{len(split):,} {name} rows ({good:,} desirable, {len(split) - good:,} undesirable)"

    val = data.validation
    text = part(data.train, "training") + (", " + part(val, "validation") if val else ", no validation set")
    truncated = data.train.split.truncated
    return text + (f"; {truncated:,} truncated to seq_length" if truncated else "") + data.report.summary()
