"""``eval_after_training: true``: generation metrics on the run's validation set once the run is saved.

Called by the command layer (``tuneforge train`` and ``tuneforge.train``), never by the engine. The finished
run is loaded from its output directory exactly as ``tuneforge eval RUN`` loads it, its validation rows are
the ones training held out, and the results (the same two files as ``tuneforge eval``) go to
``output_dir/eval/validation/`` beside ``metrics.jsonl`` (``validation-2`` ... when that exists already).
Training has logged the teacher-forced metrics itself, so only generation runs here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..config import TrainConfig
from ..errors import TuneforgeError
from . import data as eval_data
from .loading import open_eval_model
from .metrics import GENERATION_METRICS
from .results import RESULTS_FILE, default_output, write_results

VALIDATION_NAME = "validation"


def _described(cfg: TrainConfig) -> dict:
    if cfg.validation_data:
        return {"path": str(Path(cfg.validation_data).resolve()), "name": VALIDATION_NAME,
                "format": "preference" if cfg.training_strategy == "dpo" else "sft"}
    return {"path": f"{cfg.train_data} (validation_split={cfg.validation_split}, seed={cfg.seed})",
            "name": VALIDATION_NAME, "format": "preference" if cfg.training_strategy == "dpo" else "sft"}


def evaluate_after_training(cfg: TrainConfig, *, max_new_tokens: int = 256,
                            say: Callable[[str], None] = print) -> Path | None:
    """Score greedy answers to the validation rows of the run in ``cfg.output_dir``; the results directory,
    or None when nothing was evaluated (the key is off, or the run has no validation set). A user-level
    error (e.g. a model that cannot generate) is reported and does not undo the finished run."""
    if not cfg.eval_after_training:
        return None
    from .run import EvalOptions, Plan, Prepared, evaluate_prepared

    try:
        # The config is the user's own (not a saved run config): its trust settings are the user's word.
        model = open_eval_model(cfg.output_dir, trust_remote_code=cfg.trust_remote_code,
                                allow_pickle_weights=cfg.allow_pickle_weights)
        items = eval_data.run_validation_items(cfg, model.tokenizer)
        if not items:
            say("eval_after_training: the run has no validation set (validation_data or validation_split); "
                "nothing evaluated")
            return None
        say(f"eval_after_training: answering {len(items)} validation rows "
            f"(greedy, at most {max_new_tokens} new tokens)")
        prep = Prepared(cfg.training_strategy, cfg, None, items, _described(cfg))
        opts = EvalOptions(model=cfg.output_dir, max_new_tokens=max_new_tokens)
        outcome = evaluate_prepared(model, prep, Plan(False, GENERATION_METRICS), opts)
        target = write_results(default_output(Path(cfg.output_dir), VALIDATION_NAME), outcome.results,
                               outcome.predictions)
    except TuneforgeError as err:
        say(f"eval_after_training: not done: {err}")
        return None
    say(outcome.table)
    say(f"eval_after_training: results in {target / RESULTS_FILE}")
    return target
