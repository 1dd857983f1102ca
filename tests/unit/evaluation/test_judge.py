"""The judge's pure parts: verdict parsing, the order-swap rule, templates, and the bootstrap interval checked
against the exact bootstrap distribution of a small sample (enumerated by hand, no random numbers)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tuneforge.errors import ConfigError
from tuneforge.evaluation.judge import Bootstrap, combine, load_templates, pairwise_summary, parse_preference, \
    parse_score, score_summary
from tuneforge.evaluation.judging import question_text


@pytest.mark.parametrize("text, score", [
    ("Good answer.\nRating: [[7]]", 7.0), ("评分：[[9]]", 9.0), ("[[3]] at first... final Rating: [[6]]", 6.0),
    ("Rating: [[7.5]]", 7.5), ("Score: 4", 4.0), ("评分：8", 8.0), ("[[8/10]]", 8.0),
    ("Rating: [[11]]", None), ("Rating: [[0]]", None), ("I cannot decide.", None), ("", None), ("[[A]]", None)])
def test_parse_score(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize("text, verdict", [
    ("A is closer to the reference.\n[[A]]", "A"), ("[[B]]", "B"), ("平分秋色 [[C]]", "C"),
    ("Format: [[A]], [[B]] or [[C]]... my verdict: [[B]]", "B"), ("A is better", None), ("[[7]]", None)])
def test_parse_preference(text, verdict):
    assert parse_preference(text) == verdict


def test_order_swap_rule():
    # forward: the first side shown as A; swapped: shown as B
    assert combine("A", "B") == ("win", True)
    assert combine("B", "A") == ("loss", True)
    assert combine("C", "C") == ("tie", True)
    assert combine("A", "A") == ("tie", False)  # always the first position: position bias, a tie
    assert combine("A", "C") == ("tie", False)
    assert combine(None, "B") == ("unparseable", False)


def _exact_bootstrap_quantiles(values, q):
    """Every one of the n^n equally likely resamples enumerated: quantiles of the resample mean."""
    n = len(values)
    means = np.array([np.mean([values[i] for i in idx]) for idx in itertools.product(range(n), repeat=n)])
    return np.quantile(means, q)


def test_bootstrap_interval_matches_the_exact_bootstrap_distribution():
    values = [2.0, 5.0, 6.0, 9.0, 10.0]
    lo, hi = _exact_bootstrap_quantiles(values, [0.025, 0.975])
    ci = Bootstrap(resamples=20000, seed=3).mean_ci(values)
    assert ci[0] == pytest.approx(lo, abs=0.15) and ci[1] == pytest.approx(hi, abs=0.15)
    assert ci[0] < np.mean(values) < ci[1]
    # seeded: the same interval every time; another seed, a (slightly) different one
    assert Bootstrap(resamples=20000, seed=3).mean_ci(values) == ci
    spread = [2.1, 5.3, 6.7, 9.2, 10.9, 3.4, 7.8]
    assert Bootstrap(resamples=200, seed=4).mean_ci(spread) != Bootstrap(resamples=200, seed=3).mean_ci(spread)


def test_bootstrap_of_a_constant_and_of_nothing():
    assert Bootstrap().mean_ci([7.0] * 9) == [7.0, 7.0]
    assert Bootstrap().mean_ci([]) is None


def test_rates_and_their_intervals():
    outcomes = ["win"] * 6 + ["tie"] * 2 + ["loss"] * 2 + ["unparseable", "failed"]
    summary = pairwise_summary(outcomes, inconsistent=1, boot=Bootstrap(resamples=20000, seed=0))
    assert summary["counts"] == {"win": 6, "tie": 2, "loss": 2} and summary["judged"] == 10
    assert summary["rates"] == {"win": 0.6, "tie": 0.2, "loss": 0.2}
    assert summary["unparseable"] == 1 and summary["failed"] == 1 and summary["pairs"] == 12
    # the win rate's exact bootstrap: Binomial(10, 0.6) / 10
    from math import comb

    cdf = np.cumsum([comb(10, k) * 0.6 ** k * 0.4 ** (10 - k) for k in range(11)])
    lo, hi = np.searchsorted(cdf, 0.025) / 10, np.searchsorted(cdf, 0.975) / 10
    assert summary["ci95"]["win"] == pytest.approx([lo, hi], abs=0.1001)


def test_score_summary_counts_unparseable_and_failed_rows():
    summary = score_summary(["ok", "ok", "unparseable", "failed", "ok"], [8.0, 6.0, None, None, 7.0], Bootstrap())
    assert summary["mean"] == pytest.approx(7.0)
    assert (summary["scored"], summary["unparseable"], summary["failed"], summary["rows"]) == (3, 1, 1, 5)
    assert summary["distribution"] == {"6": 1, "7": 1, "8": 1}


def test_builtin_templates_follow_the_rows_language():
    templates = load_templates(None)
    zh = templates.messages("single", templates.language("菊花茶怎么泡？", "用热水"), question="菊花茶怎么泡？",
                            reference="用热水冲泡。", answer="泡三分钟")
    en = templates.messages("pairwise", "en", question="q?", reference="r", answer_a="first", answer_b="second")
    assert "参考答案" in zh[-1]["content"] and "正确性" in zh[-1]["content"] and "泡三分钟" in zh[-1]["content"]
    assert "[Answer A]\nfirst" in en[-1]["content"] and "[[C]]" in en[-1]["content"]
    assert en[0]["role"] == "system"


def test_a_custom_template(tmp_path):
    path = tmp_path / "judge.yaml"
    path.write_text("rubric: Only the number matters.\nsingle:\n  user: 'Q {question} R {reference} A {answer}. "
                    "{rubric} Answer [[N]].'\n", encoding="utf-8")
    templates = load_templates(str(path))
    messages = templates.messages("single", "zh", question="几分钟？", reference="3", answer="三")
    assert messages == [{"role": "user", "content": "Q 几分钟？ R 3 A 三. Only the number matters. Answer [[N]]."}]
    assert templates.describe(["zh"])["rubric"] == {"zh": "Only the number matters."}
    # pairwise was not customised: the built-in one, with the custom rubric
    assert "Only the number matters." in templates.messages("pairwise", "en", question="q", reference="r",
                                                            answer_a="a", answer_b="b")[-1]["content"]


@pytest.mark.parametrize("body, words", [
    ("single:\n  user: 'no answer here {question}'\n", "must contain {answer}"),
    ("single:\n  user: '{answer} {colour}'\n", "unknown placeholder(s) ['colour']"),
    ("pairwise:\n  user: '{answer_a}'\n", "must contain {answer_b}"),
    ("single:\n  user: '{answer'\n", "literal brace"),
    ("singel:\n  user: '{answer}'\n", "unknown key(s) ['singel']"),
    ("single: just text\n", "expected a mapping"),
    ("- a list\n", "expected a mapping"),
])
def test_bad_templates_are_refused_with_the_key(tmp_path, body, words):
    path = tmp_path / "t.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_templates(str(path))
    assert words in str(err.value) and str(path) in str(err.value)


def test_question_text_of_multi_turn_rows():
    assert question_text({"prompt": "only"}) == "only"
    row = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "and?"}]}
    assert question_text(row) == "User: hi\n\nAssistant: hello\n\nUser: and?"
