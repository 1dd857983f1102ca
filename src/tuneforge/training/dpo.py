"""The DPO recipe: preference pairs → one concatenated policy forward → a preference loss.

A micro-batch of B pairs is one padded batch of 2B rows, ``[chosen rows; rejected rows]``, so the
policy runs once per micro-batch. The reference log-probs come from a ``ReferenceSource`` chosen by
the method (docs/architecture.md, "DPO references"):

- LoRA/QLoRA, new adapter: the same model with the adapter disabled, under no_grad — no second copy.
- LoRA/QLoRA continuing from ``adapter_name_or_path`` (an SFT adapter): base + that adapter, frozen —
  never the bare base. Its log-probs are precomputed once, before the first step, while the policy
  still *is* base + SFT adapter (no second adapter in memory, none saved with the output).
- Full: log-probs precomputed in one pass before training (``dpo_reference: precompute``) or a
  frozen deep copy of the model (``copy``); both give the same losses.
- Reference-free losses (SimPO, ORPO; ``reference_free`` in their registration): no reference pass at all.

Precomputed values are stored per row and looked up by row index in ``collate``, so they follow the
rows whatever order the sampler deals them in.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
from torch import nn

from ..data.collate import Batch, pack_batch, pad_batch
from ..data.dpo import DPOData, EncodedPair
from ..models.forward import TOKEN_LOGPS
from ..preference_losses import REFERENCE_FREE, BoundLoss, PairLogps, bind_from_config
from . import parallel
from .batching import validation_batches


@dataclass
class PairBatch:
    """B preference pairs as one batch of 2B rows: ``sequences`` holds chosen rows then rejected rows."""

    sequences: Batch
    rows: list[int]
    response_tokens: torch.Tensor  # (2B,) trained tokens per row, for length-normalised losses
    reference: torch.Tensor | None = None  # (B, 2) precomputed [chosen, rejected] reference log-probs

    @property
    def n_pairs(self) -> int:
        return len(self.rows)

    def to(self, device: torch.device) -> "PairBatch":
        ref = None if self.reference is None else self.reference.to(device)
        return PairBatch(self.sequences.to(device), self.rows, self.response_tokens.to(device), ref)


def collate_pairs(pairs: Sequence[EncodedPair], rows: Sequence[int], pad_id: int,
                  reference: torch.Tensor | None = None, packing: bool = False) -> PairBatch:
    seqs = [p.sequences() for p in pairs]
    ordered = [c for c, _ in seqs] + [r for _, r in seqs]
    lengths = [len(p.chosen) for p in pairs] + [len(p.rejected) for p in pairs]
    sequences = pack_batch(ordered) if packing else pad_batch(ordered, pad_id)
    return PairBatch(sequences, list(rows), torch.tensor(lengths, dtype=torch.float32), reference)


def sequence_logps(loss_module: nn.Module, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs (chosen (B,), rejected (B,)) from one forward over all 2B rows."""
    token_logps = loss_module(**batch.sequences.model_inputs(), output=TOKEN_LOGPS)
    seqs = batch.sequences
    if seqs.position_ids is not None and seqs.n_rows != token_logps.shape[0]:
        # Packed: one sequence holding the 2B rows; each row starts where its position ids restart.
        row_of_token = torch.cumsum(seqs.position_ids[0] == 0, 0) - 1
        logps = token_logps.new_zeros(seqs.n_rows).index_add(0, row_of_token, token_logps[0])
    else:
        logps = token_logps.sum(-1)
    return logps[: batch.n_pairs], logps[batch.n_pairs:]


# ---------------------------------------------------------------------------------------------
# Reference sources


class ReferenceSource(Protocol):
    def stored(self, split: str, rows: Sequence[int]) -> torch.Tensor | None: ...  # per-row values, if precomputed
    # (chosen (B,), rejected (B,)) reference log-probs; None for a reference-free loss
    def logps(self, loss_module: nn.Module, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor] | None: ...


class NoReference:
    """Reference-free losses: no reference model, no reference pass."""

    def stored(self, split, rows):
        return None

    def logps(self, loss_module, batch):
        return None


class AdapterDisabledReference:
    """LoRA/QLoRA: the policy's own base weights, adapter switched off, under no_grad."""

    def __init__(self, accelerator):
        self.accelerator = accelerator

    def stored(self, split, rows):
        return None

    def logps(self, loss_module, batch):
        inner = self.accelerator.unwrap_model(loss_module)
        # DDP's wrapper would only add its forward hooks (no gradient flows here), so it is skipped; FSDP's root
        # wrapper is what gathers the weights outside the decoder layers (embeddings, head), so it is kept.
        runner = loss_module if parallel.is_fsdp(self.accelerator) else inner
        with torch.no_grad(), inner.model.disable_adapter(), self.accelerator.autocast():
            return sequence_logps(runner, batch)


