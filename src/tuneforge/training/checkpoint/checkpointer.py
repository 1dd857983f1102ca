"""The loop's checkpointer: records the best snapshot, saves when due (or when a signal asks the run to stop),
rotates old checkpoints, and restores the loop from one on resume."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from ...config import TrainConfig
from ...errors import ConfigError
from ...rundir import BEST_DIR, CHECKPOINT_PREFIX, MANIFEST, checkpoint_dir_name, latest_saved, list_checkpoints
from ...run_outputs import load_trainable, save_trainable
from ...storage import dir_bytes, writing
from .. import faults, interrupts
from .manifest import DEEPSPEED_DIR, FORMAT_VERSION, OPTIMIZER, SCALER, SCHEDULER, STATE, WEIGHTS, read_state, \
    swap_into_place, write_manifest
from .rng import recipe_file, rng_file, rng_state, set_rng_state
from .snapshot import BEST_IN_CHECKPOINT, best_snapshot_step, install_best, link_or_copy, write_best_manifest


class Checkpointer:
    """The loop's ``on_step_end`` hook: records the best snapshot, saves when due (or when a signal asked the
    run to stop), rotates old checkpoints, restores on resume."""

    def __init__(self, cfg: TrainConfig, output_dir: Path, fingerprint: dict[str, Any],
                 say: Callable[[str], None] = print):
        self.cfg, self.output_dir, self.fingerprint, self.say = cfg, output_dir, fingerprint, say
        # Under FSDP each process holds a slice of the weights and optimizer state: saving rank 0's slice would
        # restore the wrong model, and FSDP cannot run on CPU to test a sharded save, so none is written there.
        # DeepSpeed writes its own per-process shards (``engine/``), which is what resume reads back.
        self.enabled = not cfg.fsdp
        self.deepspeed_owned = bool(cfg.deepspeed)
        self.best_dir = output_dir / BEST_DIR
        self.recorded_best: int | None = None  # the step checkpoint-best/manifest.json was last written for
        if not self.enabled and (cfg.save_steps > 0 or cfg.resume_from_checkpoint):
            say("warning: resumable checkpoints are not written with fsdp yet; save_steps is ignored "
                "(deepspeed: zero2/zero3 writes them)")

    def __call__(self, loop: Any) -> None:
        best = loop.state.best_step
        if loop.accelerator.is_main_process and best is not None and best != self.recorded_best \
                and (self.best_dir / WEIGHTS).is_file():
            # The loop has written a new best snapshot since the last step; its manifest says which step it holds.
            with writing(self.best_dir, dir_bytes(self.best_dir)):
                write_best_manifest(self.best_dir, best)
            self.recorded_best = best
        faults.point("after_best_snapshot", loop.state.global_step)
        stop = interrupts.requested()
        if self.enabled and (self.due(loop) or (stop is not None and self.cfg.save_steps >= 0)):
            self.save(loop)
        if stop is not None:
            raise interrupts.RunInterrupted(stop, self.stop_message(loop, stop))

    def stop_message(self, loop: Any, signum: int) -> str:
        """Where the run stopped and how to continue it."""
        what = "interrupted" if signum == interrupts.signal.SIGINT else "terminated"
        last = latest_saved(self.output_dir)
        if last is None:
            return (f"{what} at step {loop.state.global_step}; no checkpoint was saved (save_steps: -1), so the run "
                    "cannot be resumed: rerun with overwrite_output_dir=true to start over.")
        return (f"{what} at step {loop.state.global_step}; the last checkpoint is {last.name}. Run the same command "
                "again to resume from it (overwrite_output_dir=true starts over instead).")

    def due(self, loop: Any) -> bool:
        if self.cfg.save_steps < 0:
            return False
        step = loop.state.global_step
        every = self.cfg.save_steps > 0 and step % self.cfg.save_steps == 0
        epoch_end = loop.state.step_in_epoch >= loop.steps_per_epoch
        return every or epoch_end

    # -- save ----------------------------------------------------------------------------------
    def _state(self, loop: Any) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "train_state": dataclasses.asdict(loop.state),
            "window": dict(loop.window),
            "window_grad": list(loop.window_grad),
            "geometry": {"per_device_train_batch_size": loop.geometry.per_device,
                         "gradient_accumulation_steps": loop.geometry.accumulation,
                         "world_size": loop.accelerator.num_processes},
            "fingerprint": self.fingerprint,
            "config": json.loads(json.dumps(self.cfg.to_dict())),
            "total_steps": loop.total_steps,
        }

    def save(self, loop: Any) -> Path:
        acc = loop.accelerator
        step = loop.state.global_step
        final = self.output_dir / checkpoint_dir_name(step)
        tmp = final.with_name(final.name + ".tmp")
        with writing(tmp, self._expected_size()):
            if acc.is_main_process:
                for stale in self.output_dir.glob(CHECKPOINT_PREFIX + "*.tmp"):
                    shutil.rmtree(stale, ignore_errors=True)
                tmp.mkdir(parents=True)
            acc.wait_for_everyone()
            torch.save(rng_state(), tmp / rng_file(acc.process_index))  # every process: its own dropout stream
            if hasattr(loop.recipe, "state_dict"):  # e.g. GRPO's rollouts kept for the next grpo_num_iterations
                torch.save(loop.recipe.state_dict(), tmp / recipe_file(acc.process_index))
            if self.deepspeed_owned:  # collective: every process writes its weight/optimizer shards
                loop.loss_module.save_checkpoint(str(tmp / DEEPSPEED_DIR), tag=DEEPSPEED_DIR, save_latest=False,
                                                 exclude_frozen_parameters=self.cfg.method != "full")
            acc.wait_for_everyone()
            if acc.is_main_process:
                self._write_main_files(loop, tmp)
                faults.point("before_checkpoint_manifest", step)
                write_manifest(tmp, step)
                swap_into_place(tmp, final)
                self._rotate(loop)
        acc.wait_for_everyone()
        return final

    def _write_main_files(self, loop: Any, tmp: Path) -> None:
        if not self.deepspeed_owned:
            save_trainable(loop.model, tmp / WEIGHTS)
            torch.save(loop.optimizer.state_dict(), tmp / OPTIMIZER)
        torch.save(loop.scheduler.state_dict(), tmp / SCHEDULER)
        if getattr(loop.accelerator, "scaler", None) is not None:
            torch.save(loop.accelerator.scaler.state_dict(), tmp / SCALER)
        self._carry_best(loop, tmp)
        (tmp / STATE).write_text(json.dumps(self._state(loop), indent=1), encoding="utf-8")

    def _carry_best(self, loop: Any, tmp: Path) -> None:
        """The best weights as of this step go into the checkpoint, so a resume restores the matching snapshot."""
        best = loop.state.best_step
        if best is None:
            return
        if best_snapshot_step(self.best_dir) != best:
            self.say(f"warning: {BEST_DIR}/ does not verifiably hold step {best}'s weights; "
                     f"{tmp.name.removesuffix('.tmp')} is saved without the best model")
            return
        link_or_copy(self.best_dir / WEIGHTS, tmp / BEST_IN_CHECKPOINT)

    def _expected_size(self) -> int | None:
        """Roughly what the next checkpoint needs on disk: the size of the last one."""
        found = [p for _, p in list_checkpoints(self.output_dir)]
        return dir_bytes(found[-1]) if found else None

    def _rotate(self, loop: Any) -> None:
        """Keep the newest ``save_total_limit`` complete checkpoints plus the one at the best step."""
        complete = [(s, p) for s, p in list_checkpoints(self.output_dir) if (p / MANIFEST).is_file()]
        keep = {p for _, p in complete[-self.cfg.save_total_limit:]}
        keep |= {p for s, p in complete if s == loop.state.best_step}
        for _, p in complete:
            if p not in keep:
                shutil.rmtree(p, ignore_errors=True)

    # -- restore -------------------------------------------------------------------------------
    def restore(self, loop: Any, path: Path) -> dict[str, Any]:
        """Put ``loop`` back in the state saved at ``path``: the next step is the one after it.

        The optimizer and schedule hyperparameters of this run's config apply from here on (a changed
        learning rate takes effect), so the recorded config is what runs.
        """
        saved = read_state(path)
        fresh_hyper = _hyperparameters(loop.optimizer)
        if self.deepspeed_owned:  # collective; frozen base weights were not saved (they come from the model load)
            loaded, _ = loop.loss_module.load_checkpoint(str(path / DEEPSPEED_DIR), tag=DEEPSPEED_DIR,
                                                         load_optimizer_states=True, load_lr_scheduler_states=False,
                                                         load_module_strict=self.cfg.method == "full")
            if loaded is None:
                raise ConfigError(f"resume_from_checkpoint: {path / DEEPSPEED_DIR} could not be read by DeepSpeed.")
        else:
            load_trainable(loop.model, path / WEIGHTS)
            device = loop.accelerator.device
            if device.type == "cpu":  # accelerate's multi-process CPU device is 'cpu:0', which torch.load rejects
                device = torch.device("cpu")
            loop.optimizer.load_state_dict(torch.load(path / OPTIMIZER, map_location=device, weights_only=True))
        loop.scheduler.load_state_dict(torch.load(path / SCHEDULER, weights_only=True))
        _apply_hyperparameters(loop.optimizer, loop.scheduler, fresh_hyper)
        scaler = getattr(loop.accelerator, "scaler", None)
        if scaler is not None and (path / SCALER).is_file():
            scaler.load_state_dict(torch.load(path / SCALER, weights_only=True))
        for key, value in saved["train_state"].items():
            if hasattr(loop.state, key):
                setattr(loop.state, key, value)
        loop.window = dict(saved.get("window", {}))
        loop.window_grad = list(saved.get("window_grad", []))
        self._restore_best(loop, path)
        rank = loop.accelerator.process_index
        rng_path = path / rng_file(rank)
        if not rng_path.is_file():  # resumed on more processes than saved (override): reuse rank 0's stream
            self.say(f"warning: {path.name} has no RNG state for process {rank}; dropout will not replay exactly")
            rng_path = path / rng_file(0)
        set_rng_state(torch.load(rng_path, weights_only=True))
        recipe_path = path / recipe_file(rank)
        if hasattr(loop.recipe, "load_state_dict") and recipe_path.is_file():
            loop.recipe.load_state_dict(torch.load(recipe_path, weights_only=True))
        return saved

    def _restore_best(self, loop: Any, path: Path) -> None:
        """``checkpoint-best/`` made to hold the best weights this checkpoint knows (a later snapshot written
        after it, by the run that was killed, is not this run's best)."""
        best = loop.state.best_step
        if best is None or not loop.accelerator.is_main_process:
            return
        carried = path / BEST_IN_CHECKPOINT
        if carried.is_file():
            with writing(self.best_dir, carried.stat().st_size):
                install_best(carried, self.best_dir, best)
            self.recorded_best = best
            return
        self.say(f"warning: {path.name} holds no copy of the best model (step {best}); the best is tracked "
                 "again from the evaluations after the resume")
        loop.state.best_step = loop.state.best_metric = None
        loop.state.evals_without_improvement = 0


_HYPER_KEYS = ("lr", "initial_lr", "betas", "weight_decay")


def _hyperparameters(optimizer: Any) -> list[dict[str, Any]]:
    return [{k: g[k] for k in _HYPER_KEYS if k in g} for g in optimizer.param_groups]


def _apply_hyperparameters(optimizer: Any, scheduler: Any, fresh: list[dict[str, Any]]) -> None:
    """Put this run's configured hyperparameters back after loading a checkpoint's optimizer/scheduler state
    (which carries the old run's), and recompute the current learning rate from the restored step."""
    groups = optimizer.param_groups
    if len(groups) != len(fresh):
        return
    base_lrs = [h.get("initial_lr", h.get("lr")) for h in fresh]
    for group, hyper, base in zip(groups, fresh, base_lrs):
        for key in ("betas", "weight_decay"):
            if key in hyper:
                group[key] = hyper[key]
        if "initial_lr" in group and base is not None:
            group["initial_lr"] = base
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas is None or None in base_lrs:
        return
    scheduler.base_lrs = list(base_lrs)
    for group, base, fn in zip(groups, base_lrs, lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [g["lr"] for g in groups]
