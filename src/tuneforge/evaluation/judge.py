"""Answers judged by a model: the prompts (Chinese and English, or the user's ``--judge-template``), reading
the judge's verdicts, combining the two order-swapped pairwise verdicts, and the statistics (mean score and
win/tie/loss rates with seeded percentile-bootstrap intervals).

Verdict formats (the prompts ask for them; a custom template must ask for them too):

- single answer: a score 1-10 written ``[[N]]`` (``Rating: [[7]]``); failing that, ``Rating: N`` /
  ``Score: N`` / ``评分：N``; the last one in the answer counts. Anything else is *unparseable*.
- pairwise: ``[[A]]`` (first answer better), ``[[B]]`` (second better) or ``[[C]]`` (tie); the last one counts.

Each pair is judged twice, the answers' order swapped; the pair's outcome (from the first side's view) is
the agreed verdict, a *tie* where the two disagree (position bias), and *unparseable* (counted, kept out of
the rates) where either verdict could not be read.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .metrics import has_cjk

SINGLE_FIELDS = ("question", "reference", "answer", "rubric")
PAIRWISE_FIELDS = ("question", "reference", "answer_a", "answer_b", "rubric")
REQUIRED = {"single": ("answer",), "pairwise": ("answer_a", "answer_b")}

RUBRIC = {
    "en": ("- Correctness (most important): facts, quantities and conclusions agree with the reference answer; "
           "a claim that contradicts it, or unsafe advice, caps the score at 3.\n"
           "- Completeness: covers the key points of the reference answer.\n"
           "- Relevance and clarity: answers the question asked, concisely, in the question's language.\n"
           "Scale: 1-2 wrong or irrelevant; 3-4 major errors or omissions; 5-6 partly correct; "
           "7-8 correct with minor gaps; 9-10 correct and complete, as good as the reference."),
    "zh": ("- 正确性（最重要）：事实、数量和结论与参考答案一致；与参考答案矛盾或给出不安全的建议时，最高 3 分。\n"
           "- 完整性：涵盖参考答案的要点。\n"
           "- 相关与清晰：回答所问的问题，简洁，使用与问题相同的语言。\n"
           "分数：1-2 错误或答非所问；3-4 有重大错误或遗漏；5-6 部分正确；7-8 正确但略有欠缺；"
           "9-10 正确且完整，与参考答案相当。"),
}

TEMPLATES: dict[str, dict[str, dict[str, str]]] = {
    "en": {
        "single": {
            "system": "You are a strict and impartial grader of answers to user questions.",
            "user": ("Grade the assistant's answer to the question below against the reference answer.\n\n"
                     "Rubric (score 1-10):\n{rubric}\n\n[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n"
                     "[Assistant's answer]\n{answer}\n\nFirst explain your judgement in a few sentences, citing the "
                     "rubric. Then give the score on the last line, exactly in this format: \"Rating: [[N]]\", "
                     "where N is an integer from 1 to 10."),
        },
        "pairwise": {
            "system": "You are a strict and impartial judge comparing two answers to a user question.",
            "user": ("Compare the two answers to the question below, taking the reference answer as correct.\n\n"
                     "Criteria:\n{rubric}\n\nDo not let the order of the answers or their length influence you.\n\n"
                     "[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n[Answer A]\n{answer_a}\n\n"
                     "[Answer B]\n{answer_b}\n\nFirst explain your judgement briefly. Then give your verdict on the "
                     "last line, exactly one of: \"[[A]]\" if answer A is better, \"[[B]]\" if answer B is better, "
                     "\"[[C]]\" for a tie."),
        },
    },
    "zh": {
        "single": {
            "system": "你是一名严格、公正的评审，负责给用户问题的回答打分。",
            "user": ("请对照参考答案，给下面问题的助手回答打分。\n\n评分标准（1-10 分）：\n{rubric}\n\n[问题]\n{question}\n\n"
                     "[参考答案]\n{reference}\n\n[助手的回答]\n{answer}\n\n先用几句话说明理由，引用评分标准；然后在最后一行"
                     "严格按此格式给出分数：\"评分：[[N]]\"，N 为 1 到 10 的整数。"),
        },
        "pairwise": {
            "system": "你是一名严格、公正的评审，负责比较同一问题的两个回答。",
            "user": ("以参考答案为准，比较下面问题的两个回答。\n\n标准：\n{rubric}\n\n不要受回答的先后顺序或长短影响。\n\n"
                     "[问题]\n{question}\n\n[参考答案]\n{reference}\n\n[回答 A]\n{answer_a}\n\n[回答 B]\n{answer_b}\n\n"
                     "先简要说明理由；然后在最后一行严格给出以下之一：回答 A 更好写 \"[[A]]\"，回答 B 更好写 \"[[B]]\"，"
                     "不分高下写 \"[[C]]\"。"),
        },
    },
}

# ---------------------------------------------------------------------------------------------
# templates


@dataclass
class JudgeTemplates:
    """The built-in prompts per language, or the user's (applied to every row, whatever its language)."""

    custom: dict[str, dict[str, str]] = field(default_factory=dict)  # mode -> {"system", "user"}
    rubric: str | None = None  # the user's rubric, else the row language's
    path: str | None = None

    def language(self, *texts: str) -> str:
        return "zh" if any(has_cjk(t) for t in texts) else "en"

    def rubric_for(self, language: str) -> str:
        return self.rubric if self.rubric is not None else RUBRIC[language]

    def messages(self, mode: str, language: str, **values: str) -> list[dict[str, str]]:
        """The chat messages of one judge request (system + user)."""
        template = self.custom.get(mode) or TEMPLATES[language][mode]
        values = {**values, "rubric": self.rubric_for(language)}
        out = [{"role": "system", "content": template["system"]}] if template.get("system") else []
        return out + [{"role": "user", "content": template["user"].format(**values)}]

    def describe(self, languages: Sequence[str]) -> dict[str, Any]:
        """What the results record: where the prompts came from and the rubric(s) the judge was given."""
        used = sorted(set(languages)) or ["en"]
        return {"template": self.path or "built-in",
                "custom_modes": sorted(self.custom),
                "rubric": {lang: self.rubric_for(lang) for lang in used},
                "verdict_format": {"single": "[[N]], N = 1..10 (last one counts)",
                                   "pairwise": "[[A]] / [[B]] / [[C]] = tie (last one counts)"}}


