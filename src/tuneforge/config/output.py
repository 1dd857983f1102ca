"""The run directory: where, checkpoints, resuming."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .keys import config_key

# Keys that say where a run writes and where it resumes from, not what it trains: the task service sets them for
# each task (a submitted output_dir is replaced by the task's run directory), a clone never copies them, the
# console's form does not offer them and its compare page does not count them as a difference.
OUTPUT_KEYS = ("output_dir", "overwrite_output_dir")
PER_RUN_KEYS = (*OUTPUT_KEYS, "resume_from_checkpoint")


@dataclass
class OutputArgs:
    """The run directory: where, checkpoints, resuming."""

    output_dir: str = config_key(
        "runs/tuneforge-run", "Where the adapter/model, tokenizer, resolved config, metrics.jsonl and checkpoints are "
        "written.")
    overwrite_output_dir: bool = config_key(
        False, "Start over in output_dir: remove what an earlier tuneforge run wrote there. Without it an unfinished "
        "run in output_dir is resumed and a finished one refused; a directory that is not a tuneforge run is always "
        "refused (docs/reliability.md).")
    save_steps: int = config_key(
        0, "Save a resumable checkpoint every this many optimizer steps (0 = only at epoch ends; -1 = never: the run "
        "cannot be resumed, its final output and best model are still saved).", lo=-1, hi=10 ** 9)
    save_total_limit: int = config_key(2, "Checkpoints kept besides the best one.", lo=1, hi=10 ** 6)
    resume_from_checkpoint: Optional[str] = config_key(
        None, "'auto' = continue from the last complete checkpoint in output_dir (start fresh when there is none); or "
        "a checkpoint path. Unset, an unfinished run in output_dir is resumed too: rerun the same command after a "
        "crash or Ctrl-C to continue exactly where the run stopped.")
    resume_ignore_config_changes: bool = config_key(
        False, "Resume even when keys that define the run (model, lora_dim, seq_length, data, batch geometry ...) "
        "differ from the checkpoint's. The continued run is then not the same run.")
