"""Generation metrics against values worked out by hand, in Chinese and in English."""
import math
import sys

import pytest

from tuneforge.errors import ConfigError
from tuneforge.evaluation.metrics import (bleu_tokenizer_for, exact_match, lcs_length, rouge_l, rouge_tokens,
                                          score_corpus)

ZH = "菊花茶适合日常饮用"


def test_identical_chinese_scores_full_marks():
    scores = score_corpus([ZH], [ZH])
    assert scores.summary["rouge_l"] == pytest.approx(1.0)
    assert scores.summary["bleu"] == pytest.approx(100.0)
    assert scores.summary["chrf"] == pytest.approx(100.0)
    assert scores.summary["exact_match"] == 1.0
    assert scores.per_row[0]["bleu"] == pytest.approx(100.0)
    assert scores.info["bleu"].tokenizer == "zh"


def test_chinese_is_tokenized_per_character_not_dropped():
    # An ASCII tokenizer (rouge-score's default) keeps nothing of this sentence; here each character counts.
    assert rouge_tokens(ZH) == list(ZH)
    assert rouge_tokens("Tea 菊花茶, 3 cups!") == ["tea", "菊", "花", "茶", "3", "cups"]


def test_rouge_l_partial_overlap_chinese():
    # prediction 5 characters, reference 9, longest common subsequence 菊花茶 = 3:
    # P = 3/5, R = 3/9, F1 = 2PR/(P+R) = 2*3/(5+9) = 3/7
    assert rouge_l("菊花茶很好", ZH) == pytest.approx(3 / 7)


def test_rouge_l_partial_overlap_english():
    # LCS("the cat sat", "the cat sat on the mat") = 3 words: F1 = 2*3/(3+6) = 2/3
    assert rouge_l("The cat sat.", "the cat sat on the mat") == pytest.approx(2 / 3)
    # order matters for a subsequence: "sat the cat" shares "the cat" (2) with the reference
    assert rouge_l("sat the cat", "the cat sat") == pytest.approx(2 / 3)
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook example


def test_bleu_partial_overlap_english():
    # 13a tokens: 5 each; matches 1-4 grams: 4/5, 3/4, 2/3, 1/2; same length so BP = 1
    expected = 100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    scores = score_corpus(["hello world foo bar baz"], ["hello world foo bar qux"], ["bleu"])
    assert scores.summary["bleu"] == pytest.approx(expected)
    assert scores.info["bleu"].tokenizer == "13a"


def test_bleu_partial_overlap_chinese():
    # zh tokenizer: one token per character. prediction 我喜欢喝菊花茶 (7), reference 我喜欢喝玫瑰花茶 (8)
    # 1-grams 6/7 (我喜欢喝花茶), 2-grams 4/6 (我喜 喜欢 欢喝 花茶), 3-grams 2/5 (我喜欢 喜欢喝), 4-grams 1/4 (我喜欢喝)
    # brevity penalty exp(1 - 8/7)
    expected = 100 * math.exp(1 - 8 / 7) * (6 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25
    scores = score_corpus(["我喜欢喝菊花茶"], ["我喜欢喝玫瑰花茶"], ["bleu", "rouge_l"])
    assert scores.summary["bleu"] == pytest.approx(expected)
    # ROUGE-L on the same pair: LCS 我喜欢喝花茶 = 6, F1 = 2*6/(7+8) = 0.8
    assert scores.summary["rouge_l"] == pytest.approx(0.8)


def test_empty_prediction_scores_zero_without_error():
    scores = score_corpus(["", ZH], [ZH, ZH])
    assert scores.per_row[0] == {"exact_match": 0.0, "bleu": 0.0, "rouge_l": 0.0, "chrf": 0.0}
    assert scores.per_row[1]["rouge_l"] == pytest.approx(1.0)
    assert scores.summary["exact_match"] == 0.5
    only_empty = score_corpus([""], ["the answer"])
    assert only_empty.summary == {"exact_match": 0.0, "bleu": 0.0, "rouge_l": 0.0, "chrf": 0.0}


def test_exact_match_normalises_width_and_outer_whitespace():
    assert exact_match("  ＡＢＣ１２３ \n", "ABC123") == 1.0  # full-width forms (NFKC)
    assert exact_match("abc", "ABC") == 0.0  # case is kept: an exact match is exact


def test_bleu_tokenizer_choice():
    assert bleu_tokenizer_for(["hello"], ["world"]) == "13a"
    assert bleu_tokenizer_for(["hello"], ["你好"]) == "zh"
    assert bleu_tokenizer_for(["hello"], ["你好"], "intl") == "intl"
    with pytest.raises(ConfigError, match="bleu-tokenize"):
        bleu_tokenizer_for(["a"], ["b"], "klingon")


def test_each_metric_names_implementation_tokenizer_and_scale():
    info = {k: v.to_dict() for k, v in score_corpus(["a b"], ["a b"]).info.items()}
    assert set(info) == {"exact_match", "bleu", "rouge_l", "chrf"}
    assert all({"implementation", "tokenizer", "scale"} <= set(v) for v in info.values())
    assert info["bleu"]["signature"].startswith("nrefs:1|") and "tok:13a" in info["bleu"]["signature"]
    assert "sacrebleu" in info["chrf"]["implementation"]


def test_jieba_words_for_rouge():
    pytest.importorskip("jieba")
    words = rouge_tokens(ZH, "jieba")
    assert "".join(words) == ZH and len(words) < len(ZH)  # words, not characters
    assert rouge_l(ZH, ZH, "jieba") == pytest.approx(1.0)
    info = score_corpus([ZH], [ZH], ["rouge_l"], rouge_tokenizer="jieba").info["rouge_l"]
    assert info.tokenizer.startswith("jieba")


def test_jieba_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)  # import jieba now raises ImportError
    with pytest.raises(ConfigError, match="pip install jieba"):
        rouge_tokens(ZH, "jieba")


def test_unknown_metric_is_refused():
    with pytest.raises(ConfigError, match="unknown generation metric"):
        score_corpus(["a"], ["a"], ["meteor"])
