"""Generation metrics with stated implementations and tokenizers: exact match, BLEU, ROUGE-L, chrF.

Why the tokenizers matter: a whitespace/ASCII tokenizer sees a Chinese sentence as one token or as
nothing (rouge-score's default drops every non-ASCII character, so Chinese scores 0). Here:

- BLEU (sacrebleu): tokenizer ``zh`` when any prediction or reference contains Chinese characters
  (each character a token, other text as ``13a`` does), else ``13a``; the sacrebleu signature is kept.
- ROUGE-L: sentence-level LCS F1 (beta = 1, the definition of rouge-score's ``rougeL``) over tokens from
  ``char`` (each CJK character one token; other text lowercased letter/digit runs) or ``jieba`` (CJK runs
  cut into jieba words; needs jieba).
- chrF (sacrebleu): character n-grams (n = 6, beta = 2), whitespace ignored: no word tokenizer at all.
- exact match: equal after Unicode NFKC normalisation and trimming whitespace at both ends.

Scales: exact match and ROUGE-L are fractions 0-1; BLEU and chrF are sacrebleu's 0-100.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..errors import ConfigError

# CJK ideographs: unified, extension A, compatibility, and the supplementary-plane extensions.
_CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK = re.compile(f"[{_CJK_CHARS}]")
_CJK_RUN = re.compile(f"[{_CJK_CHARS}]+")
_WORD = re.compile(r"[^\W_]+")  # letters and digits (any script), no punctuation or underscore

GENERATION_METRICS = ("exact_match", "bleu", "rouge_l", "chrf")
ROUGE_TOKENIZERS = ("char", "jieba")
BLEU_TOKENIZERS = ("auto", "zh", "13a", "intl", "char", "none")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


# ---------------------------------------------------------------------------------------------
# exact match


def normalize_exact(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def exact_match(prediction: str, reference: str) -> float:
    return 1.0 if normalize_exact(prediction) == normalize_exact(reference) else 0.0


# ---------------------------------------------------------------------------------------------
# ROUGE-L


def _jieba_cut() -> Callable[[str], list[str]]:
    try:
        import jieba
    except ImportError:
        raise ConfigError("--rouge-tokenizer jieba needs jieba: pip install jieba (or pip install 'tuneforge[eval]'); "
                          "the default 'char' tokenizer needs nothing.") from None
    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter goes to stderr otherwise
    return lambda run: [w for w in jieba.lcut(run) if w.strip()]


def rouge_tokens(text: str, tokenizer: str = "char") -> list[str]:
    """Tokens for ROUGE-L: CJK runs as characters (``char``) or jieba words (``jieba``); any other
    letter/digit run lowercased as one word; punctuation and whitespace dropped."""
    if tokenizer not in ROUGE_TOKENIZERS:
        raise ConfigError(f"--rouge-tokenizer={tokenizer!r}: expected one of {', '.join(ROUGE_TOKENIZERS)}.")
    cut_cjk = _jieba_cut() if tokenizer == "jieba" else list
    tokens: list[str] = []
    for word in _WORD.findall(text.lower()):
        pos = 0
        for run in _CJK_RUN.finditer(word):
            if run.start() > pos:
                tokens.append(word[pos:run.start()])
            tokens.extend(cut_cjk(run.group()))
            pos = run.end()
        if pos < len(word):
            tokens.append(word[pos:])
    return tokens


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, two rows)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_tokens(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F1 of two token lists: P = LCS/|prediction|, R = LCS/|reference|, F = 2PR/(P+R); 0 if empty."""
    if not prediction or not reference:
        return 0.0
    lcs = lcs_length(prediction, reference)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str, tokenizer: str = "char") -> float:
    return rouge_l_tokens(rouge_tokens(prediction, tokenizer), rouge_tokens(reference, tokenizer))


# ---------------------------------------------------------------------------------------------
# BLEU and chrF (sacrebleu)


def bleu_tokenizer_for(predictions: Sequence[str], references: Sequence[str], requested: str = "auto") -> str:
    """sacrebleu tokenizer: ``zh`` when any text has Chinese characters, else ``13a`` (unless one is named)."""
    if requested not in BLEU_TOKENIZERS:
        raise ConfigError(f"--bleu-tokenize={requested!r}: expected one of {', '.join(BLEU_TOKENIZERS)}.")
    if requested != "auto":
        return requested
    return "zh" if any(has_cjk(t) for t in list(predictions) + list(references)) else "13a"