def _placeholders(text: str, where: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} (write a literal brace as {{{{ or }}}}).") from None


def _check_prompt(path: str, mode: str, body: Any) -> dict[str, str]:
    where = f"--judge-template {path}, key '{mode}'"
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        raise ConfigError(f"{where}: expected a mapping with a string 'user' (and optionally 'system').")
    extra = sorted(set(body) - {"system", "user"})
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {extra}; expected 'system' and 'user'.")
    if body.get("system") is not None and not isinstance(body["system"], str):
        raise ConfigError(f"{where}.system: expected a string.")
    allowed = SINGLE_FIELDS if mode == "single" else PAIRWISE_FIELDS
    for key in ("system", "user"):
        names = _placeholders(body.get(key) or "", f"{where}.{key}")
        unknown = sorted(n for n in names if n not in allowed)
        if unknown:
            raise ConfigError(f"{where}.{key}: unknown placeholder(s) {unknown}; allowed: "
                              f"{', '.join('{' + a + '}' for a in allowed)}.")
    missing = [n for n in REQUIRED[mode] if n not in _placeholders(body["user"], where)]
    if missing:
        raise ConfigError(f"{where}.user: must contain {', '.join('{' + m + '}' for m in missing)}.")
    return {"system": body.get("system") or "", "user": body["user"]}


def load_templates(path: str | None) -> JudgeTemplates:
    """``--judge-template FILE``: YAML/JSON with any of ``single``/``pairwise`` ({system, user}) and ``rubric``."""
    if not path:
        return JudgeTemplates()
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--judge-template {path!r}: no such file.")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--judge-template {path}: not valid YAML/JSON ({exc}).") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"--judge-template {path}: expected a mapping with 'single', 'pairwise' and/or 'rubric'.")
    unknown = sorted(set(raw) - {"single", "pairwise", "rubric"})
    if unknown:
        raise ConfigError(f"--judge-template {path}: unknown key(s) {unknown}; expected single, pairwise, rubric.")
    if "rubric" in raw and not isinstance(raw["rubric"], str):
        raise ConfigError(f"--judge-template {path}, key 'rubric': expected a string.")
    custom = {mode: _check_prompt(path, mode, raw[mode]) for mode in ("single", "pairwise") if mode in raw}
    return JudgeTemplates(custom, raw.get("rubric"), str(file))


# ---------------------------------------------------------------------------------------------
# verdicts

