"""Checkpoints that survive ``kill -9``, and exact resume from them.

A checkpoint is everything the loop needs to continue as if never stopped: trainable weights,
optimizer, scheduler (and fp16 loss-scaler) state, RNG states per process (dropout must replay),
the ``TrainState`` counters with the data position (the sampler is a pure function of
(seed, epoch), so (epoch, step_in_epoch) is the position), the metrics window in progress, and a
fingerprint of the keys that define the run.

By concern:

- ``manifest``: a checkpoint folder's files, written under ``checkpoint-N.tmp`` with ``manifest.json`` (name,
  size, sha256 of every file) last, then renamed into place; ``verify``, ``latest_complete``, ``read_state``.
  A crash mid-save leaves the previous checkpoint in charge; old ones are deleted only after the new one is in
  place.
- ``rng``: the random generators' state per process.
- ``snapshot``: the best-model snapshot (``checkpoint-best/``, with its own manifest recording its step); every
  checkpoint carries the best weights as of its step (``best.safetensors``), so a resumed run restores the
  snapshot that matches its own ``best_step`` (docs/reliability.md).
- ``resume``: the plan (resume which checkpoint, or start fresh), the fingerprint and the refusal of a changed run.
- ``checkpointer``: the loop's ``on_step_end`` hook that saves, rotates and restores.

Which ``checkpoint-N`` folders exist, and dropping the metrics records a resume recomputes (``trim_metrics``),
belong to the run directory's owner, ``tuneforge.rundir``.
"""
from __future__ import annotations

from ...rundir import BEST_DIR, MANIFEST, latest_saved, list_checkpoints
from .checkpointer import Checkpointer
from .manifest import (DEEPSPEED_DIR, FORMAT_VERSION, OPTIMIZER, SCALER, SCHEDULER, STATE, WEIGHTS, file_sha256,
                       latest_complete, read_state, verify, write_manifest)
from .resume import (FINGERPRINT_KEYS, ResumePlan, check_fingerprint, fingerprint, fingerprint_changes, plan_resume,
                     resolve_resume, rows_per_step)
from .rng import rng_state, set_rng_state
from .snapshot import BEST_IN_CHECKPOINT, best_snapshot_step, install_best, write_best_manifest

__all__ = ["BEST_DIR", "MANIFEST", "latest_saved", "list_checkpoints", "Checkpointer", "DEEPSPEED_DIR",
           "FORMAT_VERSION", "OPTIMIZER", "SCALER", "SCHEDULER", "STATE", "WEIGHTS", "file_sha256", "latest_complete",
           "read_state", "verify", "write_manifest", "FINGERPRINT_KEYS", "ResumePlan", "check_fingerprint",
           "fingerprint", "fingerprint_changes", "plan_resume", "resolve_resume", "rows_per_step", "rng_state",
           "set_rng_state", "BEST_IN_CHECKPOINT", "best_snapshot_step", "install_best", "write_best_manifest"]
