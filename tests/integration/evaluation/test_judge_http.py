"""``tuneforge eval --judge`` over real HTTP against the scripted judge of conftest.py: scores, order swapping
and ties, unparseable answers, 429/500 retries, failures, the cache (a re-run sends nothing) and resume after
a kill, the API key kept off disk."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.cli import main

# (prompt, reference, tuned answer, base answer); the verdicts follow conftest's table
ROWS = [
    ("How long do I steep mint tea?", "Five minutes.", "#score=8", "#score=4"),       # win
    ("Can I drink green tea at night?", "Better not.", "#score=3", "#score=6"),       # loss
    ("菊花茶怎么泡？", "用热水冲泡三分钟。", "#score=7", "#score=7"),                      # tie (both say [[C]])
    ("Is rose tea sweet?", "Slightly.", "#score=9 #bias", "#score=2"),                # order-dependent -> tie
    ("What is chamomile?", "A flower.", "#garbage", "#score=5"),                       # unparseable
    ("枸杞可以每天吃吗？", "可以适量。", "#score=6 #flaky429", "#score=5 #flaky500"),       # win after retries
    ("Does black tea have caffeine?", "Yes.", "#score=5", "#score=1 #down"),           # base fails while down
]


def _predictions(path: Path, rows=ROWS) -> str:
    path.write_text("".join(json.dumps({"prompt": p, "reference": r, "prediction": t, "base_prediction": b},
                                       ensure_ascii=False) + "\n" for p, r, t, b in rows), encoding="utf-8")
    return str(path)


def _judge_args(url: str, tmp_path: Path, out: str, *extra: str) -> list[str]:
    return ["--judge", url, "--judge-model", "stub-judge", "--judge-cache", str(tmp_path / "cache"),
            "--judge-retries", "3", "--output", str(tmp_path / out), *extra]


def _results(tmp_path: Path, out: str) -> tuple[dict, list[dict]]:
    results = json.loads((tmp_path / out / "eval_results.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (tmp_path / out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    return results, rows


def test_scores_swaps_ties_failures_retries_and_the_cache(stub, tmp_path, capsys, monkeypatch):
    url, script = stub
    monkeypatch.setenv("STUB_JUDGE_KEY", "sk-very-secret-123")
    data = _predictions(tmp_path / "answers.jsonl")
    args = ["eval", "--predictions", data, "--judge-api-key-env", "STUB_JUDGE_KEY"]
    assert main(args + _judge_args(url, tmp_path, "first")) == 0
    printed = capsys.readouterr()
    judge = _results(tmp_path, "first")[0]["judge"]
    rows = _results(tmp_path, "first")[1]

    tuned, base = judge["single"]["tuned"], judge["single"]["base"]
    assert tuned["mean"] == pytest.approx((8 + 3 + 7 + 9 + 6 + 5) / 6) and tuned["scored"] == 6
    assert (tuned["unparseable"], tuned["failed"]) == (1, 0)
    assert base["mean"] == pytest.approx((4 + 6 + 7 + 2 + 5 + 5) / 6) and (base["unparseable"], base["failed"]) == (0, 1)
    assert tuned["ci95"][0] < tuned["mean"] < tuned["ci95"][1]
    pair = judge["pairwise"]
    assert (pair["first"], pair["second"]) == ("tuned", "base")
    assert pair["counts"] == {"win": 2, "tie": 2, "loss": 1} and pair["rates"]["win"] == pytest.approx(0.4)
    assert (pair["inconsistent_to_tie"], pair["unparseable"], pair["failed"], pair["judged"]) == (1, 1, 1, 5)
    assert [r["judge"]["pairwise"]["outcome"] for r in rows] == ["win", "loss", "tie", "tie", "unparseable", "win",
                                                                 "failed"]
    assert [r["judge"]["language"] for r in rows] == ["en", "en", "zh", "en", "en", "zh", "en"]
    # 7 rows x (2 grades + 2 orders) requests, less two: row 3's two answers are the same, so its two grade
    # requests are one request, and so are its two orders; each is asked once.
    # Retries: 1 + 2 + 3 + 3 (row 6), 3 x 3 for the 3 requests that fail
    assert judge["requests"] == {"sent": 26, "cached": 0, "retries": 18, "failed": 3}
    assert len(script.calls) == 26 + 18
    # the judge's reasons and the rubric are in the files; the unparseable answer is kept, not dropped
    assert rows[0]["judge"]["single"]["tuned"]["reason"] == "Reasons.\nRating: [[8]]"
    assert rows[2]["judge"]["single"]["tuned"]["reason"].endswith("评分：[[7]]")
    assert rows[4]["judge"]["single"]["tuned"] == {"status": "unparseable", "score": None,
                                                   "reason": "I cannot decide between these."}
    assert "Correctness" in judge["rubric"]["en"] and "正确性" in judge["rubric"]["zh"]
    swapped = rows[3]["judge"]["pairwise"]["verdicts"]
    assert [(v["a"], v["verdict"]) for v in swapped] == [("tuned", "A"), ("base", "A")]
    # what the terminal shows
    assert "win 0.40 [" in printed.out and "unparseable 1, failed 1" in printed.out
    assert "order-dependent verdicts counted as ties" in printed.out and "run the same command again" in printed.out
    # the key went to the server, and nowhere else
    assert {auth for _, auth in script.calls} == {"Bearer sk-very-secret-123"}
    written = [p.read_text(encoding="utf-8") for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any("sk-very-secret" in text for text in written)
    assert "sk-very-secret" not in printed.out + printed.err and judge["api_key_env"] == "STUB_JUDGE_KEY"

    # the judge is back up: a re-run sends only the 3 requests that failed, the rest come from the cache
    script.down = False
    before = len(script.calls)
    assert main(args + _judge_args(url, tmp_path, "second")) == 0
    again = _results(tmp_path, "second")[0]["judge"]
    assert again["requests"] == {"sent": 3, "cached": 23, "retries": 0, "failed": 0}
    assert len(script.calls) - before == 3 and again["pairwise"]["counts"] == {"win": 3, "tie": 2, "loss": 1}
    # and once more: nothing is sent at all
    before = len(script.calls)
    assert main(args + _judge_args(url, tmp_path, "third")) == 0
    assert len(script.calls) == before
    assert _results(tmp_path, "third")[0]["judge"]["requests"]["sent"] == 0


def test_a_killed_evaluation_resumes_from_the_cache(stub, tmp_path):
    url, script = stub
    rows = [(f"Question {i}?", "Answer.", f"#score={i + 2}", "-") for i in range(4)]
    rows.append(("Last question #slow?", "Answer.", "#score=9", "-"))
    data = _predictions(tmp_path / "answers.jsonl", rows)
    args = ["eval", "--predictions", data, "--judge-mode", "single", "--judge-concurrency", "1"]
    # base_prediction "-" exists, so single mode grades both sides: 10 requests, the slow row's two last
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge.cli", *args, *_judge_args(url, tmp_path, "killed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        assert script.slow_seen.wait(120), f"the evaluation never reached the slow row: {proc.stderr}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    answered = len(script.calls) - 1  # every request before the hanging one was answered and cached
    assert answered == 8 and not (tmp_path / "killed").exists()
    script.slow = False
    before = len(script.calls)
    assert main(args + _judge_args(url, tmp_path, "resumed")) == 0
    judge = _results(tmp_path, "resumed")[0]["judge"]
    assert judge["requests"]["cached"] == 8 and judge["requests"]["sent"] == 2 and len(script.calls) - before == 2
    assert judge["single"]["tuned"]["mean"] == pytest.approx((2 + 3 + 4 + 5 + 9) / 5)


def test_the_concurrency_limit_and_a_request_that_is_not_retried(stub, tmp_path):
    url, script = stub
    rows = [(f"Question {i}? #pause", "Answer.", f"#score={i + 1}", "-") for i in range(8)]
    rows.append(("Broken #bad400", "Answer.", "#score=9", "-"))
    data = _predictions(tmp_path / "answers.jsonl", rows)
    args = ["eval", "--predictions", data, "--judge-mode", "single", "--judge-concurrency", "3"]
    assert main(args + _judge_args(url, tmp_path, "out")) == 0
    assert script.most_in_flight == 3  # 16 slow requests, never more than 3 at once (and the 3 are used)
    judge = _results(tmp_path, "out")[0]["judge"]
    # a 400 is this request's own fault: failed at once, not retried; the other 16 answered
    assert judge["requests"] == {"sent": 18, "cached": 0, "retries": 0, "failed": 2} and len(script.calls) == 18
    assert judge["single"]["tuned"]["failed"] == 1 and judge["single"]["tuned"]["scored"] == 8


def test_a_refused_key_stops_with_a_clear_message(stub, tmp_path, capsys, monkeypatch):
    url, script = stub
    script.require_key = "right"
    monkeypatch.setenv("STUB_JUDGE_KEY", "wrong")
    data = _predictions(tmp_path / "answers.jsonl", ROWS[:2])
    args = ["eval", "--predictions", data, "--judge-api-key-env", "STUB_JUDGE_KEY", "--judge-concurrency", "1"]
    assert main(args + _judge_args(url, tmp_path, "out")) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "API key was refused" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and len(script.calls) == 1  # stopped at the first refusal


@pytest.mark.parametrize("args, words", [
    (["--judge-model", "m"], "only with --judge URL"),
    (["--judge", "ftp://x"], "expected an http(s) URL"),
    (["--judge", "http://127.0.0.1:9/v1"], "needs --judge-model"),
    (["--judge", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-api-key-env", "TF_NO_SUCH_VAR_XYZ"],
     "TF_NO_SUCH_VAR_XYZ: that environment variable is not set"),
    (["--judge", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-concurrency", "0"], "must be >= 1"),
    (["--judge", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-template", "/no/such.yaml"], "no such file"),
])
def test_bad_judge_options_exit_2_before_anything_runs(tmp_path, capsys, args, words):
    data = _predictions(tmp_path / "answers.jsonl", ROWS[:1])
    assert main(["eval", "--predictions", data, "--output", str(tmp_path / "out"), *args]) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_predictions_file_without_questions_names_the_line(stub, tmp_path, capsys):
    url, _ = stub
    path = tmp_path / "answers.jsonl"
    path.write_text('{"prediction": "a", "reference": "b", "prompt": "q"}\n{"prediction": "a", "reference": "b"}\n')
    assert main(["eval", "--predictions", str(path), *_judge_args(url, tmp_path, "out")]) == 2
    assert f"{path}, line 2, field 'prompt'" in capsys.readouterr().err
