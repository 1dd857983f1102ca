"""``tuneforge eval``: teacher-forced, preference and generation metrics of a run (and of its base), or
the scores of a predictions file; results computed in full before anything is written."""
from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError
from . import data as eval_data
from .generate import greedy_answers
from .loading import EvalModel, eval_config, open_eval_model
from .metrics import BLEU_TOKENIZERS, GENERATION_METRICS, ROUGE_TOKENIZERS, score_corpus
from .peer_metrics import PEER_METRICS, check_available
from .preference import preference_metrics, reference_logps
from .results import check_output, default_output, render_table, write_results
from .teacher import sft_metrics

METRIC_GROUPS = {"loss": (), "generation": GENERATION_METRICS, "peer": PEER_METRICS}
VERSIONED = ("torch", "transformers", "peft", "accelerate", "sacrebleu", "jieba", "lm_eval")


@dataclass
class EvalOptions:
    """Everything ``tuneforge eval`` takes (the CLI fills it; tests and the after-training hook too)."""

    model: str | None = None
    data: str | None = None
    adapter: str | None = None
    metrics: list[str] | None = None  # None: every metric that applies to the data
    max_new_tokens: int = 256
    batch_size: int | None = None  # None: the run's per_device_train_batch_size
    seq_length: int | None = None  # None: the run's seq_length
    compare_base: bool = False
    output: str | None = None
    predictions: str | None = None
    rouge_tokenizer: str = "char"
    bleu_tokenize: str = "auto"
    device: str | None = None
    dtype: str = "auto"
    trust_remote_code: bool = False  # the user's own word (a flag), never a run directory's saved config
    allow_pickle_weights: bool = False
    lm_eval_tasks: list[str] = field(default_factory=list)
    lm_eval_include: str | None = None
    lm_eval_limit: int | None = None
    compare: str | None = None  # a second run whose answers the judge compares with RUN's
    judge: str | None = None  # an OpenAI-compatible endpoint (..../v1) that judges the answers
    judge_model: str | None = None
    judge_api_key_env: str | None = None
    judge_template: str | None = None
    judge_concurrency: int = 4
    judge_mode: str = "both"
    judge_cache: str | None = None
    judge_retries: int = 5
    judge_max_tokens: int = 1024
    reward_functions: list[str] | None = None  # a GRPO run's scorers (the user's flag, never the run's saved config)


@dataclass
class Plan:
    """Which metric families run: teacher-forced (loss / preference) and which generation metrics."""

    teacher: bool
    generation: tuple[str, ...]


@dataclass
class Outcome:
    results: dict[str, Any]
    predictions: list[dict[str, Any]]
    output_dir: Path | None = None

    @property
    def table(self) -> str:
        return render_table(self.results["metrics"], self.results.get("delta"))


def plan_metrics(names: list[str] | None) -> Plan:
    """``--metrics``: 'loss', 'generation', or single generation metrics (exact_match, bleu, rouge_l, chrf)."""
    if not names:
        return Plan(True, GENERATION_METRICS)
    unknown = [n for n in names if n not in METRIC_GROUPS and n not in GENERATION_METRICS + PEER_METRICS]
    if unknown:
        raise ConfigError(f"--metrics: unknown {unknown}; expected loss, generation, peer or any of "
                          f"{', '.join(GENERATION_METRICS + PEER_METRICS)}.")
    generation = [m for m in GENERATION_METRICS if m in names or "generation" in names]
    peer = [m for m in PEER_METRICS if m in names or "peer" in names]  # LLaMA-Factory's definitions, opt-in
    check_available(peer)
    return Plan("loss" in names, tuple(generation + peer))


