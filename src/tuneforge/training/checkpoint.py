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
from ..errors import ConfigError
from ..outputs import load_trainable, save_trainable

PREFIX = "checkpoint-"
MANIFEST = "manifest.json"
STATE = "trainer_state.json"
WEIGHTS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
SCALER = "scaler.pt"
ENGINE = "engine"  # DeepSpeed: the engine's own sharded checkpoint (weights + optimizer, one file per process)
FORMAT_VERSION = 1
_NAME = re.compile(r"^checkpoint-(\d+)$")

# Keys that must not change between a run and its resumption (data position, shapes, what is trained).
FINGERPRINT_KEYS = (
    "training_strategy", "model", "adapter_name_or_path", "lora_dim", "lora_target_modules", "seq_length",
    "load_in_4bit", "load_in_8bit", "packing", "group_by_length", "apply_chat_template", "system_prompt", "seed", "validation_split",
    "deepspeed",  # a ZeRO checkpoint holds per-process shards of one stage's layout
)


def rows_per_step(cfg: TrainConfig, world_size: int) -> int | str:
    """The batch geometry that defines the data position: rows per optimizer step over all processes.

    Micro-batch size and accumulation may change on resume as long as this stays (e.g. after running
    out of memory): the sampler deals the same rows to each step and the loss is normalised per step.
    """
    if cfg.effective_batch_size is not None:
        return cfg.effective_batch_size
    if cfg.per_device_train_batch_size == "auto":
        return f"auto x {cfg.gradient_accumulation_steps} accumulation x {world_size}"
    return int(cfg.per_device_train_batch_size) * cfg.gradient_accumulation_steps * world_size


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
        fp[f"{key} contents"] = file_sha256(path)[:16] if path else None
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
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "manifest.json is unreadable"
    for name, meta in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != meta["size"]:
            return f"{name} is truncated or altered ({f.stat().st_size} bytes, expected {meta['size']})"
        if file_sha256(f) != meta["sha256"]:
            return f"{name} is corrupt (sha256 mismatch)"
    return None


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
                          "Remove the damaged checkpoint directories to start over, or give a checkpoint path.")
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
    return json.loads((path / STATE).read_text(encoding="utf-8"))


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


