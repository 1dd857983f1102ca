"""Figures comparable with LLaMA-Factory's ``predict_rouge-l`` and ``predict_bleu-4`` (``--metrics peer``),
reported beside tuneforge's own and named by their definitions, so a user moving runs over can compare.

The two definitions differ from tuneforge's ``rouge_l`` / ``bleu`` in ways that move the numbers:

- ``rouge_l_jieba_punct``: jieba tokens of the whole text, punctuation and every other non-space token
  **kept** (tuneforge's ``rouge_l`` drops punctuation), scored by rouge-chinese's ``rouge-l`` F
  (summary-level LCS); a text with no token after jieba scores 0. Mean over rows, 0-1 (LLaMA-Factory prints
  it x100).
- ``bleu4_nltk_char``: nltk's sentence BLEU-4 over characters (spaces included), one reference, smoothing
  method 3 (NIST geometric sequence); mean over rows x100 (tuneforge's ``bleu`` is sacrebleu's corpus BLEU).

Needs ``jieba``, ``rouge-chinese`` and ``nltk`` (``pip install 'tuneforge[eval]'``).
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

from ..errors import ConfigError

PEER_METRICS = ("rouge_l_jieba_punct", "bleu4_nltk_char")
PEER_INFO = {
    "rouge_l_jieba_punct": ("rouge-chinese rouge-l F (summary-level LCS), mean over rows; LLaMA-Factory's "
                            "predict_rouge-l / 100", "jieba words, punctuation kept", "0-1"),
    "bleu4_nltk_char": ("nltk sentence_bleu, 4-grams, smoothing method 3, one reference, mean over rows x100; "
                        "LLaMA-Factory's predict_bleu-4", "characters", "0-100"),
}


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"--metrics peer needs {package}: pip install {package} "
                          "(or pip install 'tuneforge[eval]').") from None


def _rouge_l_jieba_punct() -> Callable[[str, str], float]:
    jieba = _need("jieba", "jieba")
    rouge = _need("rouge_chinese", "rouge-chinese").Rouge(metrics=["rouge-l"])
    jieba.setLogLevel(logging.WARNING)

    def score(prediction: str, reference: str) -> float:
        hypothesis, gold = " ".join(jieba.cut(prediction)), " ".join(jieba.cut(reference))
        if not hypothesis.split() or not gold.split():
            return 0.0
        return float(rouge.get_scores(hypothesis, gold)[0]["rouge-l"]["f"])

    return score


def _bleu4_nltk_char() -> Callable[[str, str], float]:
    bleu = _need("nltk.translate.bleu_score", "nltk")
    smoothing = bleu.SmoothingFunction().method3

    def score(prediction: str, reference: str) -> float:
        return 100.0 * float(bleu.sentence_bleu([list(reference)], list(prediction), smoothing_function=smoothing))

    return score


SCORERS: dict[str, Callable[[], Callable[[str, str], float]]] = {
    "rouge_l_jieba_punct": _rouge_l_jieba_punct, "bleu4_nltk_char": _bleu4_nltk_char}


def check_available(names: Sequence[str]) -> None:
    """Refuse a peer metric whose library is missing before any model loads."""
    for name in names:
        if name in SCORERS:
            SCORERS[name]()


def peer_scores(name: str, predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """One score per row, by the named definition."""
    score = SCORERS[name]()
    return [score(p, r) for p, r in zip(predictions, references)]
