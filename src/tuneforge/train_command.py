"""The training command, once: ``tuneforge train``, ``tuneforge.train(...)`` and a service task all run it here.

``train_command`` is the command (a config file and ``key=value`` overrides in, an exit code out; it launches
the processes a sharded or multi-process run needs); ``run_and_evaluate`` is the run itself in this process
with the hooks the command layer adds around the engine: ``eval_generation_steps``' step hook while training,
then on rank 0 the evaluation summary line and ``eval_after_training``. This module sits above the engine
(it imports ``evaluation``); the engine never imports it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .errors import ConfigError


def train_command(config: str | Path | None, overrides: list[str] | None = None, *, nproc: int = 0,
                  progress: bool = True, own_process: bool = False) -> int:
    """``tuneforge train CONFIG [key=value ...] [--nproc N]``: 0 when the run finished (errors raise)."""
    from .config import load_config
    from .training.parallel import needs_distributed_launch

    overrides = list(overrides or [])
    cfg = load_config(config, overrides)
    if nproc < 0:
        raise ConfigError(f"--nproc {nproc}: expected at least 1 process.")
    if own_process and not cfg.quantized and "bitsandbytes" not in sys.modules:
        # peft imports bitsandbytes whenever it is installed, and that import pulls in torch's compiler
        # stack (seconds of start-up); a run that quantizes nothing never needs it. Only when this
        # process is the command itself: in-process callers (tests, notebooks) may need it later.
        sys.modules["bitsandbytes"] = None  # type: ignore[assignment]
    self_launch = needs_distributed_launch(cfg)  # accelerate needs one: be that launcher
    if self_launch and not nproc:
        print(f"{'deepspeed' if cfg.deepspeed else 'fsdp'} needs a distributed launch: running as --nproc 1",
              flush=True)
    if (nproc or 1) > 1 or self_launch:
        from .training.launch import launch_processes

        flags = [] if progress else ["--no-progress"]
        return launch_processes(None if config is None else str(config), overrides + flags, nproc or 1)
    run_and_evaluate(cfg, progress=progress, keep_model=False)
    return 0


def run_and_evaluate(cfg: TrainConfig, *, progress: bool = True, keep_model: bool = True) -> Any:
    """Train ``cfg`` in this process, then the after-training hook; the engine's ``RunSummary``.

    ``keep_model=False`` drops the trained model before ``eval_after_training`` reloads the saved run for
    inference (the command has no use for it; the Python API returns it in ``summary.model``)."""
    from .evaluation.during_training import generation_hook  # eval_generation_steps (the engine never imports it)
    from .training.run import run_training

    summary = run_training(cfg, progress=progress, step_hooks=[generation_hook])
    _leave_process_group()
    if os.environ.get("RANK", "0") != "0":  # rank 0 speaks and evaluates; the run is saved by now
        return summary
    if summary.run_evals:
        print(eval_summary(summary.run_evals))
    if cfg.eval_after_training:
        from .evaluation.after_training import evaluate_after_training

        if not keep_model:
            summary.model = None  # free the training copy first
        evaluate_after_training(cfg)  # results: output_dir/eval/validation/
    return summary


def eval_summary(evals: list[dict]) -> str:
    """First and last evaluation of the whole run (a resumed run included), each with its step."""
    first, last = evals[0], evals[-1]
    start = "at start" if first.get("step") == 0 else f"at step {first.get('step')}"
    return (f"eval_loss: {first['eval_loss']:.4f} {start} -> {last['eval_loss']:.4f} "
            f"at the end (step {last.get('step')})")


def _leave_process_group() -> None:
    """In a launched process: wait until every process is done (rank 0 may still be writing the output), then
    tear the group down. Exiting with it still up once aborted a DeepSpeed process ('terminate called without
    an active exception') after a finished run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
