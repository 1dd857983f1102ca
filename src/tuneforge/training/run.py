"""Setup → train → save: builds every part from the config and runs the loop. ``tuneforge.train`` calls this."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import TrainConfig
from ..errors import ConfigError, TrainingAborted
from ..models.forward import CausalLMLoss
from ..models.memory import checkpointing_needed, estimate_lines
from ..models.load import count_parameters, load_tokenizer, prepare_model, resolve_precision, write_shared_base
from ..monitor import MetricsLog, memory, progress_printer
from ..outputs import CONFIG_FILE, save_config, save_model
from . import checkpoint as ckpt
from .batch_fit import is_oom, oom_message, resolve_batch
from .loop import TrainingLoop
from .reporting import RunReporter, chain
from .parallel import (adjust_precision, engine_name, gathered_state_dict, prepare_model_for_engine,
                       save_pretrained_gathered)

METRICS_FILE = "metrics.jsonl"


@dataclass
class Strategy:
    """How one training strategy builds its data and its recipe; the rest of a run is shared."""

    build_data: Callable[[TrainConfig, Any], Any]
    make_recipe: Callable[..., Any]  # (cfg, data, tokenizer, model, module, accelerator) -> Recipe
    describe_data: Callable[[Any], str]


STRATEGIES: dict[str, Strategy] = {}


def describe_splits(unit: str, n_train: int, train_truncated: int, validation: tuple[int, int] | None,
                    dropped: str) -> str:
    """The banner's data line: rows (or pairs) per split, how many were truncated, what was dropped."""
    text = f"{n_train} training {unit} ({train_truncated} truncated to seq_length)"
    text += f", {validation[0]} validation {unit} ({validation[1]} truncated)" if validation else ", no validation set"
    return text + dropped


def register_strategy(name: str, strategy: Strategy) -> None:
    STRATEGIES[name] = strategy


@dataclass
class RunSummary:
    output_dir: str
    method: str
    steps: int
    train_loss: float | None
    eval_history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    wall_time: float = 0.0
    tokens_per_second: float = 0.0
    peak_memory: dict[str, float] = field(default_factory=dict)
    trainable_params: int = 0
    total_params: int = 0
    model: Any = field(default=None, repr=False, compare=False)  # the trained model, in memory (API use)

    @property
    def first_eval(self) -> dict[str, float]:
        return self.eval_history[0] if self.eval_history else {}

    @property
    def last_eval(self) -> dict[str, float]:
        return self.eval_history[-1] if self.eval_history else {}


def _strategy(cfg: TrainConfig) -> Strategy:
    from . import dpo, sft  # noqa: F401  (strategies register themselves on import)

    try:
        return STRATEGIES[cfg.training_strategy]
    except KeyError:
        raise ConfigError(f"training_strategy={cfg.training_strategy!r}: not available") from None


def _prepare_output_dir(cfg: TrainConfig, resuming: bool = False) -> Path:
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir={cfg.output_dir!r}: exists and is not a directory.")
    finished = (out / CONFIG_FILE).is_file()
    if finished and not cfg.overwrite_output_dir and not resuming:
        raise ConfigError(f"output_dir={cfg.output_dir!r} already holds a finished run. Choose another output_dir, "
                          "or set overwrite_output_dir=true to replace it.")
    if not resuming:  # a fresh run: nothing of an earlier run may be mistaken for this one's (or resumed)
        stale = [out / n for n in (METRICS_FILE, CONFIG_FILE, "checkpoint-best")] + \
            [p for p in (out.glob(ckpt.PREFIX + "*") if out.is_dir() else []) if p.name != "checkpoint-best"]
        for target in stale:
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _make_accelerator(cfg: TrainConfig, mixed_precision: str):
    """DDP, FSDP or DeepSpeed by config; the process group comes from the launcher's environment
    (``tuneforge train --nproc``, torchrun, accelerate launch): gloo on CPU, NCCL on GPUs."""
    from accelerate import Accelerator

    from .parallel import accelerator_kwargs, check_engine, check_launch

    check_launch(cfg)
    cpu, handlers = not torch.cuda.is_available(), []
    if cpu and cfg.deepspeed:
        # accelerate's cpu=True switches DeepSpeed off, and without a GPU it finds no process-group backend:
        # name gloo, which DeepSpeed's own CPU accelerator communicates over.
        from accelerate.utils import InitProcessGroupKwargs

        cpu, handlers = False, [InitProcessGroupKwargs(backend="gloo")]
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=cpu, kwargs_handlers=handlers,
                              **accelerator_kwargs(cfg, mixed_precision))
    check_engine(cfg, accelerator)
    return accelerator


