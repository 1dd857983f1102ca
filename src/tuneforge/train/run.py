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
from ..errors import ConfigError
from ..models.forward import CausalLMLoss
from ..models.load import count_parameters, load_tokenizer, prepare_model, resolve_precision
from ..monitor import MetricsLog, memory
from ..outputs import CONFIG_FILE, save_config, save_model
from .loop import TrainingLoop

METRICS_FILE = "metrics.jsonl"


@dataclass
class Strategy:
    """How one training strategy builds its data and its recipe; the rest of a run is shared."""

    build_data: Callable[[TrainConfig, Any], Any]
    make_recipe: Callable[..., Any]  # (cfg, data, tokenizer, model, module, accelerator) -> Recipe
    describe_data: Callable[[Any], str]


STRATEGIES: dict[str, Strategy] = {}


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

    @property
    def first_eval(self) -> dict[str, float]:
        return self.eval_history[0] if self.eval_history else {}

    @property
    def last_eval(self) -> dict[str, float]:
        return self.eval_history[-1] if self.eval_history else {}


def _strategy(cfg: TrainConfig) -> Strategy:
    from . import sft  # noqa: F401  (strategies register themselves on import)

    try:
        return STRATEGIES[cfg.training_strategy]
    except KeyError:
        raise ConfigError(f"training_strategy={cfg.training_strategy!r}: not available") from None


def _prepare_output_dir(cfg: TrainConfig) -> Path:
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir={cfg.output_dir!r}: exists and is not a directory.")
    finished = (out / CONFIG_FILE).is_file()
    if finished and not cfg.overwrite_output_dir and not cfg.resume_from_checkpoint:
        raise ConfigError(f"output_dir={cfg.output_dir!r} already holds a finished run. Choose another output_dir, "
                          "or set overwrite_output_dir=true to replace it.")
    if not cfg.resume_from_checkpoint:
        for name in (METRICS_FILE, CONFIG_FILE, "checkpoint-best"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _make_accelerator(cfg: TrainConfig, mixed_precision: str):
    from accelerate import Accelerator

    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())


def _say(accelerator, text: str) -> None:
    if accelerator is None or accelerator.is_main_process:
        print(text, flush=True)


def _progress_printer(total_steps: int) -> Callable[[dict], None]:
    """A live bar on a terminal; one plain line per logged record otherwise (CI logs, files)."""
    import sys

    from tqdm.auto import tqdm

    live = sys.stderr.isatty()
    bar = tqdm(total=total_steps, desc="train", unit="step", dynamic_ncols=True, disable=not live)

    def show(record: dict) -> None:
        fields = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "time"}
        if "loss" in record:
            post = {"loss": f"{record['loss']:.4f}", "lr": f"{record.get('learning_rate', 0):.2e}",
                    "tok/s": f"{record.get('tokens_per_second', 0):.0f}"}
            mem = record.get("gpu_peak_allocated_gib") or record.get("host_rss_gib")
            if mem is not None:
                post["mem"] = f"{mem:.2f}G"
            if live:
                bar.n = record.get("step", bar.n)
                bar.set_postfix(post)
                bar.refresh()
            else:
                print(f"step {record['step']}/{total_steps}: " + ", ".join(f"{k}={v}" for k, v in post.items()), flush=True)
        evals = ", ".join(f"{k}={v:.4f}" for k, v in fields.items() if k.startswith("eval_"))
        if evals:
            bar.write(f"step {record['step']}: {evals}")
        if record.get("event"):
            bar.write(f"step {record['step']}: {record['event']}")

    show.close = bar.close  # type: ignore[attr-defined]
    return show


def run_training(cfg: TrainConfig, *, progress: bool = True) -> RunSummary:
    strategy = _strategy(cfg)
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
    data = strategy.build_data(cfg, tokenizer)  # bad data is refused here, before any weights load
    out = _prepare_output_dir(cfg)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    precision = resolve_precision(cfg, device)
    accelerator = _make_accelerator(cfg, precision.mixed_precision)
    device = accelerator.device
    model, base_name = prepare_model(cfg, tokenizer, device, precision, out)
    module = CausalLMLoss(model)
    recipe = strategy.make_recipe(cfg, data, tokenizer, model, module, accelerator)
    trainable, total = count_parameters(model)
    effective = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * accelerator.num_processes
    log = MetricsLog(out / METRICS_FILE if accelerator.is_main_process else None)
    loop = TrainingLoop(cfg, recipe, model, module, accelerator, out, log)
    _say(accelerator, (
        f"tuneforge {cfg.training_strategy} | method: {cfg.method} | model: {cfg.model}\n"
        f"  parameters: {trainable:,} trainable / {total:,} total ({100 * trainable / max(total, 1):.2f}%)\n"
        f"  dtype: {precision.load_dtype} weights, mixed precision: {precision.mixed_precision} | device: {device}"
        f" x {accelerator.num_processes}\n"
        f"  effective batch: {cfg.per_device_train_batch_size} per device x {cfg.gradient_accumulation_steps} accumulation"
        f" x {accelerator.num_processes} processes = {effective} | steps: {loop.total_steps}"
        f" ({loop.steps_per_epoch}/epoch)\n"
        f"  data: {strategy.describe_data(data)}"))
    log.write({"event": "start", "step": 0, "method": cfg.method, "strategy": cfg.training_strategy,
               "trainable_params": trainable, "total_params": total, "effective_batch_size": effective,
               "total_steps": loop.total_steps, "device": str(device), **memory(device)})
    if progress and accelerator.is_main_process:
        loop.progress = _progress_printer(loop.total_steps)
    try:
        result = loop.run()
    finally:
        if loop.progress is not None and hasattr(loop.progress, "close"):
            loop.progress.close()
    summary = RunSummary(
        output_dir=str(out), method=cfg.method, steps=result.state.global_step,
        train_loss=result.last_metrics.get("loss"), eval_history=result.eval_history,
        best_metric=result.state.best_metric, best_step=result.state.best_step, stopped_early=result.stopped_early,
        wall_time=result.wall_time, tokens_per_second=result.tokens_per_second, peak_memory=memory(device),
        trainable_params=trainable, total_params=total)
    if accelerator.is_main_process:
        save_model(accelerator.unwrap_model(model), tokenizer, out)
        save_config(cfg, out, {"base_model": base_name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        log.write({"event": "end", "step": result.state.global_step, "wall_time_s": result.wall_time,
                   "tokens_per_second": result.tokens_per_second, "best_step": result.state.best_step,
                   cfg.metric_for_best_model + "_best": result.state.best_metric, **memory(device)})
        best = (f"best {cfg.metric_for_best_model} {result.state.best_metric:.4f} at step {result.state.best_step} "
                f"(saved as the run's output)" if result.state.best_step is not None else "no validation set")
        _say(accelerator, (
            f"done: {result.state.global_step} steps in {result.wall_time:.1f}s, {result.tokens_per_second:,.0f} tokens/s, "
            f"peak host memory {summary.peak_memory.get('host_peak_rss_gib', 0):.2f} GiB"
            + (f", peak GPU {summary.peak_memory['gpu_peak_allocated_gib']:.2f} GiB" if 'gpu_peak_allocated_gib' in summary.peak_memory else "")
            + f"\n  {best}\n  output: {out}"))
    log.close()
    return summary


def summary_json(summary: RunSummary) -> str:
    return json.dumps(summary.__dict__, ensure_ascii=False, default=str)