_BRACKET_SCORE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*(?:/\s*10\s*)?\]\]")
_LABELLED_SCORE = re.compile(r"(?:rating|score|评分|分数|得分)\s*[:：]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_PAIR_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_score(text: str) -> float | None:
    """The 1-10 score in a judge's answer (the last ``[[N]]``, else the last ``Rating: N``); None if none or
    out of range."""
    found = _BRACKET_SCORE.findall(text) or _LABELLED_SCORE.findall(text)
    if not found:
        return None
    value = float(found[-1])
    return value if 1.0 <= value <= 10.0 else None


def parse_preference(text: str) -> str | None:
    """'A', 'B' or 'C' (tie): the last ``[[X]]`` in a judge's answer; None if there is none."""
    found = _PAIR_VERDICT.findall(text)
    return found[-1] if found else None


# verdict letter -> outcome for the first side, by the position the first side was shown in
_OUTCOME = {("A", "first"): "win", ("B", "first"): "loss", ("A", "second"): "loss", ("B", "second"): "win"}


def side_outcome(letter: str, first_side_position: str) -> str:
    """The first side's outcome from one verdict, the first side having been shown as A ('first') or B."""
    return "tie" if letter == "C" else _OUTCOME[(letter, first_side_position)]


def combine(forward: str | None, swapped: str | None) -> tuple[str, bool]:
    """(outcome, consistent) of a pair from its two verdicts (first side shown as A, then as B).
    None for a verdict that could not be read makes the pair 'unparseable'."""
    if forward is None or swapped is None:
        return "unparseable", False
    a, b = side_outcome(forward, "first"), side_outcome(swapped, "second")
    return (a, True) if a == b else ("tie", False)


# ---------------------------------------------------------------------------------------------
# statistics


@dataclass(frozen=True)
class Bootstrap:
    """Percentile bootstrap: ``resamples`` resamples of the rows with replacement, seeded."""

    resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0

    def indices(self, n: int) -> np.ndarray:
        return np.random.default_rng(self.seed).integers(0, n, size=(self.resamples, n))

    def interval(self, stats: np.ndarray) -> list[float]:
        tail = (1.0 - self.confidence) / 2
        lo, hi = np.quantile(stats, [tail, 1.0 - tail])
        return [float(lo), float(hi)]

    def mean_ci(self, values: Sequence[float]) -> list[float] | None:
        """The interval of the mean; None for no values."""
        if not len(values):
            return None
        data = np.asarray(values, dtype=np.float64)
        return self.interval(data[self.indices(len(data))].mean(axis=1))

    def rates_ci(self, outcomes: Sequence[str], labels: Sequence[str]) -> dict[str, list[float]]:
        """Intervals of each label's rate, every rate from the same resamples (they sum to 1 in each)."""
        if not len(outcomes):
            return {}
        idx = self.indices(len(outcomes))
        return {label: self.interval(np.asarray([o == label for o in outcomes], dtype=np.float64)[idx].mean(axis=1))
                for label in labels}

    def to_dict(self) -> dict[str, Any]:
        return {"method": "percentile bootstrap over rows", "resamples": self.resamples,
                "confidence": self.confidence, "seed": self.seed}


def score_summary(statuses: Sequence[str], scores: Sequence[float | None], boot: Bootstrap) -> dict[str, Any]:
    """Mean score and its interval over the scored rows; unparseable and failed rows counted beside them."""
    scored = [s for s, st in zip(scores, statuses) if st == "ok" and s is not None]
    histogram: dict[str, int] = {}
    for s in scored:
        key = f"{s:g}"
        histogram[key] = histogram.get(key, 0) + 1
    return {"mean": float(np.mean(scored)) if scored else None, "ci95": boot.mean_ci(scored),
            "scored": len(scored), "unparseable": sum(st == "unparseable" for st in statuses),
            "failed": sum(st == "failed" for st in statuses), "rows": len(statuses),
            "distribution": dict(sorted(histogram.items(), key=lambda kv: float(kv[0])))}


def pairwise_summary(outcomes: Sequence[str], inconsistent: int, boot: Bootstrap) -> dict[str, Any]:
    """Win/tie/loss counts and rates (with intervals) over the judged pairs; the rest counted."""
    judged = [o for o in outcomes if o in ("win", "tie", "loss")]
    n = len(judged)
    counts = {k: judged.count(k) for k in ("win", "tie", "loss")}
    return {"pairs": len(outcomes), "judged": n, "counts": counts,
            "rates": {k: (v / n if n else None) for k, v in counts.items()},
            "ci95": boot.rates_ci(judged, ("win", "tie", "loss")),
            "inconsistent_to_tie": inconsistent,
            "unparseable": sum(o == "unparseable" for o in outcomes), "failed": sum(o == "failed" for o in outcomes)}


def _fmt_ci(ci: list[float] | None, digits: int = 2) -> str:
    return "[-]" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def render_judge(section: dict[str, Any]) -> str:
    """The terminal lines of the judge's results."""
    req = section["requests"]
    lines = [f"judge: {section['model']} at {section['endpoint']} ({req['sent']} requests sent, {req['cached']} from "
             f"the cache, {req['retries']} retries)"]
    for side, s in section.get("single", {}).items():
        mean = "-" if s["mean"] is None else f"{s['mean']:.2f}"
        lines.append(f"score 1-10  {side:<8} mean {mean} 95% CI {_fmt_ci(s['ci95'])}  scored {s['scored']}/{s['rows']}"
                     f", unparseable {s['unparseable']}, failed {s['failed']}")
    p = section.get("pairwise")
    if p:
        parts = []
        for k in ("win", "tie", "loss"):
            rate = p["rates"][k]
            parts.append(f"{k} {'-' if rate is None else f'{rate:.2f}'} {_fmt_ci(p['ci95'].get(k))}")
        lines.append(f"pairwise {p['first']} vs {p['second']} (each pair judged twice, order swapped): "
                     + "  ".join(parts))
        lines.append(f"  {p['judged']}/{p['pairs']} pairs judged; {p['inconsistent_to_tie']} order-dependent "
                     f"verdicts counted as ties; unparseable {p['unparseable']}, failed {p['failed']}")
    if section.get("failed_requests"):
        lines.append(f"  {section['failed_requests']} request(s) failed after retries: run the same command again "
                     "to retry only those (the rest come from the cache)")
    return "\n".join(lines)
