"""One training run in three steps: setup → train → save outputs, on a ``Run`` that holds what setup built.

``run_training`` (what ``tuneforge.train`` and ``tuneforge train`` call) reads top to bottom:

    run = Run(cfg)
    run.setup()          # inputs, processes, the output directory (lock, resume or fresh), model, loop
    run.train()          # the loop; signals stop it after a step with a checkpoint
    run.save_outputs()   # model/adapter, tokenizer, model card, metrics end record, config (written last)

Output-directory rules (marker, lock, file names) live in ``tuneforge.rundir``, resume in ``checkpoint``; banners
in ``reporting``. docs/reliability.md describes the behaviour users and the task service rely on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..config import TrainConfig
from ..errors import TrainingAborted
from ..models.forward import CausalLMLoss
from ..models.load import count_parameters, load_tokenizer, prepare_model, resolve_precision, write_shared_base
from ..machine_check import check_machine
from ..models.memory_report import checkpointing_needed, estimate_lines
from ..monitor import MetricsLog, memory, progress_printer
from .. import rundir
from ..rundir import METRICS_FILE, read_evaluations, trim_metrics
from ..run_outputs import point_adapter_at_base, save_config, save_model, write_model_card
from . import checkpoint as ckpt
from . import faults, interrupts
from .batch_fit import apply_geometry, is_oom, oom_message, resolve_batch
from .loop import TrainingLoop
from .parallel import (adjust_precision, gathered_state_dict, parallelism_name, prepare_model_for_parallelism,
                       save_pretrained_gathered)
from .reporting import RunReporter, chain, end_banner, resume_line, start_banner
from .strategies import strategy_for
from .trackers.manager import TrackerSet

__all__ = ["Run", "RunSummary", "run_training"]


@dataclass
class RunSummary:
    output_dir: str
    method: str
    steps: int
    train_loss: float | None
    eval_history: list[dict[str, float]] = field(default_factory=list)  # evaluations run by this process
    best_metric: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    wall_time: float = 0.0
    tokens_per_second: float = 0.0
    peak_memory: dict[str, float] = field(default_factory=dict)
    trainable_params: int = 0
    total_params: int = 0
    start_step: int = 0  # > 0 when this process resumed the run
    run_evals: list[dict[str, Any]] = field(default_factory=list)  # every evaluation of the run, with its step
    model: Any = field(default=None, repr=False, compare=False)  # the trained model, in memory (API use)

    @property
    def first_eval(self) -> dict[str, float]:
        return self.eval_history[0] if self.eval_history else {}

    @property
    def last_eval(self) -> dict[str, float]:
        return self.eval_history[-1] if self.eval_history else {}


def _make_accelerator(cfg: TrainConfig, mixed_precision: str):
    """DDP, FSDP or DeepSpeed by config; the process group comes from the launcher's environment
    (``tuneforge train --nproc``, torchrun, accelerate launch): gloo on CPU, NCCL on GPUs."""
    from accelerate import Accelerator

    from .parallel import accelerator_kwargs, check_launch, check_parallelism

    check_launch(cfg)
    cpu, handlers = not torch.cuda.is_available(), []
    if cpu and cfg.deepspeed:
        # accelerate's cpu=True switches DeepSpeed off, and without a GPU it finds no process-group backend:
        # name gloo, which DeepSpeed's own CPU accelerator communicates over.
        from accelerate.utils import InitProcessGroupKwargs

        cpu, handlers = False, [InitProcessGroupKwargs(backend="gloo")]
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=cpu, kwargs_handlers=handlers,
                              **accelerator_kwargs(cfg, mixed_precision))
    check_parallelism(cfg, accelerator)
    return accelerator


class Run:
    """One training run. ``setup`` builds the parts, ``train`` runs the loop, ``save_outputs`` writes results;
    ``close`` releases the log and the output directory's lock (always call it)."""

    def __init__(self, cfg: TrainConfig, *, progress: bool = True, step_hooks: Sequence[Callable[["Run"], Any]] = ()):
        self.cfg, self.show_bar = cfg, progress
        self.hook_factories = tuple(step_hooks)  # the command layer's (e.g. eval_generation_steps); each may give None
        self.accelerator: Any = None
        self.lock: rundir.RunLock | None = None
        self.log: MetricsLog | None = None
        self.printer: Any = None
        self.result: Any = None
        self.trackers: TrackerSet | None = None

    @property
    def is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def say(self, text: str) -> None:
        if self.is_main:
            print(text, flush=True)

    # -- 1. setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        self._read_inputs()
        self._start_processes()
        self._prepare_output_dir()
        self._build_model()
        self._build_loop()
        self._announce()

    def _read_inputs(self) -> None:
        """Tokenizer and data first: bad data is refused here, before any weights load or any file is written."""
        cfg = self.cfg
        self.strategy = strategy_for(cfg)
        check_machine(cfg)  # a misspelled model, a seq_length beyond its context, a run that cannot fit
        torch.manual_seed(cfg.seed)
        self.tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
        self.data = self.strategy.build_data(cfg, self.tokenizer)
        self.out = Path(cfg.output_dir)
        self.reporter = RunReporter(cfg, self.out, self.out / METRICS_FILE)  # report_to is checked early too

    def _start_processes(self) -> None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        self.precision = adjust_precision(self.cfg, resolve_precision(self.cfg, device))
        self.accelerator = _make_accelerator(self.cfg, self.precision.mixed_precision)
        self.device, self.world = self.accelerator.device, self.accelerator.num_processes

    def _prepare_output_dir(self) -> None:
        """Rank 0 locks and marks the directory; every process reads the resume plan from it before rank 0
        removes an earlier run's files or writes the shared toy base model."""
        acc, cfg = self.accelerator, self.cfg
        with acc.main_process_first():
            if acc.is_main_process:
                self.lock = rundir.claim(self.out)
        self.plan = ckpt.plan_resume(cfg, self.out, self.world, bool(cfg.fsdp), self.say)
        acc.wait_for_everyone()
        with acc.main_process_first():
            if acc.is_main_process:
                if self.plan.clear:
                    removed = rundir.clear_run_files(self.out)
                    if removed and cfg.overwrite_output_dir:
                        self.say(f"overwrite_output_dir: removed the earlier run's files ({', '.join(removed)})")
                write_shared_base(cfg, self.out)

    def _build_model(self) -> None:
        cfg, acc = self.cfg, self.accelerator
        self.model, self.base_name = prepare_model(cfg, self.tokenizer, self.device, self.precision, self.out)
        self.loss_module = (self.strategy.wrap_model or CausalLMLoss)(self.model)
        prepare_model_for_parallelism(cfg, acc, self.model, self.loss_module)
        self.requested_batch = cfg.per_device_train_batch_size
        # What defines the run as requested ('auto' stays 'auto'): the resume check compares the same form.
        self.fingerprint = ckpt.fingerprint(cfg, self.world)
        saved = self.plan.saved
        self.geometry = resolve_batch(cfg, saved.get("geometry") if saved else None, self._make_recipe,
                                      self.loss_module, self.device, self.world, self.say)
        self.cfg = apply_geometry(cfg, self.geometry)
        self.recipe = self._make_recipe(self.cfg)
        self.trainable, self.total = count_parameters(self.model)

    def _make_recipe(self, cfg: TrainConfig):
        return self.strategy.make_recipe(cfg, self.data, self.tokenizer, self.loss_module, self.accelerator)

    def _build_loop(self) -> None:
        cfg, acc, plan = self.cfg, self.accelerator, self.plan
        self.discarded = 0
        if plan.checkpoint is not None and acc.is_main_process:  # the steps after the checkpoint are redone
            self.discarded = trim_metrics(self.out / METRICS_FILE, plan.saved["train_state"]["global_step"])
        self.log = MetricsLog(self.out / METRICS_FILE if acc.is_main_process else None)
        if acc.is_main_process:
            self._start_trackers()
        self.checkpointer = ckpt.Checkpointer(cfg, self.out, self.fingerprint, self.say)
        progress = None
        if acc.is_main_process:  # curves image / TensorBoard follow every record; the bar only when asked
            self.printer = progress_printer(bar=self.show_bar)
            progress = chain(self.reporter, self.printer)
        self.loop = TrainingLoop(cfg, self.recipe, self.model, self.loss_module, acc, self.out, self.log,
                                 progress=progress, on_step_end=self._step_end(),
                                 shrink_on_oom=self.requested_batch == "auto", geometry=self.geometry)
        if plan.checkpoint is not None:
            self.checkpointer.restore(self.loop, plan.checkpoint)
        self.start_step = self.loop.state.global_step

    def _step_end(self) -> Callable[[TrainingLoop], None]:
        """After each step: the command layer's hooks, then the checkpointer (so a checkpoint follows their records)."""
        hooks = [hook for hook in (make(self) for make in self.hook_factories) if hook is not None]
        if not hooks:
            return self.checkpointer

        def step_end(loop: TrainingLoop) -> None:
            for hook in hooks:
                hook(loop)
            self.checkpointer(loop)

        return step_end

    def _announce(self) -> None:
        """The start banner, the memory estimate (and the gradient-checkpointing decision), the start record."""
        cfg, acc, loop = self.cfg, self.accelerator, self.loop
        self.say(start_banner(cfg, self.precision, acc, parallelism_name(acc), loop, self.trainable, self.total,
                              self.strategy.describe_data(self.data)))
        unwrapped = acc.unwrap_model(self.model)
        memory_lines, memory_record = estimate_lines(cfg, unwrapped, self.device, self.precision.mixed_precision,
                                                     total_params=self.total, trainable_params=self.trainable,
                                                     train_lengths=self.recipe.train_lengths, world=self.world)
        self.say("\n".join(memory_lines))
        if checkpointing_needed(cfg, memory_record):
            # Decided from the estimate above (made without checkpointing); results are unchanged, only memory.
            unwrapped.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.say("  gradient_checkpointing: auto -> on (the estimate exceeds 90% of the usable memory)")
        elif cfg.gradient_checkpointing == "auto":
            self.say("  gradient_checkpointing: auto -> off (the estimate fits)")
        resumed = {}
        if self.plan.checkpoint is not None:
            resumed = {"checkpoint": str(self.plan.checkpoint), "discarded_records": self.discarded}
            self.say(resume_line(self.plan.checkpoint, loop.state, loop.total_steps, loop.steps_per_epoch,
                                 self.discarded))
        self.log.write({"event": "resume" if resumed else "start", "step": loop.state.global_step,
                        "method": cfg.method, "strategy": cfg.training_strategy, **resumed,
                        "trainable_params": self.trainable, "total_params": self.total,
                        "effective_batch_size": self.geometry.effective(self.world), "total_steps": loop.total_steps,
                        "device": str(self.device),
                        "engine": parallelism_name(acc), **memory_record, **memory(self.device)})
        if self.printer is not None:
            self.printer.start(loop.total_steps)

    # -- 2. train -------------------------------------------------------------------------------
    def train(self) -> None:
        """The loop. A signal stops it after the current step with a checkpoint (one process), or at once."""
        loop = self.loop
        try:
            with interrupts.graceful_stop(self.world == 1, self.say):
                self.result = loop.run()
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if not is_oom(exc):
                raise
            raise TrainingAborted(oom_message(self.cfg, loop.micro_limit or self.cfg.per_device_train_batch_size,
                                              self.cfg.gradient_accumulation_steps,
                                              f"step {loop.state.global_step + 1}")
                                  + " The last complete checkpoint is kept: after changing the micro-batch (same "
                                  "effective batch), rerun with resume_from_checkpoint: auto.") from None
        except (KeyboardInterrupt, interrupts.Terminated) as exc:  # a second signal, or several processes
            signum = interrupts.signal_of(exc)
            raise interrupts.RunInterrupted(signum, self.checkpointer.stop_message(loop, signum)) from None
        finally:
            if self.printer is not None:
                self.printer.close()

    # -- 3. save outputs ------------------------------------------------------------------------
    def save_outputs(self) -> RunSummary:
        """The trained model (the best evaluated one), the tokenizer, the model card, the end record, and the
        resolved config last: its presence marks the run finished."""
        faults.point("before_outputs")
        acc, cfg, result = self.accelerator, self.cfg, self.result
        unwrapped = acc.unwrap_model(self.model)
        gathered = gathered_state_dict(acc, self.loop.loss_module)  # collective: sharded weights made whole on rank 0
        summary = self._summary(unwrapped)
        if acc.is_main_process:
            point_adapter_at_base(unwrapped, self.base_name)
            if gathered is None:
                save_model(unwrapped, self.tokenizer, self.out)
            else:
                save_pretrained_gathered(unwrapped, self.tokenizer, self.out, gathered)
            self.log.write({"event": "end", "step": result.state.global_step, "wall_time_s": result.wall_time,
                            "tokens_per_second": result.tokens_per_second, "best_step": result.state.best_step,
                            cfg.metric_for_best_model + "_best": result.state.best_metric, **memory(self.device)})
            summary.run_evals = read_evaluations(self.out / METRICS_FILE)
            write_model_card(self.out, cfg, self.base_name, self._card_facts(summary))
            self.reporter.finish()
            save_config(cfg, self.out, {"base_model": self.base_name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
            if self.trackers:
                self.trackers.finish(tracker_summary(summary), self.out)
            self.say(end_banner(cfg, result, self.start_step, summary.peak_memory, self.out,
                                self.reporter.curves_path.name))
        return summary

    def _summary(self, unwrapped) -> RunSummary:
        result = self.result
        return RunSummary(
            output_dir=str(self.out), method=self.cfg.method, steps=result.state.global_step,
            train_loss=result.last_metrics.get("loss"), eval_history=result.eval_history,
            best_metric=result.state.best_metric, best_step=result.state.best_step,
            stopped_early=result.stopped_early, wall_time=result.wall_time,
            tokens_per_second=result.tokens_per_second, peak_memory=memory(self.device),
            trainable_params=self.trainable, total_params=self.total, start_step=self.start_step, model=unwrapped)

    def _card_facts(self, summary: RunSummary) -> dict[str, str]:
        facts = {"optimizer steps": f"{summary.steps:,}"}
        if summary.train_loss is not None:
            facts["last training loss"] = f"{summary.train_loss:.4f}"
        if summary.run_evals:
            first, last = summary.run_evals[0], summary.run_evals[-1]
            facts["eval_loss"] = (f"{first['eval_loss']:.4f} at step {first['step']} -> "
                                  f"{last['eval_loss']:.4f} at step {last['step']}")
        if summary.best_step is not None:
            facts[f"best {self.cfg.metric_for_best_model}"] = (f"{summary.best_metric:.4f} at step {summary.best_step} "
                                                               "(these weights)")
        return facts

    def _start_trackers(self) -> None:
        """Rank 0: the report_to trackers get the resolved config now and every metrics record from here on
        (a resumed run continues the tracker runs in trackers.json)."""
        self.trackers = TrackerSet.for_config(self.cfg, self.out, self.say)
        if self.trackers:
            self.trackers.start({**self.cfg.to_dict(), "method": self.cfg.method, "world_size": self.world},
                                resumed=self.plan.checkpoint is not None)
            self.log.listeners.append(self.trackers.log)

    def close(self) -> None:
        if self.trackers is not None:
            self.trackers.close()
        if self.log is not None:
            self.log.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def tracker_summary(summary: RunSummary) -> dict[str, Any]:
    """What the trackers get as the run's summary: its figures and peak memory, flat."""
    return {"steps": summary.steps, "train_loss": summary.train_loss, "best_metric": summary.best_metric,
            "best_step": summary.best_step, "stopped_early": summary.stopped_early, "wall_time_s": summary.wall_time,
            "tokens_per_second": summary.tokens_per_second, "trainable_params": summary.trainable_params,
            "total_params": summary.total_params, **summary.peak_memory}


def run_training(cfg: TrainConfig, *, progress: bool = True,
                 step_hooks: Sequence[Callable[[Run], Any]] = ()) -> RunSummary:
    """Train as configured and return the run's summary (``tuneforge.train`` and ``tuneforge train``)."""
    run = Run(cfg, progress=progress, step_hooks=step_hooks)
    try:
        run.setup()
        run.train()
        return run.save_outputs()
    finally:
        run.close()