def _sacrebleu_version() -> str:
    import sacrebleu

    return sacrebleu.__version__


@dataclass
class MetricInfo:
    """How a metric was computed, recorded with the scores so they compare with other tools."""

    implementation: str
    tokenizer: str
    scale: str
    signature: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"implementation": self.implementation, "tokenizer": self.tokenizer, "scale": self.scale}
        if self.signature:
            out["signature"] = self.signature
        return out


@dataclass
class CorpusScores:
    """Corpus scores (``summary``), one dict of scores per row (``per_row``) and how each was computed."""

    summary: dict[str, float] = field(default_factory=dict)
    per_row: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, MetricInfo] = field(default_factory=dict)


def _sacrebleu_metric(name: str, predictions: Sequence[str], references: Sequence[str], bleu_tokenize: str,
                      scores: CorpusScores) -> None:
    """Corpus BLEU/chrF (sacrebleu's corpus statistics, not a mean of sentence scores) and per-row sentence scores."""
    from sacrebleu.metrics import BLEU, CHRF

    if name == "bleu":
        tok = bleu_tokenizer_for(predictions, references, bleu_tokenize)
        corpus, sentence = BLEU(tokenize=tok), BLEU(tokenize=tok, effective_order=True)
        implementation, tokenizer = f"sacrebleu {_sacrebleu_version()} BLEU (corpus)", tok
    else:
        corpus = sentence = CHRF()
        implementation, tokenizer = f"sacrebleu {_sacrebleu_version()} chrF (corpus)", "characters (no word tokenizer)"
    result = corpus.corpus_score(list(predictions), [list(references)])
    scores.summary[name] = float(result.score)
    scores.info[name] = MetricInfo(implementation, tokenizer, "0-100", str(corpus.get_signature()))
    for row, (p, r) in zip(scores.per_row, zip(predictions, references)):
        row[name] = float(sentence.sentence_score(p, [r]).score)


def score_corpus(predictions: Sequence[str], references: Sequence[str], metrics: Sequence[str] = GENERATION_METRICS,
                 *, rouge_tokenizer: str = "char", bleu_tokenize: str = "auto") -> CorpusScores:
    """Score predictions against references (same length). Per-row BLEU is sacrebleu's sentence BLEU with
    effective order; the corpus BLEU and chrF use corpus statistics; exact match and ROUGE-L are row means."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    from .peer_metrics import PEER_INFO, PEER_METRICS, peer_scores

    unknown = [m for m in metrics if m not in GENERATION_METRICS + PEER_METRICS]
    if unknown:
        raise ConfigError(f"--metrics: unknown generation metric(s) {unknown}; expected "
                          f"{', '.join(GENERATION_METRICS + PEER_METRICS)}.")
    scores = CorpusScores(per_row=[{} for _ in predictions])
    n = max(len(predictions), 1)
    if "exact_match" in metrics:
        for row, p, r in zip(scores.per_row, predictions, references):
            row["exact_match"] = exact_match(p, r)
        scores.summary["exact_match"] = sum(r["exact_match"] for r in scores.per_row) / n
        scores.info["exact_match"] = MetricInfo("tuneforge: equal after NFKC and trimming", "none", "0-1")
    if "bleu" in metrics:
        _sacrebleu_metric("bleu", predictions, references, bleu_tokenize, scores)
    if "rouge_l" in metrics:
        for row, p, r in zip(scores.per_row, predictions, references):
            row["rouge_l"] = rouge_l(p, r, rouge_tokenizer)
        scores.summary["rouge_l"] = sum(r["rouge_l"] for r in scores.per_row) / n
        described = {"char": "char: each CJK character one token, other letter/digit runs lowercased words",
                     "jieba": "jieba: CJK runs cut into jieba words, other letter/digit runs lowercased words"}
        scores.info["rouge_l"] = MetricInfo("tuneforge LCS ROUGE-L F1 (beta=1, sentence-level, mean over rows; "
                                            "rouge-score's rougeL definition)", described[rouge_tokenizer], "0-1")
    if "chrf" in metrics:
        _sacrebleu_metric("chrf", predictions, references, bleu_tokenize, scores)
    for name in (m for m in PEER_METRICS if m in metrics):  # --metrics peer: LLaMA-Factory's definitions
        for row, value in zip(scores.per_row, peer_scores(name, predictions, references)):
            row[name] = value
        scores.summary[name] = sum(r[name] for r in scores.per_row) / n
        scores.info[name] = MetricInfo(*PEER_INFO[name])
    return scores
