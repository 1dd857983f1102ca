"""The one training loop, shared by SFT and DPO through a ``Recipe`` (what a batch is, how its loss is computed).

Per optimizer step: fetch the step's micro-batches, count their loss units (trained tokens for SFT,
pairs for DPO) across every micro-batch and process, backpropagate each micro-batch's *summed* loss
divided by that total — so accumulation equals one large batch exactly — then clip, step, schedule.
``TrainingLoop.run`` reads top to bottom: the steps come from a generator, and what happens after a
step (log, evaluate, early stop, checkpoint) is decided by small named methods.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import TrainingAborted
from ..monitor import MetricsLog, Throughput, memory
from ..rundir import BEST_DIR, improves
from ..run_outputs import load_trainable, save_trainable
from . import parallel
from .batch_fit import free_memory, is_oom, rechunk
from .progress import ProgressFile
from .batching import BatchGeometry, epoch_steps, steps_per_epoch


class Recipe(Protocol):
    """What differs between training strategies; the loop does everything else."""

    train_lengths: Sequence[int]  # per training row, for batching

    def collate(self, rows: Sequence[int], split: str) -> Any: ...
    def units(self, batch: Any) -> int: ...  # what the loss is averaged over (tokens, pairs)
    def real_tokens(self, batch: Any) -> int: ...
    def loss(self, loss_module: nn.Module,
             batch: Any) -> tuple[torch.Tensor, dict[str, float]]: ...  # (summed loss, stat sums)
    def summarize(self, sums: dict[str, float], prefix: str = "") -> dict[str, float]: ...
    def eval_batches(self) -> list[Any]: ...


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    consecutive_nonfinite: int = 0
    skipped_steps: int = 0
    # Older checkpoints also hold tokens_seen (never counted, removed): restoring skips keys it does not know.


@dataclass
class LoopResult:
    state: TrainState
    stopped_early: bool
    last_metrics: dict[str, float] = field(default_factory=dict)
    eval_history: list[dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0
    tokens_per_second: float = 0.0


def _lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warmup = math.ceil(cfg.warmup_ratio * total_steps)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.lr_scheduler_type == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if cfg.lr_scheduler_type == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return lr_factor


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kwargs = {}
    if any(p.is_cuda for p in decay + no_decay):
        kwargs["fused"] = True
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate,
                             betas=(cfg.adam_beta1, cfg.adam_beta2), **kwargs)


class TrainingLoop:
    """``model`` is the Hugging Face (or peft) model whose trainable weights are updated and saved;
    ``loss_module`` wraps it (``models.forward.CausalLMLoss``) and is what accelerate prepares and the loop runs."""

    def __init__(self, cfg: TrainConfig, recipe: Recipe, model: nn.Module, loss_module: nn.Module, accelerator,
                 output_dir: Path, log: MetricsLog, progress: Callable[[dict], None] | None = None,
                 on_step_end: Callable[["TrainingLoop"], None] | None = None, shrink_on_oom: bool = False,
                 geometry: BatchGeometry | None = None):
        self.cfg, self.recipe, self.model, self.accelerator = cfg, recipe, model, accelerator
        self.output_dir, self.log, self.progress = output_dir, log, progress
        self.on_step_end = on_step_end
        # The run resolves the geometry once (batch_fit.resolve_batch); a loop built directly takes the config's.
        self.geometry = geometry or BatchGeometry(cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps)
        # A recipe may train on each step's rows several times in a row (GRPO's grpo_num_iterations).
        self.step_repeats = getattr(recipe, "step_repeats", 1)
        self.steps_per_epoch = steps_per_epoch(len(recipe.train_lengths), self.geometry,
                                               accelerator.num_processes) * self.step_repeats
        planned = math.ceil(cfg.num_train_epochs * self.steps_per_epoch)
        self.total_steps = cfg.max_steps if cfg.max_steps > 0 else planned
        self.optimizer = build_optimizer(cfg, model)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(cfg, self.total_steps))
        self.loss_module, self.optimizer = accelerator.prepare(loss_module, self.optimizer)
        if hasattr(recipe, "on_prepared"):
            recipe.on_prepared(self.loss_module)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.state = TrainState()
        self.throughput = Throughput()
        self.window: dict[str, float] = {}  # stat sums since the last log line (saved in checkpoints)
        self.window_grad: list[float] = []
        self.shrink_on_oom = shrink_on_oom  # per_device_train_batch_size: auto (halve the micro-batch on OOM)
        self.micro_limit = 0  # 0 = micro-batches as the sampler deals them; >0 = split to at most this many rows
        self.last_skip: str | None = None
        self.best_path = output_dir / BEST_DIR / "trainable.safetensors"
        self.progress_file = ProgressFile(output_dir, self.total_steps) if accelerator.is_main_process else None

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> LoopResult:
        started = time.perf_counter()
        result = LoopResult(self.state, stopped_early=False)
        if self.state.global_step == 0 and self.recipe.eval_batches():
            result.eval_history.append(self._evaluate_and_log())
        for micro_rows in self._remaining_steps():
            self._train_step(micro_rows)
            if self._log_due():
                result.last_metrics = self._log_window()
            if self._eval_due():
                metrics = self._evaluate_and_log()
                result.eval_history.append(metrics)
                result.stopped_early = self._early_stop(metrics)
            if self.on_step_end is not None:
                self.on_step_end(self)  # the checkpointer
            if result.stopped_early:
                break
        self._restore_best()
        result.wall_time = time.perf_counter() - started
        result.tokens_per_second = self.throughput.overall()
        return result

    def _remaining_steps(self) -> Iterator[list[list[int]]]:
        """This process's micro-batches of each step still to run, from the saved data position on. The
        position (epoch, step_in_epoch) advances in ``_train_step``; an epoch ends here, after its last step."""
        while self.state.global_step < self.total_steps:
            steps = epoch_steps(len(self.recipe.train_lengths), self.recipe.train_lengths, self.geometry,
                                self.cfg.seed, self.state.epoch,
                                group_by_length=self.cfg.group_by_length and not self.cfg.packing,
                                world_size=self.accelerator.num_processes, rank=self.accelerator.process_index)
            if self.step_repeats > 1:
                steps = [s for s in steps for _ in range(self.step_repeats)]
            while self.state.step_in_epoch < len(steps) and self.state.global_step < self.total_steps:
                yield steps[self.state.step_in_epoch]
            if self.state.step_in_epoch >= len(steps):
                self.state.epoch += 1
                self.state.step_in_epoch = 0

    def _train_step(self, micro_rows: list[list[int]]) -> None:
        """One optimizer step; its stats join the logging window, a skipped step is reported instead."""
        began = time.perf_counter()
        sums, grad_norm, applied = self._step(micro_rows)
        took = time.perf_counter() - began
        self.throughput.spent(took)  # tokens/s over the steps' own time, not evaluations'
        self.state.global_step += 1
        self.state.step_in_epoch += 1
        if self.progress_file is not None:
            self.progress_file.step_done(self.state.global_step,
                                         self.state.epoch + self.state.step_in_epoch / max(1, self.steps_per_epoch),
                                         took)
        if applied:
            for k, v in sums.items():
                self.window[k] = self.window.get(k, 0.0) + v
            self.window_grad.append(grad_norm)
        else:
            self._report_skipped_step(grad_norm)

    def _report_skipped_step(self, grad_norm: float) -> None:
        self._log({"event": "skipped_step", "reason": self.last_skip or "non-finite loss or gradient norm",
                   "grad_norm": grad_norm, "consecutive": self.state.consecutive_nonfinite})
        if self.state.consecutive_nonfinite >= self.cfg.max_consecutive_nonfinite_steps:
            raise TrainingAborted(
                f"{self.state.consecutive_nonfinite} consecutive steps had a non-finite loss or gradient "
                f"norm (last at step {self.state.global_step}); their updates were skipped. Lower "
                "learning_rate, check the data, or use fp32/bf16 instead of fp16 "
                "(max_consecutive_nonfinite_steps sets the limit). The last good checkpoint is kept.")

    # -- what happens after a step ----------------------------------------------------------------
    def _at_boundary(self) -> bool:
        """The step just run ends an epoch or the run: log and evaluate whatever the intervals say."""
        return self.state.step_in_epoch >= self.steps_per_epoch or self.state.global_step >= self.total_steps

    def _log_due(self) -> bool:
        every = self.state.global_step % self.cfg.logging_steps == 0
        return bool(self.window) and (every or self._at_boundary())

    def _eval_due(self) -> bool:
        every = self.cfg.eval_steps > 0 and self.state.global_step % self.cfg.eval_steps == 0
        return (every or self._at_boundary()) and bool(self.recipe.eval_batches())

    def _log_window(self) -> dict[str, float]:
        """Log the training metrics of the steps since the last log line, and start a new window."""
        metrics = self.recipe.summarize(self._sum_stats(self.window))
        metrics.update(learning_rate=self.scheduler.get_last_lr()[0],
                       grad_norm=sum(self.window_grad) / len(self.window_grad),
                       tokens_per_second=self._all_sum([self.throughput.read()])[0])
        self._log(metrics)
        self.window, self.window_grad = {}, []
        return metrics

    def _evaluate_and_log(self) -> dict[str, float]:
        metrics = self.evaluate()
        self._log(metrics)
        return metrics

    def _early_stop(self, metrics: dict[str, float]) -> bool:
        """Track the best model; True (and an ``early_stopping`` event) when the patience has run out."""
        if not self._track_best(metrics):
            return False
        self._log({"event": "early_stopping", "best_step": self.state.best_step,
                   self.cfg.metric_for_best_model: self.state.best_metric})
        return True

    def _track_best(self, metrics: dict[str, float]) -> bool:
        """Save the model when it is the best so far; return True when early stopping should stop the run."""
        key = self.cfg.metric_for_best_model
        value = metrics.get(key)
        if value is None or not math.isfinite(value):
            return False
        if improves(value, self.state.best_metric, key):
            self.state.best_metric, self.state.best_step = value, self.state.global_step
            self.state.evals_without_improvement = 0
            with parallel.full_parameters(self.accelerator, self.loss_module, self.trainable):  # whole if sharded
                if self.is_main:
                    save_trainable(self.model, self.best_path)
        else:
            self.state.evals_without_improvement += 1
        patience = self.cfg.early_stopping_patience
        return patience > 0 and self.state.evals_without_improvement >= patience

    def _restore_best(self) -> None:
        """The run's output is its best evaluated model: rank 0 reads the snapshot, every process gets it."""
        self.accelerator.wait_for_everyone()
        if self.state.best_step is None or self.state.best_step == self.state.global_step:
            return
        with parallel.full_parameters(self.accelerator, self.loss_module, self.trainable, from_rank0=True):
            if self.is_main and self.best_path.is_file():
                load_trainable(self.model, self.best_path)

    def _log(self, record: dict[str, Any]) -> None:
        record = {"step": self.state.global_step,
                  "epoch": round(self.state.epoch + self.state.step_in_epoch / max(1, self.steps_per_epoch), 4),
                  **record, **memory(self.accelerator.device)}
        if self.is_main:
            record = self.log.write(record)
            if self.progress is not None:
                self.progress(record)

    # -- one optimizer step ----------------------------------------------------------------------
    def _step(self, micro_rows: list[list[int]]) -> tuple[dict[str, float], float, bool]:
        """One optimizer step; returns (stat sums, grad norm, applied). A skipped step says why in ``last_skip``."""
        self.last_skip = None
        if self.micro_limit:
            micro_rows = rechunk(micro_rows, self.micro_limit)
        batches = self._collate_step(micro_rows)
        local_units = sum(self.recipe.units(b) for b in batches)
        total_units = self._all_sum([float(local_units)])[0]
        if total_units == 0:
            # Every label masked: there is nothing to learn, and an update would still move the weights
            # (momentum, weight decay) behind a reported loss of 0. Skip it, visibly.
            self.state.skipped_steps += 1
            self.last_skip = "no trained token in this step (every label masked)"
            self._advance_schedule()
            return {}, 0.0, False
        sums = self._fit_memory(micro_rows, batches, total_units)
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        # FSDP computes the global norm only when handed exactly the wrapped module's parameters.
        norm = self.accelerator.clip_grad_norm_(
            list(self.loss_module.parameters()) if parallel.is_fsdp(self.accelerator) else self.trainable, max_norm)
        grad_norm = float(norm) if norm is not None else float("nan")  # None: DeepSpeed did not report it
        loss_value = self._all_sum([sums.get("loss_sum", 0.0)])[0]
        finite = (norm is None or math.isfinite(grad_norm)) and math.isfinite(loss_value)
        if finite:
            self.optimizer.step()
            self.state.consecutive_nonfinite = 0
        else:
            self._skip_update(loss_value)
        self.optimizer.zero_grad(set_to_none=True)
        self._advance_schedule()
        return sums, grad_norm, finite

    def _collate_step(self, micro_rows: list[list[int]]) -> list[Any]:
        """The step's micro-batches; a recipe whose batches depend on the whole step (GRPO samples and scores
        its rollouts for every micro-batch at once) builds them in ``step_batches``."""
        step_batches = getattr(self.recipe, "step_batches", None)
        if step_batches is not None:
            return step_batches(micro_rows, self)
        return [self.recipe.collate(rows, "train") for rows in micro_rows]

    def _skip_update(self, loss_value: float) -> None:
        """A non-finite loss or gradient norm: no update, counted towards the consecutive-fault limit."""
        self.state.skipped_steps += 1
        self.last_skip = "non-finite loss or gradient norm"
        fp16_scaler = getattr(self.accelerator, "scaler", None)
        if fp16_scaler is not None:
            # fp16: the loss scaler must see every step; it skips updates whose gradients overflowed and
            # lowers its scale. An overflow with a finite loss is its routine, not a fault.
            if not math.isfinite(loss_value):
                self.optimizer.zero_grad(set_to_none=True)
            self.optimizer.step()
        if math.isfinite(loss_value) and fp16_scaler is not None:
            self.last_skip = "fp16 gradient overflow (loss scale lowered)"
        else:
            self.state.consecutive_nonfinite += 1

    def _advance_schedule(self) -> None:
        with warnings.catch_warnings():  # a skipped step still advances the schedule
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()

    def _fit_memory(self, micro_rows: list[list[int]], batches: list[Any], total_units: float) -> dict[str, float]:
        """Forward+backward; with ``shrink_on_oom`` (batch size 'auto', one process) an out-of-memory error
        halves the micro-batch and retries the same rows: same step, same normalisation, less memory."""
        while True:
            try:
                return self._forward_backward(batches, total_units)
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                largest = max((len(mb) for mb in micro_rows), default=0)
                if not (is_oom(exc) and self.shrink_on_oom and self.accelerator.num_processes == 1 and largest > 1):
                    raise
            del batches
            self.optimizer.zero_grad(set_to_none=True)
            free_memory()
            self.micro_limit = max(1, largest // 2)
            micro_rows = rechunk(micro_rows, self.micro_limit)
            batches = [self.recipe.collate(rows, "train") for rows in micro_rows]
            self._log({"event": "oom_shrink", "micro_batch_size": self.micro_limit,
                       "reason": "out of memory: micro-batch halved, accumulation raised (same rows per step)"})

    def _forward_backward(self, batches: list[Any], total_units: float) -> dict[str, float]:
        """Backpropagate this process's micro-batches; gradients accumulate in ``.grad``."""
        world = self.accelerator.num_processes
        # A process with fewer micro-batches (the short last step of an epoch) pads with zero-weighted passes,
        # so every process runs the same forwards and backwards: DDP's gradient all-reduce needs a forward
        # (a bare zero backward never joins it and the others hang), FSDP and DeepSpeed communicate in each pass.
        n_passes = self._max_over_processes(len(batches))
        sums: dict[str, Any] = {}
        self.loss_module.train()
        for i in range(n_passes):
            real = i < len(batches)
            batch = (batches[i] if real else self._filler_batch(batches)).to(self.accelerator.device)
            with self._micro_batch_context(last=i == n_passes - 1):
                loss_sum, stats = self.recipe.loss(self.loss_module, batch)
                # DDP averages gradients over processes: scale by world so the result is sum / total_units.
                weight = world / max(total_units, 1.0) if real else 0.0
                self.accelerator.backward(loss_sum * weight, **self._backward_kwargs())
            self._add_stats(sums, stats, real)
            if real:
                self.throughput.add(self.recipe.real_tokens(batch))
        return self._to_host(sums)

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Every eval batch exactly once over all processes (batch i on process i % world), stat sums added
        over processes. A process short of batches runs filler passes whose stats count zero: under
        FSDP/DeepSpeed all processes must run the same forwards, and each needs the stat keys to reduce."""
        batches = self.recipe.eval_batches()
        if not batches:
            return {}
        self.loss_module.eval()
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        mine = batches[rank::world]
        passes = -(-len(batches) // world) if parallel.needs_lockstep(self.accelerator) else max(len(mine), 1)
        sums: dict[str, Any] = {}
        for i in range(passes):
            real = i < len(mine)
            batch = (mine[i] if real else batches[0]).to(self.accelerator.device)
            _, stats = self.recipe.loss(self.loss_module, batch)
            self._add_stats(sums, stats, real)
        return self.recipe.summarize(self._sum_stats(self._to_host(sums)), prefix="eval_")

    # -- stat sums and multi-process helpers (DDP, FSDP, DeepSpeed through accelerate) -------------
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _all_sum(self, values: list[float]) -> list[float]:
        if self.accelerator.num_processes == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(t, reduction="sum").tolist()

    @staticmethod
    def _add_stats(sums: dict[str, Any], stats: dict[str, Any], real: bool) -> None:
        """Add one micro-batch's stats (device tensors or host numbers) without reading tensors back: a
        filler pass adds its keys with zeros, so every process reduces the same keys."""
        for k, v in stats.items():
            if not real:
                sums.setdefault(k, 0.0)
                continue
            # float64, as Python floats were: the sums are the same numbers, added in the same order.
            v = v.detach().to(torch.float64) if isinstance(v, torch.Tensor) else float(v)
            sums[k] = sums[k] + v if k in sums else v

    @staticmethod
    def _to_host(sums: dict[str, Any]) -> dict[str, float]:
        """Stat sums as Python floats: one device-to-host copy for all the tensors (one sync per step)."""
        keys = [k for k, v in sums.items() if isinstance(v, torch.Tensor)]
        out = {k: float(v) for k, v in sums.items() if not isinstance(v, torch.Tensor)}
        if keys:
            out.update(zip(keys, torch.stack([sums[k].reshape(()) for k in keys]).tolist()))
        return out

    def _sum_stats(self, stats: dict[str, float]) -> dict[str, float]:
        keys = sorted(stats)
        return dict(zip(keys, self._all_sum([stats[k] for k in keys])))

    def _max_over_processes(self, count: int) -> int:
        if self.accelerator.num_processes == 1:
            return count
        import torch.distributed as dist

        t = torch.tensor([count], dtype=torch.int64, device=self.accelerator.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def _filler_batch(self, batches: list[Any]) -> Any:
        """Any batch, for a zero-weighted pass: this process's first, else the first training row."""
        return batches[0] if batches else self.recipe.collate([0], "train")

    @contextlib.contextmanager
    def _micro_batch_context(self, last: bool):
        """Gradients are reduced once per step, after its last micro-batch: DDP/FSDP through ``no_sync``,
        DeepSpeed through accelerate's sync flag (DeepSpeed also steps the optimizer at that boundary)."""
        acc = self.accelerator
        ctx = acc.no_sync(self.loss_module) if (acc.num_processes > 1 and not last) else contextlib.nullcontext()
        deepspeed = parallel.is_deepspeed(acc)
        if deepspeed:
            acc.gradient_state._set_sync_gradients(last)
        try:
            with ctx:
                yield
        finally:
            if deepspeed:
                acc.gradient_state._set_sync_gradients(True)

    def _backward_kwargs(self) -> dict[str, Any]:
        # The loss is already normalised over the step's units; DeepSpeed must not divide it again.
        return {"scale_wrt_gas": False} if parallel.is_deepspeed(self.accelerator) else {}