def _say(accelerator, text: str) -> None:
    if accelerator is None or accelerator.is_main_process:
        print(text, flush=True)


def _start_banner(cfg: TrainConfig, precision, accelerator, loop: TrainingLoop, trainable: int, total: int,
                  data_text: str) -> str:
    """What the run is about to do: method, parameters, dtype, device, effective batch, data."""
    world = accelerator.num_processes
    effective = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world
    return (
        f"tuneforge {cfg.training_strategy} | method: {cfg.method} | model: {cfg.model}\n"
        f"  parameters: {trainable:,} trainable / {total:,} total ({100 * trainable / max(total, 1):.2f}%)\n"
        f"  dtype: {precision.load_dtype} weights, mixed precision: {precision.mixed_precision} | device: "
        f"{accelerator.device} x {world} ({engine_name(accelerator)})\n"
        f"  effective batch: {cfg.per_device_train_batch_size} per device x {cfg.gradient_accumulation_steps} "
        f"accumulation x {world} processes = {effective} | steps: {loop.total_steps} ({loop.steps_per_epoch}/epoch)\n"
        f"  data: {data_text}")


def _end_banner(cfg: TrainConfig, result, summary: RunSummary, out: Path, curves_name: str) -> str:
    """Wall time, throughput, peak memory, the best evaluation and where the output is."""
    state, peak = result.state, summary.peak_memory
    best = (f"best {cfg.metric_for_best_model} {state.best_metric:.4f} at step {state.best_step} "
            f"(saved as the run's output)" if state.best_step is not None else "no validation set")
    gpu = f", peak GPU {peak['gpu_peak_allocated_gib']:.2f} GiB" if "gpu_peak_allocated_gib" in peak else ""
    return (f"done: {state.global_step} steps in {result.wall_time:.1f}s, {result.tokens_per_second:,.0f} tokens/s, "
            f"peak host memory {peak.get('host_peak_rss_gib', 0):.2f} GiB{gpu}\n"
            f"  {best}\n  output: {out} (curves: {curves_name})")


