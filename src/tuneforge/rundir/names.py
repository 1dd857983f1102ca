"""Every name in a run directory, in one place: what training writes, what the task service adds beside it.

A run directory (``output_dir``) holds, at its top level:

- the run's own files (training writes them): ``metrics.jsonl`` (one JSON record per logging event, across
  resumes), ``progress.json`` (where training is, rewritten every step), ``generations.jsonl``
  (``eval_generation_steps``' answers), ``training_curves.png``, ``trackers.json`` and the trackers' local
  stores, ``checkpoint-N/`` and ``checkpoint-best/``, and when the run finished: the model or adapter, the
  tokenizer, ``README.md`` (the model card) and ``tuneforge_config.yaml`` (written last: it marks the run
  finished);
- what comes later: ``eval/<data name>/`` (``tuneforge eval``), ``export-gguf-<dtype>/`` (``tuneforge export``);
- the task service's files: ``tuneforge_task.yaml`` (the submitted config), ``train.log``,
  ``resources.jsonl``, ``task_exit.json``, ``eval.log``, ``export.log``, ``serve.log``;
- the marker ``.tuneforge-run`` and the lock ``.tuneforge-lock`` (``rundir.ownership``).

Only this module spells these names; ``tests/unit/test_run_files_owner.py`` keeps it so.
"""
from __future__ import annotations

MARKER = ".tuneforge-run"
LOCK = ".tuneforge-lock"

# written by training
METRICS_FILE = "metrics.jsonl"
PROGRESS_FILE = "progress.json"
GENERATIONS_FILE = "generations.jsonl"
CURVES_FILE = "training_curves.png"
CONFIG_FILE = "tuneforge_config.yaml"  # written last: its presence means the run finished
MODEL_CARD = "README.md"
TRACKERS_FILE = "trackers.json"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_STORE, MLFLOW_ARTIFACTS = "mlflow.db", "mlflow-artifacts"  # MLflow's local store when no server is named
CHECKPOINT_PREFIX = "checkpoint-"  # checkpoint-N/: N is the optimizer step
BEST_DIR = "checkpoint-best"  # the best evaluated weights so far
MANIFEST = "manifest.json"  # in a checkpoint folder: written last, its hashes make the checkpoint complete
SHARDED_WEIGHTS = "model-*.safetensors"  # a full model saved in several files

# written after training
EVAL_DIR = "eval"  # eval/<data name>/: tuneforge eval's results
EXPORT_PREFIX = "export-gguf-"  # export-gguf-<dtype>/: a verified GGUF export
EXPORT_REPORT = "export_report.json"  # in an export folder: written once the export verified
EXPORT_README = "README.md"  # in an export folder: how to run the GGUF file

# written by the task service
TASK_CONFIG_FILE = "tuneforge_task.yaml"
LOG_FILE = "train.log"
RESOURCES_FILE = "resources.jsonl"
EXIT_FILE = "task_exit.json"
EVAL_LOG = "eval.log"  # a console evaluation's output
EXPORT_LOG = "export.log"
SERVE_LOG = "serve.log"

# Hugging Face's names for a saved model, adapter and tokenizer (a finished run's top level holds them).
MODEL_FILES = ("adapter_config.json", "adapter_model.safetensors", "config.json", "generation_config.json",
               "model.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt", "added_tokens.json")

# What a run writes at the top of its directory; ``overwrite_output_dir`` removes these and nothing else
# (the task service's files, e.g. train.log or resources.jsonl, stay).
RUN_FILES = (METRICS_FILE, PROGRESS_FILE, GENERATIONS_FILE, CONFIG_FILE, MODEL_CARD, CURVES_FILE, *MODEL_FILES)
# trackers.json: a fresh run starts new tracker runs (the trackers' own stores, e.g. mlflow.db, keep the old ones).
RUN_PATTERNS = (CHECKPOINT_PREFIX + "*", SHARDED_WEIGHTS, TENSORBOARD_DIR, TRACKERS_FILE)


def checkpoint_dir_name(step: int) -> str:
    """``checkpoint-N`` for optimizer step N."""
    return f"{CHECKPOINT_PREFIX}{step}"


def export_dir_name(dtype: str) -> str:
    """``export-gguf-<dtype>``: where ``tuneforge export`` writes a run's GGUF file of that type."""
    return f"{EXPORT_PREFIX}{dtype}"
