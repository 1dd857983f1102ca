"""``tuneforge eval --judge URL --judge-model NAME``: the answers of an evaluation judged by a model.

Works on the prediction rows ``tuneforge eval`` builds (or reads with ``--predictions``): each side's answer
is in ``prediction`` (the tuned model), ``base_prediction`` (``--compare-base``) or ``compare_prediction``
(``--compare RUN_B``). Single mode grades each side's answers 1-10 against the reference; pairwise mode judges
the first side against the other twice, the order swapped. The verdicts, the judge's reasons and the
statistics are added to the results and to each prediction row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from .judge import Bootstrap, JudgeTemplates, combine, load_templates, pairwise_summary, parse_preference, \
    parse_score, score_summary
from .judge_client import JudgeCache, JudgeClient, JudgeReply, default_cache_dir

SIDES = {"tuned": "prediction", "base": "base_prediction", "compare": "compare_prediction"}
MODES = ("both", "single", "pairwise")  # both: single grades, plus the pair when rows have two answers


@dataclass
class JudgeOptions:
    """The judge's part of ``tuneforge eval``'s options."""

    url: str
    model: str
    api_key_env: str | None = None
    template: str | None = None
    concurrency: int = 4
    mode: str = "both"
    cache_dir: str | None = None
    max_tokens: int = 1024
    attempts: int = 6
    backoff: float = 1.0
    bootstrap: Bootstrap = Bootstrap()


def check_judge(opts: JudgeOptions) -> tuple[JudgeTemplates, str | None]:
    """Options checked before any model loads: the templates parsed, the API key read from its variable."""
    if not opts.url.startswith(("http://", "https://")):
        raise ConfigError(f"--judge {opts.url!r}: expected an http(s) URL such as http://127.0.0.1:8000/v1.")
    if not opts.model:
        raise ConfigError("--judge needs --judge-model NAME (the model name the endpoint serves).")
    if opts.concurrency < 1:
        raise ConfigError(f"--judge-concurrency={opts.concurrency}: must be >= 1.")
    if opts.mode not in MODES:
        raise ConfigError(f"--judge-mode={opts.mode!r}: expected one of {', '.join(MODES)}.")
    if opts.max_tokens < 1:
        raise ConfigError(f"--judge-max-tokens={opts.max_tokens}: must be >= 1.")
    if opts.attempts < 1:
        raise ConfigError(f"--judge-retries={opts.attempts - 1}: must be >= 0.")
    api_key = None
    if opts.api_key_env:
        api_key = os.environ.get(opts.api_key_env)
        if not api_key:
            raise ConfigError(f"--judge-api-key-env {opts.api_key_env}: that environment variable is not set or empty.")
    return load_templates(opts.template), api_key


def question_text(row: dict[str, Any]) -> str:
    """The question the judge sees: the user turn, or the whole conversation when it has several turns."""
    turns = [m for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") != "system"]
    if len(turns) > 1:
        return "\n\n".join(f"{m.get('role', 'user').capitalize()}: {m.get('content', '')}" for m in turns)
    if turns:
        return str(turns[0].get("content", ""))
    return str(row.get("prompt", ""))


def check_rows(rows: list[dict[str, Any]], path: str | None) -> None:
    """A predictions file to judge needs each row's question (``prompt`` or ``messages``)."""
    for row in rows:
        if not isinstance(row.get("prompt"), str) and not isinstance(row.get("messages"), list):
            raise DataError(path or "predictions", row.get("line"), "prompt",
                            "the judge needs the question: give a string 'prompt' (or a 'messages' list) in every row")
        for key in ("base_prediction", "compare_prediction"):
            if key in row and row[key] is not None and not isinstance(row[key], str):
                raise DataError(path or "predictions", row.get("line"), key, "expected a string")


def _sides(rows: list[dict[str, Any]]) -> list[str]:
    return [side for side, key in SIDES.items() if any(isinstance(r.get(key), str) for r in rows)]


def _plan(rows: list[dict[str, Any]], mode: str) -> tuple[list[str], tuple[str, str] | None]:
    """(sides graded alone, the pair judged against each other or None)."""
    sides = _sides(rows)
    other = next((s for s in ("compare", "base") if s in sides), None)
    if mode == "pairwise" and other is None:
        raise ConfigError("--judge-mode pairwise needs two answers per row: add --compare-base or --compare RUN_B.")
    single = [] if mode == "pairwise" else sides
    pair = ("tuned", other) if other and mode != "single" else None
    return single, pair


@dataclass
class _Request:
    row: int
    kind: str  # "single" or "pairwise"
    side: str  # single: the side graded; pairwise: the side shown as A
    messages: list[dict[str, str]]