class FrozenCopyReference:
    """Full-parameter ``dpo_reference: copy``: a frozen deep copy of the starting model."""

    def __init__(self, loss_module: nn.Module, accelerator):
        self.frozen = copy.deepcopy(loss_module).eval()
        self.frozen.requires_grad_(False)
        self.accelerator = accelerator

    def stored(self, split, rows):
        return None

    def logps(self, loss_module, batch):
        with torch.no_grad(), self.accelerator.autocast():
            return sequence_logps(self.frozen, batch)


class PrecomputedReference:
    """Reference log-probs of every row computed once, before training, from the starting model.

    With sharded weights (ZeRO-3, FSDP) the model can run only once accelerate wraps it, so the values are
    computed then (``on_prepared``), by all processes in step.
    """

    def __init__(self, values: dict[str, torch.Tensor], pending: Callable[[nn.Module], None] | None = None):
        self.values = values  # split -> (N, 2) [chosen, rejected]
        self.pending = pending

    def on_prepared(self, loss_module: nn.Module) -> None:
        if self.pending is not None:
            self.pending(loss_module)
            self.pending = None

    def stored(self, split, rows):
        return self.values[split][list(rows)]

    def logps(self, loss_module, batch):
        assert batch.reference is not None, "precomputed reference log-probs missing from the batch"
        return batch.reference[:, 0], batch.reference[:, 1]


