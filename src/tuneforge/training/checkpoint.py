"""Checkpoints that survive ``kill -9``, and exact resume from them.

A checkpoint is everything the loop needs to continue as if never stopped: trainable weights,
optimizer, scheduler (and fp16 loss-scaler) state, RNG states per process (dropout must replay),
the ``TrainState`` counters with the data position (the sampler is a pure function of
(seed, epoch), so (epoch, step_in_epoch) is the position), the metrics window in progress, and a
fingerprint of the keys that define the run.

Atomicity: files go to ``checkpoint-N.tmp``; ``manifest.json`` (name, size, sha256 of every file) is
written last; only then is the directory renamed to ``checkpoint-N``. A checkpoint counts only
when its manifest verifies, so a crash mid-save leaves the previous one in charge. Old ones are
deleted only after the new one is in place.

The best-model snapshot (``checkpoint-best/``) has its own manifest recording its step, and every
checkpoint carries the best weights as of its step (``best.safetensors``, a hard link when possible),
so a resumed run restores the snapshot that matches its own ``best_step`` (docs/reliability.md).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import TrainConfig
from ..data.build import data_digest
from ..errors import ConfigError
from ..outputs import load_trainable, save_trainable
from ..storage import dir_bytes, writing
from . import faults, interrupts
from .rundir import is_finished
from .batch_fit import geometry_for

PREFIX = "checkpoint-"
MANIFEST = "manifest.json"
STATE = "trainer_state.json"
WEIGHTS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
SCALER = "scaler.pt"
ENGINE = "engine"  # DeepSpeed: the engine's own sharded checkpoint (weights + optimizer, one file per process)
BEST_DIR = "checkpoint-best"
BEST_IN_CHECKPOINT = "best.safetensors"  # the best-model weights as of the checkpoint's step
FORMAT_VERSION = 1
_NAME = re.compile(r"^checkpoint-(\d+)$")

# Keys that must not change between a run and its resumption (data position, shapes, what is trained).
FINGERPRINT_KEYS = (
    "training_strategy", "model", "adapter_name_or_path", "lora_dim", "lora_target_modules", "seq_length",
    "load_in_4bit", "load_in_8bit", "packing", "group_by_length", "apply_chat_template", "system_prompt", "seed", "validation_split",
    "deepspeed",  # a ZeRO checkpoint holds per-process shards of one stage's layout
    "lora_alpha",  # scales the restored adapter: a different model
)


def rows_per_step(cfg: TrainConfig, world_size: int) -> int | str:
    """The batch geometry that defines the data position: rows per optimizer step over all processes, as the
    config requests it (``auto`` is fitted per run; its checkpoints keep the geometry that was fitted).

    Micro-batch size and accumulation may change on resume as long as this stays (e.g. after running
    out of memory): the sampler deals the same rows to each step and the loss is normalised per step.
    """
    if cfg.per_device_train_batch_size == "auto":
        return cfg.effective_batch_size or f"auto x {cfg.gradient_accumulation_steps} accumulation x {world_size}"
    return geometry_for(cfg, world_size).effective(world_size)


# ---------------------------------------------------------------------------------------------
# fingerprint


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(cfg: TrainConfig, world_size: int) -> dict[str, Any]:
    """The values that define the run, data file contents included (as hashes)."""
    fp: dict[str, Any] = {k: getattr(cfg, k) for k in FINGERPRINT_KEYS}
    fp["effective batch (rows per step)"] = rows_per_step(cfg, world_size)
    fp["world_size"] = world_size
    for key in ("train_data", "validation_data"):
        path = getattr(cfg, key)
        fp[f"{key} contents"] = data_digest(path, cfg.data_cache_dir)[:16] if path else None  # lists, shard dirs too
    return json.loads(json.dumps(fp))  # lists/tuples normalised as they will read back


def fingerprint_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(saved) | set(current))
            if saved.get(k) != current.get(k)]


def check_fingerprint(checkpoint: Path, saved: dict[str, Any], current: dict[str, Any], ignore: bool,
                      say: Callable[[str], None]) -> None:
    changes = fingerprint_changes(saved, current)
    if not changes:
        return
    listing = "; ".join(changes)
    if ignore:
        say(f"warning: resuming {checkpoint} although the run's configuration changed ({listing}) — "
            "resume_ignore_config_changes is set, the result is not the same run.")
        return
    raise ConfigError(f"resume_from_checkpoint: {checkpoint} was written by a different configuration ({listing}). "
                      "Resuming would not continue the same run: restore those settings, use a new output_dir, "
                      "or set resume_ignore_config_changes: true to resume anyway.")


# ---------------------------------------------------------------------------------------------
# finding and verifying checkpoints


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``checkpoint-N`` directories under ``directory`` (complete or not), oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def verify(path: Path) -> str | None:
    """None when ``path`` is a complete checkpoint, else why not."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return "no manifest.json (the save did not finish)"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "manifest.json is unreadable"
    files, why = _manifest_files(data, path)
    if why is not None:
        return why
    for name, meta in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != meta["size"]:
            return f"{name} is truncated or altered ({f.stat().st_size} bytes, expected {meta['size']})"
        if file_sha256(f) != meta["sha256"]:
            return f"{name} is corrupt (sha256 mismatch)"
    if path.name != BEST_DIR:
        try:
            read_state(path)
        except (OSError, ValueError, KeyError, TypeError):
            return f"{STATE} is malformed"
    return None