def run_training(cfg: TrainConfig, *, progress: bool = True) -> RunSummary:
    strategy = _strategy(cfg)
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
    data = strategy.build_data(cfg, tokenizer)  # bad data is refused here, before any weights load
    reporter = RunReporter(cfg, Path(cfg.output_dir), Path(cfg.output_dir) / METRICS_FILE)  # report_to checked early
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    precision = adjust_precision(cfg, resolve_precision(cfg, device))
    accelerator = _make_accelerator(cfg, precision.mixed_precision)
    device = accelerator.device
    say = lambda text: _say(accelerator, text)  # noqa: E731
    world = accelerator.num_processes
    resume_path, saved = ckpt.resume_point(cfg, Path(cfg.output_dir), world,
                                           bool(getattr(cfg, "fsdp", None)), say)
    fingerprint = ckpt.fingerprint(cfg, world)
    accelerator.wait_for_everyone()  # every process has read the checkpoints before rank 0 may clear them
    # Rank 0 clears and writes shared files (output dir, the toy base model) before the others read them.
    # The model itself loads in all processes at once: under ZeRO-3 loading is collective (zero.Init).
    with accelerator.main_process_first():
        if accelerator.is_main_process:
            out = _prepare_output_dir(cfg, resume_path is not None)
            write_shared_base(cfg, out)
        else:
            out = Path(cfg.output_dir)
    model, base_name = prepare_model(cfg, tokenizer, device, precision, out)
    module = CausalLMLoss(model)
    prepare_model_for_engine(cfg, accelerator, model, module)
    requested_batch = cfg.per_device_train_batch_size
    cfg = resolve_batch(cfg, saved.get("geometry") if saved else None,
                        lambda c: strategy.make_recipe(c, data, tokenizer, model, module, accelerator),
                        module, device, world, say)
    recipe = strategy.make_recipe(cfg, data, tokenizer, model, module, accelerator)
    trainable, total = count_parameters(model)
    effective = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * accelerator.num_processes
    discarded = 0
    if resume_path is not None and accelerator.is_main_process:  # the steps after the checkpoint are redone
        discarded = ckpt.trim_metrics(out / METRICS_FILE, saved["train_state"]["global_step"])
    log = MetricsLog(out / METRICS_FILE if accelerator.is_main_process else None)
    checkpointer = ckpt.Checkpointer(cfg, out, fingerprint, say)
    loop = TrainingLoop(cfg, recipe, model, module, accelerator, out, log, on_step_end=checkpointer)
    loop.shrink_on_oom = requested_batch == "auto"
    if resume_path is not None:
        checkpointer.restore(loop, resume_path)
    _say(accelerator, _start_banner(cfg, precision, accelerator, loop, trainable, total, strategy.describe_data(data)))
    memory_lines, memory_record = estimate_lines(cfg, accelerator.unwrap_model(model), device, precision.mixed_precision,
                                                 total_params=total, trainable_params=trainable,
                                                 longest_row=max(recipe.train_lengths, default=None))
    say("\n".join(memory_lines))
    if checkpointing_needed(cfg, memory_record):
        # Decided from the estimate above (made without checkpointing); results are unchanged, only memory.
        accelerator.unwrap_model(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        say("  gradient_checkpointing: auto -> on (the estimate exceeds the usable memory)")
    elif cfg.gradient_checkpointing == "auto":
        say("  gradient_checkpointing: auto -> off (the estimate fits)")
    resumed = {} if resume_path is None else {"checkpoint": str(resume_path), "discarded_records": discarded}
    if resume_path is not None:
        say(f"  resumed from {resume_path} at step {loop.state.global_step} (epoch {loop.state.epoch}, "
            f"step {loop.state.step_in_epoch} of it); {discarded} metrics records after it dropped (redone)")
    log.write({"event": "resume" if resume_path else "start", "step": loop.state.global_step, "method": cfg.method,
               "strategy": cfg.training_strategy, **resumed,
               "trainable_params": trainable, "total_params": total, "effective_batch_size": effective,
               "total_steps": loop.total_steps, "device": str(device), "engine": engine_name(accelerator), **memory_record, **memory(device)})
    if accelerator.is_main_process:  # curves image / TensorBoard follow every record; the bar only when asked
        loop.progress = chain(reporter, progress_printer(loop.total_steps) if progress else None)
    try:
        result = loop.run()
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        if not is_oom(exc):
            raise
        raise TrainingAborted(oom_message(cfg, loop.micro_limit or cfg.per_device_train_batch_size,
                                          cfg.gradient_accumulation_steps, f"step {loop.state.global_step + 1}")
                              + " The last complete checkpoint is kept: after changing the micro-batch (same "
                              "effective batch), rerun with resume_from_checkpoint: auto.") from None
    finally:
        if loop.progress is not None and hasattr(loop.progress, "close"):
            loop.progress.close()
    summary = RunSummary(
        output_dir=str(out), method=cfg.method, steps=result.state.global_step,
        train_loss=result.last_metrics.get("loss"), eval_history=result.eval_history,
        best_metric=result.state.best_metric, best_step=result.state.best_step, stopped_early=result.stopped_early,
        wall_time=result.wall_time, tokens_per_second=result.tokens_per_second, peak_memory=memory(device),
        trainable_params=trainable, total_params=total, model=accelerator.unwrap_model(model))
    gathered = gathered_state_dict(accelerator, loop.module)  # collective: sharded weights made whole on rank 0
    if accelerator.is_main_process:
        if gathered is None:
            save_model(accelerator.unwrap_model(model), tokenizer, out)
        else:
            save_pretrained_gathered(accelerator.unwrap_model(model), tokenizer, out, gathered)
        save_config(cfg, out, {"base_model": base_name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        log.write({"event": "end", "step": result.state.global_step, "wall_time_s": result.wall_time,
                   "tokens_per_second": result.tokens_per_second, "best_step": result.state.best_step,
                   cfg.metric_for_best_model + "_best": result.state.best_metric, **memory(device)})
        reporter.finish()
        _say(accelerator, _end_banner(cfg, result, summary, out, reporter.curves_path.name))
    log.close()
    return summary