def build_requests(rows: list[dict[str, Any]], templates: JudgeTemplates, single: list[str],
                   pair: tuple[str, str] | None) -> tuple[list[_Request], list[str]]:
    """Every judge request (single grades, then both orders of each pair) and each row's language."""
    requests, languages = [], []
    for i, row in enumerate(rows):
        question, reference = question_text(row), str(row.get("reference", ""))
        lang = templates.language(question, reference)
        languages.append(lang)
        for side in single:
            answer = row.get(SIDES[side])
            if isinstance(answer, str):
                requests.append(_Request(i, "single", side, templates.messages(
                    "single", lang, question=question, reference=reference, answer=answer)))
        if pair and all(isinstance(row.get(SIDES[s]), str) for s in pair):
            for first, second in (pair, pair[::-1]):
                requests.append(_Request(i, "pairwise", first, templates.messages(
                    "pairwise", lang, question=question, reference=reference,
                    answer_a=row[SIDES[first]], answer_b=row[SIDES[second]])))
    return requests, languages


def _single_entry(reply: JudgeReply) -> dict[str, Any]:
    if reply.text is None:
        return {"status": "failed", "score": None, "error": reply.error}
    score = parse_score(reply.text)
    return {"status": "ok" if score is not None else "unparseable", "score": score, "reason": reply.text}


def _verdict_entry(shown_as_a: str, reply: JudgeReply) -> dict[str, Any]:
    if reply.text is None:
        return {"a": shown_as_a, "status": "failed", "verdict": None, "error": reply.error}
    verdict = parse_preference(reply.text)
    return {"a": shown_as_a, "status": "ok" if verdict else "unparseable", "verdict": verdict, "reason": reply.text}


def _pair_entry(pair: tuple[str, str], forward: dict[str, Any], swapped: dict[str, Any]) -> dict[str, Any]:
    if "failed" in (forward["status"], swapped["status"]):
        outcome, consistent = "failed", False
    else:
        outcome, consistent = combine(forward["verdict"], swapped["verdict"])
    return {"first": pair[0], "second": pair[1], "outcome": outcome, "consistent": consistent,
            "verdicts": [forward, swapped]}


def annotate(rows: list[dict[str, Any]], requests: list[_Request], replies: list[JudgeReply], languages: list[str],
             pair: tuple[str, str] | None) -> None:
    """Each row's ``judge`` field: its language, each side's grade, and the pair's two verdicts and outcome."""
    for row, lang in zip(rows, languages):
        row["judge"] = {"language": lang}
    pending: dict[int, dict[str, Any]] = {}
    for req, reply in zip(requests, replies):
        judged = rows[req.row]["judge"]
        if req.kind == "single":
            judged.setdefault("single", {})[req.side] = _single_entry(reply)
        elif req.row not in pending:
            pending[req.row] = _verdict_entry(req.side, reply)
        else:
            judged["pairwise"] = _pair_entry(pair, pending.pop(req.row), _verdict_entry(req.side, reply))


def summarize(rows: list[dict[str, Any]], single: list[str], pair: tuple[str, str] | None,
              boot: Bootstrap) -> dict[str, Any]:
    out: dict[str, Any] = {"single": {}}
    for side in single:
        graded = [r["judge"]["single"][side] for r in rows if side in r["judge"].get("single", {})]
        out["single"][side] = score_summary([g["status"] for g in graded], [g["score"] for g in graded], boot)
    if pair:
        judged = [r["judge"]["pairwise"] for r in rows if "pairwise" in r["judge"]]
        outcomes = [p["outcome"] for p in judged]
        inconsistent = sum(1 for p in judged if p["outcome"] == "tie" and not p["consistent"])
        out["pairwise"] = {"first": pair[0], "second": pair[1], "unpaired_rows": len(rows) - len(judged),
                           **pairwise_summary(outcomes, inconsistent, boot)}
    return out


def judge_rows(rows: list[dict[str, Any]], opts: JudgeOptions, *, client: JudgeClient | None = None) -> dict[str, Any]:
    """Judge the rows in place (each gets ``judge``) and return the results' ``judge`` section."""
    templates, api_key = check_judge(opts)
    single, pair = _plan(rows, opts.mode)
    cache_dir = Path(opts.cache_dir).expanduser() if opts.cache_dir else default_cache_dir()
    client = client or JudgeClient(opts.url, opts.model, JudgeCache(cache_dir), api_key=api_key,
                                   max_tokens=opts.max_tokens, attempts=opts.attempts, backoff=opts.backoff)
    requests, languages = build_requests(rows, templates, single, pair)
    replies = client.ask_all([r.messages for r in requests], opts.concurrency)
    annotate(rows, requests, replies, languages, pair)
    section = {"endpoint": opts.url, "model": opts.model, "api_key_env": opts.api_key_env, "mode": opts.mode,
               "languages": {lang: languages.count(lang) for lang in sorted(set(languages))},
               **templates.describe(languages),
               "settings": {"temperature": 0, "max_tokens": opts.max_tokens, "concurrency": opts.concurrency,
                            "attempts": opts.attempts, "cache": str(cache_dir)},
               "bootstrap": opts.bootstrap.to_dict(), **summarize(rows, single, pair, opts.bootstrap),
               "requests": client.counters.to_dict(), "failed_requests": sum(r.text is None for r in replies)}
    return section