def _manifest_files(data: Any, path: Path) -> tuple[dict[str, dict], str | None]:
    """The manifest's file table when it has the right shape (and names what a checkpoint needs), else why not."""
    bad = "manifest.json is malformed"
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not files:
        return {}, f"{bad} (no file table)"
    for name, meta in files.items():
        parts = Path(name).parts
        if not name or Path(name).is_absolute() or ".." in parts:
            return {}, f"{bad} (file name {name[:80]!r})"
        if not (isinstance(meta, dict) and type(meta.get("size")) is int and isinstance(meta.get("sha256"), str)
                and len(meta["sha256"]) == 64):
            return {}, f"{bad} (entry for {name[:80]!r})"
    match = _NAME.match(path.name)
    if match and data.get("step") != int(match.group(1)):
        return {}, f"{bad} (it says step {str(data.get('step'))[:20]}, the directory step {match.group(1)})"
    needed = {WEIGHTS} if path.name == BEST_DIR else {STATE, SCHEDULER}
    if path.name != BEST_DIR and not any(n.startswith(ENGINE + "/") for n in files):
        needed |= {WEIGHTS, OPTIMIZER}
    missing = sorted(needed - set(files))
    if missing:
        return {}, f"{bad} (it does not list {', '.join(missing)})"
    return files, None


def latest_complete(directory: Path, say: Callable[[str], None]) -> Path | None:
    """The newest verified checkpoint; unusable ones are named and skipped. Refuses when all are unusable."""
    found = list_checkpoints(directory)
    problems = []
    for _, path in reversed(found):
        why = verify(path)
        if why is None:
            for bad in problems:
                say(f"warning: skipping {bad}")
            return path
        problems.append(f"{path.name}: {why}")
    if problems:
        raise ConfigError(f"resume_from_checkpoint: no complete checkpoint in {directory} ({'; '.join(problems)}). "
                          "Set overwrite_output_dir=true to start the run over, or give a checkpoint path.")
    return None


def resolve_resume(cfg: TrainConfig, output_dir: Path, say: Callable[[str], None]) -> Path | None:
    """The checkpoint to resume from, or None to start fresh (``auto`` with no checkpoint yet)."""
    value = cfg.resume_from_checkpoint
    if not value:
        return None
    if value == "auto":
        return latest_complete(output_dir, say)
    path = Path(value)
    if not path.is_dir():
        raise ConfigError(f"resume_from_checkpoint={value!r}: no such directory.")
    if not (path / MANIFEST).exists() and list_checkpoints(path):  # a run directory: take its newest
        found = latest_complete(path, say)
        assert found is not None
        return found
    why = verify(path)
    if why is not None:
        raise ConfigError(f"resume_from_checkpoint={value!r}: not a complete checkpoint ({why}).")
    return path


def read_state(path: Path) -> dict[str, Any]:
    """A checkpoint's ``trainer_state.json``; ValueError when it does not have the shape the loop writes."""
    state = json.loads((path / STATE).read_text(encoding="utf-8"))
    train = state.get("train_state") if isinstance(state, dict) else None
    if not isinstance(train, dict) or type(train.get("global_step")) is not int:
        raise ValueError(f"{path / STATE}: no train_state")
    if not all(v is None or type(v) in (int, float) for v in train.values()):
        raise ValueError(f"{path / STATE}: train_state holds a value that is not a number")
    return state


