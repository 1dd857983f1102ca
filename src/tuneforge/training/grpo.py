"""The GRPO recipe: sample G completions per prompt, score them, and push the policy toward the better ones.

Per optimizer step (``step_batches``, called by the loop with the step's micro-batches of prompt rows):

1. rollouts — each prompt repeated G (``num_generations``) times and sampled from the current weights (the
   adapter applied) by ``models.rollout``'s batched key/value-cache sampler; a prompt's G completions stay in
   its micro-batch, so groups are never split across accumulation steps or processes;
2. scoring — every reward function once over the step's completions, weighted and summed; group-relative
   advantages (``grpo_loss.group_advantages``); the reference's token log-probs (``grpo_beta`` > 0) and the
   sampling weights' (``grpo_num_iterations`` > 1) computed once, under no_grad;
3. update — the loop runs ``loss`` per micro-batch: the policy's token log-probs of the completions (at the
   sampling temperature) into ``grpo_loss.policy_loss``.

With ``grpo_num_iterations`` = μ the loop deals each step's rows μ times in a row (``step_repeats``); the
first iteration samples, the next ones reuse the rollouts and their old log-probs (PPO-style reuse).
Validation prompts get one greedy and one sampled completion each: ``eval_reward`` (greedy, the metric
early stopping reads) and ``eval_reward_sampled``.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ..data.collate import Batch
from ..data.prompts import PromptData, PromptRow
from ..data.templates import IGNORE_INDEX
from ..grpo_loss import group_advantages, nanstd, policy_loss
from ..models.forward import TOKEN_LOGPS
from ..models.inference import stop_token_ids
from ..models.rollout import Completions, SamplingSettings, sample_completions
from ..rewards import Reward, build_rewards, score


@dataclass
class RolloutBatch:
    """One micro-batch of rollouts: B prompts x G completions as right-padded prompt+completion rows."""

    sequences: Batch  # targets: the completion tokens only
    completion_mask: torch.Tensor  # (N, C) 1 at each sampled token
    loss_mask: torch.Tensor  # (N, C) the tokens that count (truncated rows dropped with mask_truncated_completions)
    advantages: torch.Tensor  # (N,)
    old_logps: torch.Tensor | None = None  # (N, C) under the sampling weights (grpo_num_iterations > 1)
    ref_logps: torch.Tensor | None = None  # (N, C) under the reference (grpo_beta > 0)
    stats: dict[str, float] = field(default_factory=dict)  # rollout-time sums (rewards, lengths ...)

    def to(self, device: torch.device) -> "RolloutBatch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return RolloutBatch(self.sequences.to(device), move(self.completion_mask), move(self.loss_mask),
                            move(self.advantages), move(self.old_logps), move(self.ref_logps), self.stats)

    def state(self) -> dict[str, Any]:
        """Tensors and numbers only (checkpoints load with ``weights_only``)."""
        seqs = self.sequences
        return {"input_ids": seqs.input_ids, "attention_mask": seqs.attention_mask, "targets": seqs.targets,
                "completion_mask": self.completion_mask, "loss_mask": self.loss_mask, "advantages": self.advantages,
                "old_logps": self.old_logps, "ref_logps": self.ref_logps, "stats": dict(self.stats)}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> "RolloutBatch":
        seqs = Batch(s["input_ids"], s["attention_mask"], None, s["targets"], int(s["input_ids"].shape[0]))
        return cls(seqs, s["completion_mask"], s["loss_mask"], s["advantages"], s["old_logps"], s["ref_logps"],
                   dict(s["stats"]))


@dataclass
class EvalPrompts:
    """Validation prompts: scored by generation, not by a loss."""

    rows: list[int]

    def to(self, device: torch.device) -> "EvalPrompts":
        return self


def rollout_sequences(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                      pad_id: int) -> tuple[Batch, torch.Tensor]:
    """Right-padded prompt+completion rows whose targets are the completion tokens, and the (N, C) mask."""
    n = len(prompts)
    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    c_width = max(1, max(len(c) for c in completions))
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    targets = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    cmask = torch.zeros((n, c_width), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        row = list(p) + list(c)
        ids[i, :len(row)] = torch.tensor(row)
        attn[i, :len(row)] = 1
        if c:  # position t predicts token t+1: the last prompt position predicts the first completion token
            targets[i, len(p) - 1:len(row) - 1] = torch.tensor(list(c))
            cmask[i, :len(c)] = 1
    return Batch(ids, attn, None, targets, n), cmask


def completion_logps(runner: nn.Module, batch: RolloutBatch, temperature: float) -> torch.Tensor:
    """(N, C) token log-probs of the completions under ``runner`` (a ``CausalLMLoss``, possibly wrapped)."""
    seqs = batch.sequences
    token_logps = runner(**seqs.model_inputs(), output=TOKEN_LOGPS, temperature=temperature)
    picked = token_logps[seqs.targets != IGNORE_INDEX]
    out = torch.zeros(batch.completion_mask.shape, dtype=token_logps.dtype, device=token_logps.device)
    return out.masked_scatter(batch.completion_mask.bool(), picked)


EVAL_EPOCH = -2  # sample_seed's epoch for validation draws (training epochs count from 0; -1: outside the loop)


def sample_seed(seed: int, epoch: int, row: int, choice: int) -> int:
    """The generator seed of one sampled completion: a function of the run's seed, the epoch, the data row and
    the choice only (a row is dealt once per epoch), so the draw is the same whatever the processes, the
    accumulation or an interruption."""
    value = seed
    for part in (epoch + 3, row, choice):
        value = (value * 6364136223846793005 + part * 1442695040888963407 + 1) % (2 ** 63 - 1)
    return value


def reference_kind(cfg) -> str:
    """none (grpo_beta 0) | adapter_disabled (a new LoRA adapter) | copy (full, or LoRA from a starting adapter)."""
    if cfg.grpo_beta == 0.0:
        return "none"
    return "adapter_disabled" if cfg.is_lora and not cfg.adapter_name_or_path else "copy"


class GRPORecipe:
    def __init__(self, cfg, data: PromptData, tokenizer, loss_module: nn.Module, accelerator, rewards: list[Reward]):
        self.cfg, self.data, self.tokenizer, self.accelerator = cfg, data, tokenizer, accelerator
        self.rewards, self.G = rewards, cfg.num_generations
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.train_lengths = data.train.lengths
        self.step_repeats = cfg.grpo_num_iterations
        self.loss_module = loss_module  # replaced by the accelerate-prepared one in on_prepared
        self.stop_ids = stop_token_ids(accelerator.unwrap_model(loss_module).model, tokenizer)
        self.sampling = SamplingSettings(cfg.max_completion_length, cfg.temperature, cfg.top_p, cfg.top_k)
        self.reference = reference_kind(cfg)
        self.frozen = None
        if self.reference == "copy":
            self.frozen = copy.deepcopy(accelerator.unwrap_model(loss_module)).eval().requires_grad_(False)
        self._cached: list[RolloutBatch] | None = None
        self.timing = {"rollout_seconds": 0.0, "scoring_seconds": 0.0, "update_seconds": 0.0, "rollout_tokens": 0.0}
        self.length_max = 0
        self._update_started: float | None = None
        self._eval: list[EvalPrompts] | None = None

    def on_prepared(self, loss_module: nn.Module) -> None:
        self.loss_module = loss_module

    # -- checkpoints: the rollouts a later grpo_num_iterations step still trains on ------------------
    def state_dict(self) -> dict[str, Any]:
        reusable = self._cached and self.step_repeats > 1  # with mu = 1 the next step samples anew
        return {"rollouts": [batch.state() for batch in self._cached] if reusable else []}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._cached = [RolloutBatch.from_state(s) for s in state.get("rollouts", [])] or None

    # -- the loop's step hook ------------------------------------------------------------------------
    def step_batches(self, micro_rows: list[list[int]], loop: Any) -> list[RolloutBatch]:
        """The step's micro-batches: fresh rollouts on an iteration's first step, the kept ones after it."""
        self._end_update()
        first = loop.state.step_in_epoch % self.step_repeats == 0
        if first or self._cached is None or len(self._cached) != len(micro_rows):
            self._cached = self.rollouts(micro_rows, loop)
        self._update_started = time.perf_counter()
        return self._cached

    def _end_update(self) -> None:
        if self._update_started is not None:
            self.timing["update_seconds"] += time.perf_counter() - self._update_started
            self._update_started = None

    def _policy(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.loss_module)

    def rollouts(self, micro_rows: list[list[int]], loop: Any = None) -> list[RolloutBatch]:
        rows = [self.data.train.rows[i] for mb in micro_rows for i in mb]
        epoch = loop.state.epoch if loop is not None else -1
        seeds = [sample_seed(self.cfg.seed, epoch, i, g) for mb in micro_rows for i in mb for g in range(self.G)]
        started = time.perf_counter()
        sampled = self._sample(rows, self.sampling, seeds=seeds)
        scored_at = time.perf_counter()
        rewards, per_fn = self._score(rows, sampled)
        advantages = self._advantages(rewards, loop)
        batches, offset = [], 0
        for mb in micro_rows:
            n = len(mb) * self.G
            part = slice(offset, offset + n)
            batches.append(self._batch(rows[offset // self.G: (offset + n) // self.G], sampled, part,
                                       rewards[part], {k: v[part] for k, v in per_fn.items()}, advantages[part]))
            offset += n
        now = time.perf_counter()
        # scoring: the reward functions, the advantages and the no-grad reference / old log-prob passes
        self.timing["rollout_seconds"] += scored_at - started
        self.timing["scoring_seconds"] += now - scored_at
        return batches

    # -- rollouts and scoring -------------------------------------------------------------------------
    def _sample(self, rows: list[PromptRow], settings: SamplingSettings, repeat: int | None = None,
                seeds: list[int] | None = None) -> Completions:
        repeat = self.G if repeat is None else repeat
        prompts = [r.ids for r in rows for _ in range(repeat)]
        with self.accelerator.autocast():
            out = sample_completions(self._policy().model, prompts, settings, self.stop_ids,
                                     self.cfg.generation_batch_size, seeds)
        tokens = sum(len(t) for t in out.tokens)
        self.timing["rollout_tokens"] += tokens
        return out

    def _texts(self, sampled: Completions) -> list[str]:
        return self.tokenizer.batch_decode(sampled.tokens, skip_special_tokens=True)

    def _score(self, rows: list[PromptRow], sampled: Completions, repeat: int | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total reward per completion (NaN when no function scored it) and each function's values."""
        repeat = self.G if repeat is None else repeat
        texts = self._texts(sampled)
        prompts = [r.text for r in rows for _ in range(repeat)]
        where = [r.where for r in rows for _ in range(repeat)]
        names = sorted({k for r in rows for k in r.columns})
        columns = {k: [r.columns.get(k) for r in rows for _ in range(repeat)] for k in names}
        per_fn = {rw.name: torch.tensor(score(rw, prompts, texts, columns, where), dtype=torch.float32)
                  for rw in self.rewards}
        stacked = torch.stack([per_fn[rw.name] * rw.weight for rw in self.rewards], dim=1)
        total = stacked.nansum(dim=1)
        total[torch.isnan(stacked).all(dim=1)] = float("nan")
        return total, per_fn

    def _advantages(self, rewards: torch.Tensor, loop: Any) -> torch.Tensor:
        if self.cfg.grpo_scale_rewards != "batch" or loop is None or self.accelerator.num_processes == 1:
            return group_advantages(rewards, self.G, self.cfg.grpo_scale_rewards)
        # batch: the std of every process's rewards of this step (sums of count, x, x^2 over processes)
        ok = ~torch.isnan(rewards)
        n, s, sq = loop._all_sum([float(ok.sum()), float(rewards[ok].sum()), float((rewards[ok] ** 2).sum())])
        std = math.sqrt(max(sq - s * s / n, 0.0) / (n - 1)) if n > 1 else 0.0
        grouped = rewards.view(-1, self.G)
        adv = (grouped - torch.nanmean(grouped, dim=1, keepdim=True)).view(-1) / (std + 1e-4)
        return torch.nan_to_num(adv, nan=0.0)

    def _batch(self, rows: list[PromptRow], sampled: Completions, part: slice, rewards: torch.Tensor,
               per_fn: dict[str, torch.Tensor], advantages: torch.Tensor) -> RolloutBatch:
        tokens, truncated = sampled.tokens[part], sampled.truncated[part]
        prompts = [r.ids for r in rows for _ in range(self.G)]
        seqs, cmask = rollout_sequences(prompts, tokens, self.pad_id)
        loss_mask = cmask.clone()
        if self.cfg.mask_truncated_completions:
            loss_mask[torch.tensor(truncated, dtype=torch.bool)] = 0
        batch = RolloutBatch(seqs, cmask, loss_mask, advantages)
        lengths = [len(t) for t in tokens]
        self.length_max = max([self.length_max] + lengths)
        grouped = rewards.view(-1, self.G)
        group_std = nanstd(grouped, dim=1) if self.G > 1 else torch.zeros(grouped.shape[0])
        batch.stats = {"completions": float(len(tokens)), "groups": float(grouped.shape[0]),
                       "reward_sum": float(torch.nansum(rewards)), "reward_n": float((~torch.isnan(rewards)).sum()),
                       "group_std_sum": float(torch.nansum(group_std)),
                       "advantage_sum": float(advantages.sum()), "advantage_sq": float((advantages ** 2).sum()),
                       "completion_tokens": float(sum(lengths)), "truncated": float(sum(truncated)),
                       "entropy_sum": float(sum(sampled.entropy[part])),
                       "zero_std_groups": float((torch.nan_to_num(group_std) < 1e-6).sum())}
        for name, values in per_fn.items():
            batch.stats[f"reward/{name}_sum"] = float(torch.nansum(values))
            batch.stats[f"reward/{name}_n"] = float((~torch.isnan(values)).sum())
        self._side_logps(batch)
        return batch

    @torch.no_grad()
    def _side_logps(self, batch: RolloutBatch) -> None:
        """The reference's log-probs (grpo_beta > 0) and the sampling weights' (grpo_num_iterations > 1)."""
        device = self.accelerator.device
        on_device = batch.to(device)
        inner = self._policy()
        was_training = inner.training
        inner.eval()
        try:
            with self.accelerator.autocast():
                if self.step_repeats > 1:
                    batch.old_logps = completion_logps(inner, on_device, self.cfg.temperature).float().cpu()
                if self.reference == "adapter_disabled":
                    with inner.model.disable_adapter():
                        batch.ref_logps = completion_logps(inner, on_device, self.cfg.temperature).float().cpu()
                elif self.reference == "copy":
                    batch.ref_logps = completion_logps(self.frozen, on_device, self.cfg.temperature).float().cpu()
        finally:
            inner.train(was_training)

    # -- the loop's Recipe protocol ------------------------------------------------------------------
    def collate(self, rows: Sequence[int], split: str = "train") -> RolloutBatch | EvalPrompts:
        if split != "train":
            return EvalPrompts(list(rows))
        return self.rollouts([list(rows)])[0]

    def units(self, batch: RolloutBatch) -> float:
        """The loss type's normaliser share of this micro-batch (grpo_loss.AGGREGATIONS)."""
        return {"grpo": float(batch.loss_mask.shape[0]), "dr_grpo": float(batch.loss_mask.shape[0]),
                "bnpo": 1.0, "dapo": float(batch.loss_mask.sum())}[self.cfg.grpo_loss_type]

    def real_tokens(self, batch: RolloutBatch) -> int:
        return batch.sequences.n_real_tokens if isinstance(batch, RolloutBatch) else 0

    def loss(self, loss_module: nn.Module, batch: RolloutBatch | EvalPrompts) -> tuple[torch.Tensor, dict[str, Any]]:
        if isinstance(batch, EvalPrompts):
            return self._evaluate(batch)
        cfg = self.cfg
        logps = completion_logps(loss_module, batch, cfg.temperature)
        out = policy_loss(logps, batch.old_logps, batch.ref_logps, batch.advantages, batch.loss_mask,
                          loss_type=cfg.grpo_loss_type, beta=cfg.grpo_beta, epsilon=cfg.grpo_epsilon,
                          epsilon_high=cfg.resolved_grpo_epsilon_high, max_completion_length=cfg.max_completion_length)
        mask = batch.loss_mask.bool()
        stats: dict[str, Any] = dict(batch.stats)
        stats.update({"loss_sum": out.loss_sum.detach(), "units": self.units(batch), "loss_tokens": float(mask.sum()),
                      "clip_low": (out.low_clipped & mask).sum(), "clip_high": (out.high_clipped & mask).sum()})
        if out.per_token_kl is not None:
            stats["kl_sum"] = (out.per_token_kl * mask).sum()
        return out.loss_sum, stats

    def _evaluate(self, batch: EvalPrompts) -> tuple[torch.Tensor, dict[str, Any]]:
        rows = [self.data.validation.rows[i] for i in batch.rows]  # type: ignore[union-attr]
        stats: dict[str, Any] = {"completions": float(len(rows))}
        greedy = SamplingSettings(self.cfg.max_completion_length, greedy=True)
        seeds = [sample_seed(self.cfg.seed, EVAL_EPOCH, i, 0) for i in batch.rows]  # the same draws at every evaluation
        tokens_before = self.timing["rollout_tokens"]
        for suffix, settings in (("", greedy), ("_sampled", self.sampling)):
            total, per_fn = self._score(rows, self._sample(rows, settings, repeat=1, seeds=seeds), repeat=1)
            stats[f"reward{suffix}_sum"] = float(torch.nansum(total))
            stats[f"reward{suffix}_n"] = float((~torch.isnan(total)).sum())
            if not suffix:
                for name, values in per_fn.items():
                    stats[f"reward/{name}_sum"] = float(torch.nansum(values))
                    stats[f"reward/{name}_n"] = float((~torch.isnan(values)).sum())
        self.timing["rollout_tokens"] = tokens_before  # validation answers are not training rollouts
        return torch.zeros(()), stats

    def eval_batches(self) -> list[EvalPrompts]:
        if self._eval is None:
            val = self.data.validation
            size = max(1, self.cfg.per_device_train_batch_size * self.G)
            self._eval = [] if val is None or not val.rows else [
                EvalPrompts(list(range(i, min(i + size, len(val.rows))))) for i in range(0, len(val.rows), size)]
        return self._eval

    def summarize(self, sums: dict[str, float], prefix: str = "") -> dict[str, float]:
        ratio = lambda a, b: sums.get(a, 0.0) / max(sums.get(b, 0.0), 1.0)  # noqa: E731
        out = {f"{prefix}reward": ratio("reward_sum", "reward_n")}
        for key in sorted(sums):
            if key.startswith("reward/") and key.endswith("_sum"):
                name = key[: -len("_sum")]
                out[f"{prefix}{name}"] = ratio(key, f"{name}_n")
        if prefix:
            out[f"{prefix}reward_sampled"] = ratio("reward_sampled_sum", "reward_sampled_n")
            return out
        n = max(sums.get("completions", 0.0), 1.0)
        adv_var = sums.get("advantage_sq", 0.0) / n - (sums.get("advantage_sum", 0.0) / n) ** 2
        out.update({"loss": ratio("loss_sum", "units"), "reward_std": ratio("group_std_sum", "groups"),
                    "advantage_std": math.sqrt(max(adv_var, 0.0)),
                    "clip_ratio/low": ratio("clip_low", "loss_tokens"),
                    "clip_ratio/high": ratio("clip_high", "loss_tokens"),
                    "completion_length": ratio("completion_tokens", "completions"),
                    "completion_length_max": float(self.length_max),
                    "truncated_fraction": ratio("truncated", "completions"),
                    "entropy": ratio("entropy_sum", "completion_tokens"),
                    "zero_std_fraction": ratio("zero_std_groups", "groups")})
        if "kl_sum" in sums:
            out["kl"] = ratio("kl_sum", "loss_tokens")
        self._end_update()
        t = self.timing
        out.update({k: t[k] for k in ("rollout_seconds", "scoring_seconds", "update_seconds")})
        out["rollout_tokens_per_second"] = t["rollout_tokens"] / t["rollout_seconds"] if t["rollout_seconds"] else 0.0
        self.timing = {k: 0.0 for k in t}
        self.length_max = 0
        return out


def make_grpo_recipe(cfg, data: PromptData, tokenizer, loss_module: nn.Module, accelerator) -> GRPORecipe:
    """Reward functions are loaded here, from the config the user passed to ``tuneforge train``."""
    return GRPORecipe(cfg, data, tokenizer, loss_module, accelerator,
                      build_rewards(cfg.reward_functions, cfg.reward_weights))


def describe_prompts(data: PromptData) -> str:
    """The start banner's data line."""
    from .reporting import describe_splits

    val = data.validation
    return describe_splits("prompts", len(data.train.rows), data.train.truncated,
                           (len(val.rows), val.truncated) if val else None, data.report.summary())
