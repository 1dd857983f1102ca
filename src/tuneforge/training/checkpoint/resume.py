"""Resume planning: resume or start fresh, from which checkpoint, and refusing a run whose configuration changed.

The fingerprint holds the keys that must not change between a run and its resumption (the data position,
shapes, what is trained), with the data files' contents as hashes.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from ...config import TrainConfig
from ...data.build import data_digest
from ...errors import ConfigError
from ...rundir import MANIFEST, METRICS_FILE, is_finished, list_checkpoints
from ..batch_fit import geometry_for
from .manifest import latest_complete, read_state, verify

FINGERPRINT_KEYS = (
    "training_strategy", "model", "adapter_name_or_path", "lora_dim", "lora_target_modules", "seq_length",
    "load_in_4bit", "load_in_8bit", "packing", "group_by_length", "apply_chat_template", "system_prompt", "seed",
    "validation_split",
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
            if not cfg.overwrite_output_dir and (output_dir / METRICS_FILE).is_file():
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