# ---------------------------------------------------------------------------------------------
# RNG


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _recipe_file(rank: int) -> str:
    return f"recipe_state_rank{rank}.pt"


def _rng_file(rank: int) -> str:
    return f"rng_state_rank{rank}.pt"


# ---------------------------------------------------------------------------------------------
# writing


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: Path, step: int) -> None:
    """Last file of a checkpoint: its presence and hashes are what make the checkpoint complete."""
    files = {}
    for f in sorted(directory.rglob("*")):  # nested: DeepSpeed writes its shards in subdirectories
        if f.is_file() and f.name != MANIFEST:
            _fsync(f)
            files[f.relative_to(directory).as_posix()] = {"size": f.stat().st_size, "sha256": file_sha256(f)}
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, "step": step, "files": files,
                               "written": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1), encoding="utf-8")
    _fsync(tmp)
    tmp.replace(directory / MANIFEST)


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` (same step, e.g. re-saved after resume) goes last."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    _fsync(final.parent)
    if old.exists():
        shutil.rmtree(old)


def write_best_manifest(best_dir: Path, step: int) -> None:
    """Record that ``checkpoint-best/`` holds the weights of ``step`` (hashes of its files, written last)."""
    write_manifest(best_dir, step)


def best_snapshot_step(best_dir: Path) -> int | None:
    """The step ``checkpoint-best/`` verifiably holds, or None (absent, no manifest, damaged)."""
    if verify(best_dir) is not None:
        return None
    step = json.loads((best_dir / MANIFEST).read_text(encoding="utf-8")).get("step")
    return step if type(step) is int else None


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (no extra space; the snapshot is replaced by rename, never rewritten in place), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def install_best(source: Path, best_dir: Path, step: int) -> None:
    """Make ``checkpoint-best/`` hold ``source`` (the weights of ``step``), atomically, with its manifest."""
    tmp = best_dir.with_name(best_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _link_or_copy(source, tmp / WEIGHTS)
    write_manifest(tmp, step)
    _swap_into_place(tmp, best_dir)


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
        self.engine_owned = bool(cfg.deepspeed)
        self.best_dir = output_dir / BEST_DIR
        self.recorded_best: int | None = None  # the step checkpoint-best/manifest.json was last written for
        self.last_saved: Path | None = None
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
        final = self.output_dir / f"{PREFIX}{step}"
        tmp = self.output_dir / f"{PREFIX}{step}.tmp"
        with writing(tmp, self._expected_size()):
            if acc.is_main_process:
                for stale in self.output_dir.glob(f"{PREFIX}*.tmp"):
                    shutil.rmtree(stale, ignore_errors=True)
                tmp.mkdir(parents=True)
            acc.wait_for_everyone()
            torch.save(rng_state(), tmp / _rng_file(acc.process_index))  # every process: its own dropout stream
            if hasattr(loop.recipe, "state_dict"):  # e.g. GRPO's rollouts kept for the next grpo_num_iterations
                torch.save(loop.recipe.state_dict(), tmp / _recipe_file(acc.process_index))
            if self.engine_owned:  # collective: every process writes its weight/optimizer shards
                loop.loss_module.save_checkpoint(str(tmp / ENGINE), tag=ENGINE, save_latest=False,
                                            exclude_frozen_parameters=self.cfg.method != "full")
            acc.wait_for_everyone()
            if acc.is_main_process:
                self._write_main_files(loop, tmp)
                faults.point("before_checkpoint_manifest", step)
                write_manifest(tmp, step)
                _swap_into_place(tmp, final)
                self._rotate(loop)
        acc.wait_for_everyone()
        self.last_saved = final
        return final

    def _write_main_files(self, loop: Any, tmp: Path) -> None:
        if not self.engine_owned:
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
        _link_or_copy(self.best_dir / WEIGHTS, tmp / BEST_IN_CHECKPOINT)

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
        if self.engine_owned:  # collective; frozen base weights were not saved (they come from the model load)
            loaded, _ = loop.loss_module.load_checkpoint(str(path / ENGINE), tag=ENGINE, load_optimizer_states=True,
                                                    load_lr_scheduler_states=False,
                                                    load_module_strict=self.cfg.method == "full")
            if loaded is None:
                raise ConfigError(f"resume_from_checkpoint: {path / ENGINE} could not be read by DeepSpeed.")
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
        rng_path = path / _rng_file(rank)
        if not rng_path.is_file():  # resumed on more processes than saved (override): reuse rank 0's stream
            self.say(f"warning: {path.name} has no RNG state for process {rank}; dropout will not replay exactly")
            rng_path = path / _rng_file(0)
        set_rng_state(torch.load(rng_path, weights_only=True))
        recipe_path = path / _recipe_file(rank)
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


def latest_saved(directory: Path) -> Path | None:
    """The newest checkpoint whose manifest was written (not re-hashed: for messages only)."""
    done = [p for _, p in list_checkpoints(directory) if (p / MANIFEST).is_file()]
    return done[-1] if done else None


def trim_metrics(path: Path, step: int) -> int:
    """Drop metrics records of steps after ``step`` (they are recomputed on resume); returns how many.

    Everything up to the checkpoint stays, so the log reads like one uninterrupted run; a torn last
    line (killed mid-write) is dropped too.
    """
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if isinstance(record.get("step"), int) and record["step"] > step:
            dropped += 1
            continue
        kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        tmp.replace(path)
    return dropped


@dataclasses.dataclass
class ResumePlan:
    """What a run does with its output_dir: resume ``checkpoint`` (with its ``saved`` state) or start fresh,
    removing an earlier run's files first when ``clear``."""

    checkpoint: Path | None = None
    saved: dict[str, Any] | None = None
    clear: bool = False


def plan_resume(cfg: TrainConfig, output_dir: Path, world_size: int, sharded: bool,
                say: Callable[[str], None]) -> ResumePlan:
    """Resume or start fresh (docs/reliability.md, "What a run directory is"); refuses a changed run.

    An unfinished run is resumed by default; only ``overwrite_output_dir`` starts it over.
    """
    value = cfg.resume_from_checkpoint
    if is_finished(output_dir):
        if cfg.overwrite_output_dir:
            return ResumePlan(clear=True)
        if value == "auto":
            raise ConfigError(f"output_dir={str(output_dir)!r} holds a finished run: nothing to resume. Choose another "
                              "output_dir, or set overwrite_output_dir=true (without resume_from_checkpoint) to "
                              "replace it.")
        if value is None:
            raise ConfigError(f"output_dir={str(output_dir)!r} already holds a finished run. Choose another "
                              "output_dir, or set overwrite_output_dir=true to replace it.")
    by_default = value is None
    if by_default:
        if cfg.overwrite_output_dir or not list_checkpoints(output_dir):
            if not cfg.overwrite_output_dir and (output_dir / "metrics.jsonl").is_file():
                say(f"output_dir {output_dir} holds an unfinished run without a checkpoint: starting it again from "
                    "step 0")
            return ResumePlan(clear=True)
        value = "auto"
    path = latest_complete(output_dir, say) if value == "auto" else resolve_resume(cfg, output_dir, say)
    if path is None:
        say(f"resume_from_checkpoint: auto — no checkpoint in {output_dir} yet, starting from the beginning")
        return ResumePlan(clear=True)
    if sharded:
        raise ConfigError("resume_from_checkpoint with fsdp is not supported yet (its checkpoints would hold one "
                          "process's shard); resume with DDP, DeepSpeed or a single process.")
    saved = read_state(path)
    if by_default:
        say(f"output_dir {output_dir} holds an unfinished run: resuming it from {path.name} "
            f"(set overwrite_output_dir=true to start over instead)")
    check_fingerprint(path, saved.get("fingerprint", {}), fingerprint(cfg, world_size),
                      cfg.resume_ignore_config_changes, say)
    _announce_changes(saved.get("config"), cfg, say)
    return ResumePlan(path, saved)


def _announce_changes(saved_config: Any, cfg: TrainConfig, say: Callable[[str], None]) -> None:
    """Keys that may change on resume and did: they take effect from the resumed step, and are recorded."""
    if not isinstance(saved_config, dict):
        return
    current = json.loads(json.dumps(cfg.to_dict()))
    quiet = set(FINGERPRINT_KEYS) | {"resume_from_checkpoint", "resume_ignore_config_changes", "overwrite_output_dir",
                                     # resolved into the batch geometry, which the fingerprint compares
                                     "per_device_train_batch_size", "gradient_accumulation_steps"}
    changed = [f"{k}: {saved_config[k]!r} -> {current[k]!r}" for k in current
               if k in saved_config and k not in quiet and saved_config[k] != current[k]]
    if changed:
        say("  changed since the checkpoint (in effect from the resumed step): " + "; ".join(changed))