def check_options(opts: EvalOptions) -> Plan:
    """Every option checked before a file is read or a model loads."""
    if opts.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens={opts.max_new_tokens}: must be >= 1.")
    if opts.batch_size is not None and opts.batch_size < 1:
        raise ConfigError(f"--batch-size={opts.batch_size}: must be >= 1.")
    if opts.seq_length is not None and opts.seq_length < 8:
        raise ConfigError(f"--seq-length={opts.seq_length}: must be >= 8.")
    if opts.rouge_tokenizer not in ROUGE_TOKENIZERS:
        raise ConfigError(f"--rouge-tokenizer={opts.rouge_tokenizer!r}: expected one of {', '.join(ROUGE_TOKENIZERS)}.")
    if opts.bleu_tokenize not in BLEU_TOKENIZERS:
        raise ConfigError(f"--bleu-tokenize={opts.bleu_tokenize!r}: expected one of {', '.join(BLEU_TOKENIZERS)}.")
    if opts.predictions:
        if opts.model or opts.data or opts.compare_base or opts.lm_eval_tasks:
            raise ConfigError("--predictions FILE scores an existing file: give no model, --data, --compare-base "
                              "or --lm-eval-tasks.")
    elif not opts.model:
        raise ConfigError("give a run directory or model to evaluate (or --predictions FILE).")
    elif not opts.data and not opts.lm_eval_tasks:
        raise ConfigError("--data FILE is needed (rows in any training format), or --lm-eval-tasks.")
    if opts.output:
        check_output(Path(opts.output))
    plan = plan_metrics(opts.metrics)
    from .judged import check_judged_options

    check_judged_options(opts, plan)
    return plan


def versions() -> dict[str, str]:
    from .. import __version__

    found = {"tuneforge": __version__, "python": platform.python_version()}
    for name in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name.replace("_", "-"))
    return found


def data_name(path: str) -> str:
    return Path(path).stem or "data"


def delta_of(metrics: dict[str, dict[str, float]]) -> dict[str, float] | None:
    tuned, base = metrics.get("tuned"), metrics.get("base")
    if tuned is None or base is None:
        return None
    return {k: tuned[k] - base[k] for k in tuned if isinstance(base.get(k), (int, float))}


# ---------------------------------------------------------------------------------------------
# a model on a data file


@dataclass
class Prepared:
    """The encoded data file and what generation needs from it."""

    strategy: str
    cfg: Any
    data: Any
    items: list[eval_data.GenerationItem]
    described: dict[str, Any]  # results' "data": path, name, format
    reference: Any = None
    reference_text: str | None = None


def prepare_data(model: EvalModel, opts: EvalOptions, plan: Plan) -> Prepared:
    strategy = eval_data.file_strategy(opts.data)
    cfg = eval_config(model.settings, opts.data, strategy, batch_size=opts.batch_size, seq_length=opts.seq_length)
    data = eval_data.encode_file(cfg, model.tokenizer)
    items = eval_data.generation_items(data.validation, strategy) if plan.generation else []
    described = {"path": str(Path(opts.data).resolve()), "name": data_name(opts.data),
                 "format": "preference" if strategy == "dpo" else "sft"}
    return Prepared(strategy, cfg, data, items, described)


def _variants(model: EvalModel, compare_base: bool) -> Iterator[tuple[str, Any]]:
    yield "tuned", contextlib.nullcontext(model.load_weights())
    if compare_base:
        yield "base", model.base_model()


def measure(model: EvalModel, weights: Any, prep: Prepared, plan: Plan, opts: EvalOptions) -> tuple[dict, list[str]]:
    """(teacher-forced/preference metrics, greedy answers) of one set of weights."""
    metrics: dict[str, float] = {}
    cfg = prep.cfg
    if plan.teacher:
        module = model.loss_module(weights)
        if prep.strategy == "sft":
            metrics.update(sft_metrics(cfg, prep.data, model, module))
        else:
            found = preference_metrics(prep.data, module, model, cfg, prep.reference)
            metrics.update({("dpo_loss" if k == "loss" else k): v for k, v in found.items()})
    batch = cfg.per_device_train_batch_size if isinstance(cfg.per_device_train_batch_size, int) else 8
    answers = greedy_answers(model, weights, prep.items, max_new_tokens=opts.max_new_tokens,
                             batch_size=batch) if plan.generation else []
    return metrics, answers