class Checkpointer:
    """The loop's ``on_step_end`` hook: saves when due, rotates old checkpoints, restores on resume."""

    def __init__(self, cfg: TrainConfig, output_dir: Path, fingerprint: dict[str, Any],
                 say: Callable[[str], None] = print):
        self.cfg, self.output_dir, self.fingerprint, self.say = cfg, output_dir, fingerprint, say
        # Under FSDP each process holds a slice of the weights and optimizer state: saving rank 0's slice would
        # restore the wrong model, and FSDP cannot run on CPU to test a sharded save, so none is written there.
        # DeepSpeed writes its own per-process shards (``engine/``), which is what resume reads back.
        self.enabled = not getattr(cfg, "fsdp", None)
        self.engine_owned = bool(getattr(cfg, "deepspeed", None))
        if not self.enabled and (cfg.save_steps > 0 or cfg.resume_from_checkpoint):
            say("warning: resumable checkpoints are not written with fsdp yet; save_steps is ignored "
                "(deepspeed: zero2/zero3 writes them)")

    def __call__(self, loop: Any) -> None:
        if self.enabled and self.due(loop):
            self.save(loop)

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
            "window": dict(getattr(loop, "window", {})),
            "window_grad": list(getattr(loop, "window_grad", [])),
            "geometry": {"per_device_train_batch_size": loop.geometry.batch_size,
                         "gradient_accumulation_steps": loop.geometry.accumulation,
                         "world_size": loop.geometry.world_size},
            "fingerprint": self.fingerprint,
            "total_steps": loop.total_steps,
        }

    def save(self, loop: Any) -> Path:
        acc = loop.accelerator
        step = loop.state.global_step
        final = self.output_dir / f"{PREFIX}{step}"
        tmp = self.output_dir / f"{PREFIX}{step}.tmp"
        if acc.is_main_process:
            for stale in self.output_dir.glob(f"{PREFIX}*.tmp"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        torch.save(rng_state(), tmp / _rng_file(acc.process_index))  # every process: its own dropout stream
        if self.engine_owned:  # collective: every process writes its weight/optimizer shards
            loop.module.save_checkpoint(str(tmp / ENGINE), tag=ENGINE, save_latest=False,
                                        exclude_frozen_parameters=self.cfg.method != "full")
        acc.wait_for_everyone()
        if acc.is_main_process:
            if not self.engine_owned:
                save_trainable(loop.model, tmp / WEIGHTS)
                torch.save(loop.optimizer.state_dict(), tmp / OPTIMIZER)
            torch.save(loop.scheduler.state_dict(), tmp / SCHEDULER)
            if getattr(acc, "scaler", None) is not None:
                torch.save(acc.scaler.state_dict(), tmp / SCALER)
            (tmp / STATE).write_text(json.dumps(self._state(loop), indent=1), encoding="utf-8")
            write_manifest(tmp, step)
            _swap_into_place(tmp, final)
            self._rotate(loop)
        acc.wait_for_everyone()
        return final

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
        """Put ``loop`` back in the state saved at ``path``: the next step is the one after it."""
        saved = read_state(path)
        if self.engine_owned:  # collective; frozen base weights were not saved (they come from the model load)
            loaded, _ = loop.module.load_checkpoint(str(path / ENGINE), tag=ENGINE, load_optimizer_states=True,
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
        scaler = getattr(loop.accelerator, "scaler", None)
        if scaler is not None and (path / SCALER).is_file():
            scaler.load_state_dict(torch.load(path / SCALER, weights_only=True))
        for key, value in saved["train_state"].items():
            if hasattr(loop.state, key):
                setattr(loop.state, key, value)
        if hasattr(loop, "window"):
            loop.window = dict(saved.get("window", {}))
            loop.window_grad = list(saved.get("window_grad", []))
        rank = loop.accelerator.process_index
        rng_path = path / _rng_file(rank)
        if not rng_path.is_file():  # resumed on more processes than saved (override): reuse rank 0's stream
            self.say(f"warning: {path.name} has no RNG state for process {rank}; dropout will not replay exactly")
            rng_path = path / _rng_file(0)
        set_rng_state(torch.load(rng_path, weights_only=True))
        return saved


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
    tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
    tmp.replace(path)
    return dropped


def resume_point(cfg: TrainConfig, output_dir: Path, world_size: int, sharded: bool,
                 say: Callable[[str], None]) -> tuple[Path | None, dict[str, Any] | None]:
    """(checkpoint, its saved state) to continue from, or (None, None) to start fresh; refuses a changed run."""
    from ..outputs import CONFIG_FILE

    if not cfg.resume_from_checkpoint:
        return None, None
    if cfg.resume_from_checkpoint == "auto" and (output_dir / CONFIG_FILE).is_file():
        if cfg.overwrite_output_dir:
            return None, None
        raise ConfigError(f"output_dir={str(output_dir)!r} holds a finished run: nothing to resume. Choose another "
                          "output_dir, or set overwrite_output_dir=true (without resume_from_checkpoint) to replace it.")
    path = resolve_resume(cfg, output_dir, say)
    if path is None:
        say(f"resume_from_checkpoint: auto — no checkpoint in {output_dir} yet, starting from the beginning")
        return None, None
    if sharded:
        raise ConfigError("resume_from_checkpoint with fsdp is not supported yet (its checkpoints would hold one "
                          "process's shard); resume with DDP, DeepSpeed or a single process.")
    saved = read_state(path)
    check_fingerprint(path, saved.get("fingerprint", {}), fingerprint(cfg, world_size),
                      cfg.resume_ignore_config_changes, say)
    return path, saved
