"""``tuneforge eval``: the argument parser and the terminal output (table or JSON)."""
from __future__ import annotations

import argparse
import json
import sys

from ..tools.common import add_trust_argument
from .metrics import BLEU_TOKENIZERS, GENERATION_METRICS, ROUGE_TOKENIZERS
from .judge import render_judge
from .results import PREDICTIONS_FILE, RESULTS_FILE
from .run import EvalOptions, Outcome, run_eval


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    return EvalOptions(
        model=args.model, data=args.data, adapter=args.adapter, metrics=_csv(args.metrics) if args.metrics else None,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seq_length=args.seq_length,
        compare_base=args.compare_base, output=args.output, predictions=args.predictions,
        rouge_tokenizer=args.rouge_tokenizer, bleu_tokenize=args.bleu_tokenize, device=args.device, dtype=args.dtype,
        lm_eval_tasks=_csv(args.lm_eval_tasks) if args.lm_eval_tasks else [], lm_eval_include=args.lm_eval_include,
        lm_eval_limit=args.lm_eval_limit, trust_remote_code=args.trust_remote_code,
        allow_pickle_weights=args.allow_pickle_weights, compare=args.compare, judge=args.judge,
        judge_model=args.judge_model, judge_api_key_env=args.judge_api_key_env, judge_template=args.judge_template,
        judge_concurrency=args.judge_concurrency, judge_mode=args.judge_mode, judge_cache=args.judge_cache,
        judge_retries=args.judge_retries, judge_max_tokens=args.judge_max_tokens,
        reward_functions=_csv(args.reward_functions) if args.reward_functions else None)


def report(outcome: Outcome, as_json: bool) -> None:
    """The table (or the results JSON) on stdout; where the files went on stderr, so --json output stays JSON."""
    results = outcome.results
    if as_json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        data, counts = results.get("data", {}), results.get("counts", {})
        if data:
            print(f"data: {data['path']} ({data['format']}, {counts.get('rows', 0)} rows)")
        if results.get("settings", {}).get("reference"):
            print(f"DPO reference: {results['settings']['reference']}")
        if results.get("metrics"):
            print(outcome.table)
        for task, values in (results.get("lm_eval") or {}).get("results", {}).items():
            # lm-eval names scores "metric,filter" (e.g. "acc,none"); its stderr entries are left to the file
            shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items()
                              if "," in k and "stderr" not in k and isinstance(v, (int, float)))
            print(f"lm-eval {task}: {shown}")
        if results.get("judge"):
            print(render_judge(results["judge"]))
    if outcome.output_dir is not None:
        print(f"results: {outcome.output_dir / RESULTS_FILE}, {outcome.output_dir / PREDICTIONS_FILE}", file=sys.stderr)


