"""``--metrics peer``: LLaMA-Factory's ROUGE-L (jieba, punctuation kept, rouge-chinese) and BLEU-4 (nltk, characters,
smoothing 3) beside tuneforge's own, with values worked out by hand."""
from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("rouge_chinese")
pytest.importorskip("nltk")
pytest.importorskip("jieba")

from tuneforge.cli import main  # noqa: E402
from tuneforge.evaluation.metrics import score_corpus  # noqa: E402
from tuneforge.evaluation.run import plan_metrics  # noqa: E402

NAMES = ["rouge_l", "bleu", "rouge_l_jieba_punct", "bleu4_nltk_char"]


def test_punctuation_kept_or_dropped():
    # "好。" vs "好！": tuneforge drops the punctuation (tokens 好 / 好: F = 1); kept, the tokens are 好 。 / 好 ！:
    # LCS 1, P = R = 1/2, F = 1/2
    row = score_corpus(["好。"], ["好！"], NAMES, rouge_tokenizer="jieba").per_row[0]
    assert row["rouge_l"] == pytest.approx(1.0)
    assert row["rouge_l_jieba_punct"] == pytest.approx(0.5, abs=1e-6)


def test_bleu4_on_characters_with_smoothing_3():
    # abcd vs abce: 1-grams 3/4, 2-grams 2/3, 3-grams 1/2, 4-grams 0/1 -> smoothed to 1/(2*1); brevity penalty 1
    row = score_corpus(["abcd"], ["abce"], NAMES).per_row[0]
    assert row["bleu4_nltk_char"] == pytest.approx(100 * (0.75 * (2 / 3) * 0.5 * 0.5) ** 0.25)
    assert score_corpus(["菊花茶很好"], ["菊花茶很好"], NAMES).per_row[0]["bleu4_nltk_char"] == pytest.approx(100.0)


def test_empty_answers_score_zero_and_the_summary_is_the_row_mean():
    scores = score_corpus(["", "好。"], ["有答案。", "好！"], NAMES, rouge_tokenizer="jieba")
    assert scores.per_row[0]["rouge_l_jieba_punct"] == 0.0 and scores.per_row[0]["bleu4_nltk_char"] == 0.0
    assert scores.summary["rouge_l_jieba_punct"] == pytest.approx(0.25, abs=1e-6)
    assert math.isclose(scores.summary["bleu4_nltk_char"], scores.per_row[1]["bleu4_nltk_char"] / 2)
    assert "predict_rouge-l" in scores.info["rouge_l_jieba_punct"].implementation
    assert scores.info["bleu4_nltk_char"].to_dict()["scale"] == "0-100"


def test_the_peer_group_is_opt_in():
    assert "rouge_l_jieba_punct" not in plan_metrics(None).generation
    assert plan_metrics(["generation", "peer"]).generation[-2:] == ("rouge_l_jieba_punct", "bleu4_nltk_char")
    assert plan_metrics(["bleu4_nltk_char"]).generation == ("bleu4_nltk_char",)


def test_predictions_file_with_peer_metrics(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prediction": "好。", "reference": "好！"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert main(["eval", "--predictions", str(path), "--metrics", "rouge_l,peer", "--rouge-tokenizer", "jieba",
                 "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "rouge_l_jieba_punct" in out and "bleu4_nltk_char" in out
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert results["metrics"]["predictions"]["rouge_l"] == 1.0
    assert results["metric_info"]["rouge_l_jieba_punct"]["tokenizer"] == "jieba words, punctuation kept"
