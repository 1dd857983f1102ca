"""``tuneforge eval RUN --data FILE --judge URL``: tuned vs base (``--compare-base``) and run A vs run B
(``--compare``) on toy LoRA runs, judged by the scripted judge (conftest.py) whose verdicts follow a known
rule of the answers; and a real ``tuneforge serve`` of the toy model as the judge, whose answers carry no
verdict and must be counted as unparseable."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tuneforge.cli import main

from .conftest import stub_preference, stub_score  # noqa: F401 (conftest is this directory's module)

ROWS = [{"instruction": "菊花茶怎么泡？", "output": "用热水冲泡三分钟。"},
        {"instruction": "How long do I steep mint tea?", "output": "Steep it for five minutes."},
        {"instruction": "Can I drink rose tea daily?", "output": "Yes, in moderation."}]


def _lora_run(out: Path, seed: int) -> Path:
    """What `tuneforge train` leaves for a toy LoRA run (random non-zero adapter: answers differ from the base)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneforge.models import builtin
    from tuneforge.rundir import CONFIG_FILE

    base_dir = builtin.save_toy(out / "base_model")
    tokenizer = builtin.toy_tokenizer()
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = get_peft_model(builtin.toy_model(tokenizer), lora)
    model.peft_config["default"].base_model_name_or_path = str(base_dir.resolve())
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    config = dict(training_strategy="sft", model="builtin:toy", lora_dim=8, lora_alpha=16.0, apply_chat_template=True,
                  seq_length=128, per_device_train_batch_size=4, output_dir=str(out))
    (out / CONFIG_FILE).write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge-runs")
    data = root / "val.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    return {"a": _lora_run(root / "a", 1), "b": _lora_run(root / "b", 2), "data": str(data)}


def _expected_outcome(first: str, second: str) -> str:
    forward, swapped = stub_preference(first, second), stub_preference(second, first)
    as_first = {"A": "win", "B": "loss", "C": "tie"}[forward]
    as_second = {"A": "loss", "B": "win", "C": "tie"}[swapped]
    return as_first if as_first == as_second else "tie"


@pytest.mark.parametrize("mode", ["compare-base", "compare"])
def test_tuned_against_base_or_another_run(stub, runs, tmp_path, capsys, mode):
    url, script = stub
    extra = ["--compare-base"] if mode == "compare-base" else ["--compare", str(runs["b"])]
    out = tmp_path / "out"
    assert main(["eval", str(runs["a"]), "--data", runs["data"], "--max-new-tokens", "8", *extra, "--judge", url,
                 "--judge-model", "stub-judge", "--judge-cache", str(tmp_path / "cache"), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    other = "base" if mode == "compare-base" else "compare"
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    judge = json.loads((out / "eval_results.json").read_text(encoding="utf-8"))["judge"]
    tuned, theirs = [r["prediction"] for r in rows], [r[f"{other}_prediction"] for r in rows]
    assert tuned != theirs  # the adapter (or the other run) answers differently
    # every score and outcome is the stub's rule applied to the answers actually generated
    assert [r["judge"]["single"]["tuned"]["score"] for r in rows] == [stub_score(a) for a in tuned]
    assert [r["judge"]["single"][other]["score"] for r in rows] == [stub_score(a) for a in theirs]
    outcomes = [_expected_outcome(a, b) for a, b in zip(tuned, theirs)]
    assert [r["judge"]["pairwise"]["outcome"] for r in rows] == outcomes
    assert judge["pairwise"]["counts"] == {k: outcomes.count(k) for k in ("win", "tie", "loss")}
    assert judge["single"]["tuned"]["mean"] == pytest.approx(sum(map(stub_score, tuned)) / len(tuned))
    assert [r["judge"]["language"] for r in rows] == ["zh", "en", "en"]
    # 2 grades + 2 orders per row, each distinct request sent once (a side that answered like the other shares
    # its grade request)
    distinct = {json.dumps(body, sort_keys=True) for body in script.bodies()}
    assert judge["requests"]["sent"] == len(script.calls) == len(distinct) > len(rows) * 3
    assert f"pairwise tuned vs {other}" in printed and "95% CI" in printed
    if mode == "compare":
        assert "compare" in json.loads((out / "eval_results.json").read_text())["metrics"]


def test_compare_and_compare_base_together_are_refused(runs, tmp_path, capsys):
    assert main(["eval", str(runs["a"]), "--data", runs["data"], "--compare-base", "--compare", str(runs["b"]),
                 "--output", str(tmp_path / "o")]) == 2
    assert "give one" in capsys.readouterr().err
    assert main(["eval", str(runs["a"]), "--data", runs["data"], "--compare", str(tmp_path / "nope"),
                 "--output", str(tmp_path / "o")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["eval", str(runs["a"]), "--data", runs["data"], "--metrics", "loss", "--judge", "http://127.0.0.1:9/v1",
                 "--judge-model", "m", "--output", str(tmp_path / "o")]) == 2
    assert "judges generated answers" in capsys.readouterr().err and not (tmp_path / "o").exists()


def _serve(model_dir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge.cli", "serve", f"toy-judge={model_dir}", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    found: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            match = re.search(r"at (http://127\.0\.0\.1:\d+)/v1", line)
            if match:
                found.append(match.group(1))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 120
    while not found:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not start (rc {proc.poll()}): {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.1)
    return proc, found[0]


def test_a_served_toy_model_as_the_judge(tmp_path, capsys):
    from tuneforge.models import builtin

    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"prompt": r["instruction"], "reference": r["output"],
                                           "prediction": r["output"][:4]}, ensure_ascii=False) + "\n" for r in ROWS),
                       encoding="utf-8")
    proc, url = _serve(builtin.save_toy(tmp_path / "toy"))
    try:
        assert main(["eval", "--predictions", str(answers), "--judge", url + "/v1", "--judge-model", "toy-judge",
                     "--judge-max-tokens", "12", "--judge-cache", str(tmp_path / "cache"),
                     "--output", str(tmp_path / "out")]) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    judge = json.loads((tmp_path / "out" / "eval_results.json").read_text(encoding="utf-8"))["judge"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    # the toy answers noise: no row has a verdict, and every one is counted as unparseable, none dropped
    assert judge["single"]["tuned"] == {**judge["single"]["tuned"], "mean": None, "ci95": None, "scored": 0,
                                        "unparseable": 3, "failed": 0, "rows": 3}
    assert all(r["judge"]["single"]["tuned"]["status"] == "unparseable" and r["judge"]["single"]["tuned"]["reason"]
               for r in rows)
    assert judge["requests"]["sent"] == 3 and "unparseable 3" in capsys.readouterr().out