def _cmd(args: argparse.Namespace) -> int:
    outcome = run_eval(options_from_args(args))
    report(outcome, args.json)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a run or model on a data file: loss, preference accuracy, BLEU/ROUGE-L/chrF",
        description="Teacher-forced loss/perplexity/token accuracy (training's own evaluation), DPO preference "
                    "metrics against the run's reference, and generation metrics of greedy answers (exact match, "
                    "BLEU, ROUGE-L, chrF with tokenizers that work for Chinese). Writes eval_results.json and "
                    "predictions.jsonl to RUN/eval/<data name>/ (or --output DIR). See docs/evaluation.md.")
    p.add_argument("model", nargs="?", metavar="RUN_OR_MODEL",
                   help="a run's output_dir (LoRA or full), a model directory or hub id, or builtin:toy")
    p.add_argument("--data", metavar="FILE", help="rows in any training format (SFT, chat, ShareGPT, preference)")
    p.add_argument("--adapter", help="a LoRA adapter directory to apply to RUN_OR_MODEL")
    p.add_argument("--metrics", metavar="LIST",
                   help=f"comma list of: loss, generation, {', '.join(GENERATION_METRICS)} (default: all that apply); "
                        "peer (or rouge_l_jieba_punct, bleu4_nltk_char): LLaMA-Factory's ROUGE-L and BLEU-4 "
                        "definitions beside tuneforge's, e.g. --metrics loss,generation,peer")
    p.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="longest greedy answer (default 256)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="rows per batch (default: the run's per_device_train_batch_size)")
    p.add_argument("--seq-length", type=int, default=None, metavar="N",
                   help="truncate rows to this many tokens (default: the run's seq_length)")
    p.add_argument("--compare-base", action="store_true",
                   help="also evaluate the base model (adapter disabled) and print deltas")
    p.add_argument("--json", action="store_true", help="print eval_results.json instead of the table")
    p.add_argument("--output", metavar="DIR", help="where to write the results (default RUN/eval/<data name>/)")
    p.add_argument("--predictions", metavar="FILE",
                   help="score an existing JSONL of {prediction, reference} rows; no model")
    p.add_argument("--rouge-tokenizer", choices=ROUGE_TOKENIZERS, default="char",
                   help="ROUGE-L tokens for Chinese: characters (default) or jieba words (needs jieba)")
    p.add_argument("--bleu-tokenize", choices=BLEU_TOKENIZERS, default="auto",
                   help="sacrebleu tokenizer (auto: zh when the text has Chinese characters, else 13a)")
    p.add_argument("--reward-functions", metavar="LIST",
                   help="a GRPO run: score its answers to --data's prompts with these (accuracy, format, exact_match, "
                        "length, path/file.py:fn); mean reward in total and per function")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    add_trust_argument(p)
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="weights precision (auto: what the run trained with; float32 on CPU)")
    g = p.add_argument_group("lm-evaluation-harness (pip install lm-eval)")
    g.add_argument("--lm-eval-tasks", metavar="TASK[,TASK]",
                   help="run these lm-eval tasks on the model (adapter merged)")
    g.add_argument("--lm-eval-include", metavar="DIR",
                   help="directory of task YAML files (tasks over local data files)")
    g.add_argument("--lm-eval-limit", type=int, default=None, metavar="N", help="at most this many documents per task")
    add_judge_arguments(p)
    p.set_defaults(func=_cmd)


def add_judge_arguments(p) -> None:
    g = p.add_argument_group("answers judged by a model (any OpenAI-compatible endpoint; docs/evaluation.md)")
    g.add_argument("--judge", metavar="URL", help="the judge's endpoint, e.g. http://127.0.0.1:8000/v1 (a tuneforge "
                   "serve, vLLM, a hosted API): each answer graded 1-10 against the reference, and with "
                   "--compare-base/--compare each pair judged twice, the order swapped")
    g.add_argument("--judge-model", metavar="NAME", help="the model name the judge endpoint serves")
    g.add_argument("--judge-api-key-env", metavar="VAR", help="the environment variable holding the API key (the "
                   "key itself is never written anywhere)")
    g.add_argument("--compare", metavar="RUN_B", help="a second run evaluated on the same rows; the judge compares "
                   "RUN's answers with RUN_B's")
    g.add_argument("--judge-template", metavar="FILE", help="YAML with 'single' and/or 'pairwise' ({system, user} "
                   "with {question} {reference} {answer} / {answer_a} {answer_b} {rubric}) and 'rubric' "
                   "(default: built-in Chinese or English prompts, by each row's language)")
    g.add_argument("--judge-concurrency", type=int, default=4, metavar="N", help="requests in flight (default 4)")
    g.add_argument("--judge-mode", choices=("both", "single", "pairwise"), default="both",
                   help="single grades, pairwise verdicts, or both (default; pairwise needs two answers per row)")
    g.add_argument("--judge-cache", metavar="DIR", help="request/answer cache by content hash (default "
                   "$TUNEFORGE_JUDGE_CACHE, else ~/.cache/tuneforge/judge): a re-run sends nothing already answered")
    g.add_argument("--judge-max-tokens", type=int, default=1024, metavar="N",
                   help="longest judge answer (reason and verdict; default 1024)")
    g.add_argument("--judge-retries", type=int, default=5, metavar="N",
                   help="retries of a request on 429/5xx or a lost connection, with exponential backoff (default 5)")