@torch.no_grad()
def precompute_reference(loss_module: nn.Module, pairs: Sequence[EncodedPair], pad_id: int, batch_size: int,
                         accelerator) -> torch.Tensor:
    """(N, 2) reference log-probs of ``pairs`` under ``loss_module`` as it is now (eval mode, the run's precision).

    Each process computes its share of the rows (r, r+W, ...) and the shares are summed across processes.
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    device = accelerator.device
    values = torch.zeros(len(pairs), 2, dtype=torch.float32, device=device)
    mine = list(range(rank, len(pairs), world))
    mine.sort(key=lambda i: -pairs[i].longest)  # less padding
    n_batches = math.ceil(len(mine) / batch_size)
    if parallel.shards_parameters(accelerator):
        # Sharded forwards (through FSDP/DeepSpeed) communicate: every process runs as many as the one with the
        # most rows; the extra ones re-run a row and are discarded.
        n_batches = math.ceil(math.ceil(len(pairs) / world) / batch_size)
    was_training = loss_module.training
    loss_module.eval()
    try:
        for b in range(n_batches):
            rows = mine[b * batch_size: (b + 1) * batch_size]
            filler = not rows
            rows = rows or [0]
            batch = collate_pairs([pairs[i] for i in rows], rows, pad_id).to(device)
            with accelerator.autocast():
                chosen, rejected = sequence_logps(loss_module, batch)
            if filler:
                continue
            values[rows, 0] = chosen.float()
            values[rows, 1] = rejected.float()
    finally:
        loss_module.train(was_training)
    if world > 1:
        values = accelerator.reduce(values, reduction="sum")
    return values.cpu()


def reference_kind(cfg) -> str:
    """Which reference a run uses (see the module docstring)."""
    if cfg.dpo_loss_type in REFERENCE_FREE:
        return "none"
    if cfg.is_lora:
        return "precompute" if cfg.adapter_name_or_path else "adapter_disabled"
    return cfg.dpo_reference


def _precomputed(cfg, data: DPOData, pad_id: int, loss_module: nn.Module, accelerator) -> PrecomputedReference:
    # Kept on the data object: a run may build its recipe twice (per_device_train_batch_size: auto builds
    # a probe recipe first; the probe updates no weight), and one pass is enough.
    splits = {"train": data.train, "validation": data.validation}

    def compute(runner: nn.Module) -> None:
        for name, split in splits.items():
            if split is not None and name not in data.reference_logps:
                data.reference_logps[name] = precompute_reference(runner, split.pairs, pad_id,
                                                                  cfg.per_device_train_batch_size, accelerator)

    if parallel.shards_parameters(accelerator):
        return PrecomputedReference(data.reference_logps, pending=compute)
    compute(loss_module)
    return PrecomputedReference(data.reference_logps)


REFERENCE_BUILDERS: dict[str, Callable[..., ReferenceSource]] = {
    "none": lambda cfg, data, pad_id, loss_module, accelerator: NoReference(),
    "adapter_disabled": lambda cfg, data, pad_id, loss_module, accelerator: AdapterDisabledReference(accelerator),
    "copy": lambda cfg, data, pad_id, loss_module, accelerator: FrozenCopyReference(loss_module, accelerator),
    "precompute": _precomputed,
}


def make_reference(cfg, data: DPOData, pad_id: int, loss_module: nn.Module, accelerator) -> ReferenceSource:
    return REFERENCE_BUILDERS[reference_kind(cfg)](cfg, data, pad_id, loss_module, accelerator)


# ---------------------------------------------------------------------------------------------
# The recipe


class DPORecipe:
    """``preference_loss``: a registered loss with its hyperparameters bound (``bind_from_config``)."""

    def __init__(self, data: DPOData, pad_id: int, batch_size: int, preference_loss: BoundLoss,
                 reference: ReferenceSource, packing: bool = False):
        self.data, self.pad_id, self.batch_size, self.packing = data, pad_id, batch_size, packing
        self.preference_loss, self.reference = preference_loss, reference
        self.train_lengths = data.train.lengths  # from the cache's arrays: no pair is decoded to count it
        self._eval: list[PairBatch] | None = None

    def collate(self, rows: Sequence[int], split: str = "train") -> PairBatch:
        source = self.data.train if split == "train" else self.data.validation
        return collate_pairs([source.pairs[i] for i in rows], rows, self.pad_id, self.reference.stored(split, rows),
                             self.packing)

    def eval_batches(self) -> list[PairBatch]:
        if self._eval is None:
            self._eval = validation_batches(self.data.validation, self.batch_size, self.collate)
        return self._eval

    def on_prepared(self, loss_module: nn.Module) -> None:
        """Called by the loop once accelerate wraps the model (sharded references are computed then)."""
        if hasattr(self.reference, "on_prepared"):
            self.reference.on_prepared(loss_module)

    def units(self, batch: PairBatch) -> int:
        return batch.n_pairs

    def real_tokens(self, batch: PairBatch) -> int:
        return batch.sequences.n_real_tokens

    def loss(self, loss_module: nn.Module, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        reference = self.reference.logps(loss_module, batch)
        chosen, rejected = sequence_logps(loss_module, batch)
        ref_chosen = ref_rejected = None
        if reference is not None:
            ref_chosen, ref_rejected = reference[0].to(chosen.dtype), reference[1].to(chosen.dtype)
        n = batch.n_pairs
        losses, r_chosen, r_rejected = self.preference_loss(PairLogps(
            chosen, rejected, ref_chosen, ref_rejected,
            chosen_tokens=batch.response_tokens[:n], rejected_tokens=batch.response_tokens[n:]))
        loss_sum = losses.sum()
        r_chosen, r_rejected = r_chosen.detach(), r_rejected.detach()
        # Device values stay tensors: the loop reads them once per step, not once per micro-batch.
        stats = {"loss_sum": loss_sum.detach(), "pairs": float(n),
                 "rewards_chosen": r_chosen.sum(), "rewards_rejected": r_rejected.sum(),
                 "margins": (r_chosen - r_rejected).sum(),
                 "accuracies": (r_chosen > r_rejected).float().sum(),
                 "logps_chosen": chosen.detach().sum(), "logps_rejected": rejected.detach().sum()}
        return loss_sum, stats

    def summarize(self, sums: dict[str, float], prefix: str = "") -> dict[str, float]:
        n = max(sums.get("pairs", 0.0), 1.0)
        mean = lambda key: sums.get(key, 0.0) / n  # noqa: E731
        return {f"{prefix}loss": mean("loss_sum"),
                f"{prefix}rewards/chosen": mean("rewards_chosen"),
                f"{prefix}rewards/rejected": mean("rewards_rejected"),
                f"{prefix}rewards/margins": mean("margins"),
                f"{prefix}rewards/accuracies": mean("accuracies"),
                f"{prefix}logps/chosen": mean("logps_chosen"),
                f"{prefix}logps/rejected": mean("logps_rejected"),
                f"{prefix}pairs": sums.get("pairs", 0.0)}


def make_dpo_recipe(cfg, data: DPOData, tokenizer, loss_module: nn.Module, accelerator) -> DPORecipe:
    reference = make_reference(cfg, data, tokenizer.pad_token_id, loss_module, accelerator)
    return DPORecipe(data, tokenizer.pad_token_id, cfg.per_device_train_batch_size, bind_from_config(cfg),
                     reference, cfg.packing)