def _prediction_rows(prep: Prepared, answers: dict[str, list[str]], per_row: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for i, item in enumerate(prep.items):
        user = next((m.content for m in reversed(item.prompt) if m.role == "user"), "")
        row = {"source": item.source, "prompt": user,
               "messages": [{"role": m.role, "content": m.content} for m in item.prompt],
               "reference": item.reference}
        for variant, texts in answers.items():
            prefix = "" if variant == "tuned" else f"{variant}_"
            row[prefix + "prediction"] = texts[i]
            row[prefix + "scores"] = per_row[variant][i]
        rows.append(row)
    return rows


def _settings(model: EvalModel, prep: Prepared, opts: EvalOptions) -> dict[str, Any]:
    cfg = prep.cfg
    out = {"decoding": "greedy", "max_new_tokens": opts.max_new_tokens, "batch_size": cfg.per_device_train_batch_size,
           "seq_length": cfg.seq_length, "apply_chat_template": cfg.apply_chat_template,
           "system_prompt": cfg.system_prompt, "device": str(model.device),
           "dtype": str(model.dtype).replace("torch.", ""),
           "mixed_precision": model.mixed_precision,
           "rouge_tokenizer": opts.rouge_tokenizer, "bleu_tokenize": opts.bleu_tokenize}
    if prep.strategy == "dpo":
        out.update(dpo_loss_type=cfg.dpo_loss_type, dpo_beta=cfg.dpo_beta, reference=prep.reference_text)
    return out


def _teacher_info(prep: Prepared) -> dict[str, dict[str, str]]:
    how = "tuneforge training evaluation (TrainingLoop.evaluate, {} recipe)"
    if prep.strategy == "sft":
        return {name: {"implementation": how.format("SFT"), "tokenizer": "the model's own", "scale": scale}
                for name, scale in (("eval_loss", "mean cross-entropy per trained token"),
                                    ("perplexity", "exp(eval_loss)"),
                                    ("token_accuracy", "0-1"))}
    return {"dpo_loss": {"implementation": how.format(f"DPO ({prep.cfg.dpo_loss_type})"),
                         "tokenizer": "the model's own", "scale": "mean per pair",
                         "reference": prep.reference_text or ""}}


def _counts(prep: Prepared, answers: dict[str, list[str]]) -> dict[str, Any]:
    counts: dict[str, Any] = {"generated": len(prep.items),
                              "empty_predictions": {v: sum(1 for a in texts if not a.strip())
                                                    for v, texts in answers.items()}}
    if prep.data is not None:
        split = prep.data.validation
        counts.update(rows=len(split), truncated=split.truncated, dropped=dict(prep.data.report.dropped))
    else:
        counts["rows"] = len(prep.items)
    return counts


def evaluate_prepared(model: EvalModel, prep: Prepared, plan: Plan, opts: EvalOptions) -> Outcome:
    """Measure the tuned weights (and the base with ``compare_base``), score the answers, assemble the results."""
    metrics, answers, per_row, info = {}, {}, {}, dict(_teacher_info(prep) if plan.teacher else {})
    for variant, weights_context in _variants(model, opts.compare_base):
        with weights_context as weights:
            metrics[variant], answers[variant] = measure(model, weights, prep, plan, opts)
        del weights, weights_context  # a full run's tuned weights are released before its base loads
        if plan.generation:
            scores = score_corpus(answers[variant], [it.reference for it in prep.items], plan.generation,
                                  rouge_tokenizer=opts.rouge_tokenizer, bleu_tokenize=opts.bleu_tokenize)
            metrics[variant].update(scores.summary)
            per_row[variant] = scores.per_row
            info.update({k: v.to_dict() for k, v in scores.info.items()})
    results = {
        "tuneforge_eval": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": model.describe(),
        "data": prep.described, "counts": _counts(prep, answers), "settings": _settings(model, prep, opts),
        "metrics": metrics, "delta": delta_of(metrics), "metric_info": info, "versions": versions()}
    return Outcome(results, _prediction_rows(prep, answers, per_row) if plan.generation else [])


def evaluate_model(opts: EvalOptions, plan: Plan) -> Outcome:
    from .grpo_eval import evaluate_grpo_run, grpo_run_settings
    from .reward_eval import evaluate_reward_run, reward_run_settings

    if grpo_run_settings(opts.model, opts.adapter) is not None:  # a policy trained on rewards: score its answers
        return Outcome({**evaluate_grpo_run(opts), "versions": versions()}, [])

    reward = reward_run_settings(opts.model, opts.adapter)
    if reward is not None:  # a reward model scores sequences: preference accuracy, no generation
        results = evaluate_reward_run(opts.model, opts.data, reward, batch_size=opts.batch_size,
                                      seq_length=opts.seq_length, device=opts.device)
        return Outcome({**results, "versions": versions()}, [])
    model = open_eval_model(opts.model, opts.adapter, device=opts.device, dtype=opts.dtype,
                            trust_remote_code=opts.trust_remote_code, allow_pickle_weights=opts.allow_pickle_weights)
    if opts.compare_base:
        model.check_has_base()
    prep = prepare_data(model, opts, plan)  # bad data stops here, before any weights load
    if prep.strategy == "dpo" and plan.teacher:
        prep.reference, prep.reference_text = reference_logps(model, prep.cfg, prep.data)
    return evaluate_prepared(model, prep, plan, opts)


# ---------------------------------------------------------------------------------------------
# a predictions file


def score_predictions(opts: EvalOptions, plan: Plan) -> Outcome:
    rows = eval_data.read_predictions(opts.predictions)
    generation = plan.generation or GENERATION_METRICS
    scores = score_corpus([r.prediction for r in rows], [r.reference for r in rows], generation,
                          rouge_tokenizer=opts.rouge_tokenizer, bleu_tokenize=opts.bleu_tokenize)
    results = {
        "tuneforge_eval": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "data": {"path": str(Path(opts.predictions).resolve()), "name": data_name(opts.predictions),
                 "format": "predictions"},
        "counts": {"rows": len(rows),
                   "empty_predictions": {"predictions": sum(1 for r in rows if not r.prediction.strip())}},
        "settings": {"rouge_tokenizer": opts.rouge_tokenizer, "bleu_tokenize": opts.bleu_tokenize},
        "metrics": {"predictions": scores.summary}, "delta": None,
        "metric_info": {k: v.to_dict() for k, v in scores.info.items()}, "versions": versions()}
    predictions = [{**r.row, "line": r.line, "scores": s} for r, s in zip(rows, scores.per_row)]
    return Outcome(results, predictions)


# ---------------------------------------------------------------------------------------------
# the command


def output_dir_for(opts: EvalOptions) -> Path:
    """``--output``, else beside the run (``RUN/eval/<data name>``) or the predictions file."""
    if opts.output:
        return Path(opts.output)
    if opts.predictions:
        return default_output(Path(opts.predictions).resolve().parent, data_name(opts.predictions))
    run_dir = Path(opts.adapter or opts.model)
    from .loading import is_run_dir

    if not is_run_dir(str(run_dir)):
        why = "no such directory" if not run_dir.exists() else "no tuneforge_config.yaml there"
        raise ConfigError(f"{str(run_dir)!r} is not a run directory ({why}): give a run's output_dir, or --output DIR "
                          "for a model directory or hub id (results go to RUN/eval/ only for runs).")
    name = data_name(opts.data) if opts.data else "lm-eval-" + "-".join(opts.lm_eval_tasks)
    return default_output(run_dir, name)


def run_eval(opts: EvalOptions, *, write: bool = True) -> Outcome:
    """Check the options, evaluate (or score the predictions file), then write both files all-or-nothing."""
    plan = check_options(opts)
    target = output_dir_for(opts)  # refused now rather than after the model has run
    if opts.predictions:
        outcome = score_predictions(opts, plan)
    elif opts.data:
        outcome = evaluate_model(opts, plan)
    else:
        outcome = Outcome({"tuneforge_eval": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "metrics": {},
                           "delta": None, "versions": versions()}, [])
    if opts.compare or opts.judge:
        from .judged import compare_and_judge

        compare_and_judge(outcome, opts, plan, evaluate_model)
    if opts.lm_eval_tasks:
        from .lm_eval_tasks import run_lm_eval

        outcome.results["lm_eval"] = run_lm_eval(opts)
    if write:
        outcome.output_dir = write_results(target, outcome.results, outcome.predictions)
    return outcome
