"""The benchmark harness's parsing (bench/run_bench.py, bench/report.py): hand-worked inputs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
run_bench = pytest.importorskip("run_bench")
report = pytest.importorskip("report")


def test_steady_tokens_per_second_skips_warmup(tmp_path):
    recs = [{"event": "start", "step": 0, "time": 0.0},
            {"step": 1, "loss": 1.0, "tokens_per_second": 999.0, "time": 10.0},   # warm-up, excluded
            {"step": 2, "loss": 1.0, "tokens_per_second": 100.0, "time": 12.0},   # 200 tokens in 2 s
            {"step": 3, "loss": 1.0, "tokens_per_second": 50.0, "time": 16.0, "gpu_peak_allocated_gib": 1.5},  # 200 in 4 s
            {"event": "end", "step": 3, "tokens_per_second": 1.0, "time": 17.0}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    tok_s, sec_step, gpu = run_bench.steady_tokens_per_second(path, warm=1)
    assert tok_s == pytest.approx(400 / 6)
    assert sec_step == pytest.approx(3.0)
    assert gpu == 1.5


def test_table_ratios():
    res = {"label": "small SFT lora", "method": "lora",
           "trl": {"wall_s": 60.0, "peak_rss_gib": 3.0, "tok_per_s": 300.0, "returncode": 0},
           "tuneforge": {"wall_s": 20.0, "peak_rss_gib": 1.5, "tok_per_s": 900.0, "returncode": 0}}
    line = report.table([res]).splitlines()[2]
    assert line.split()[-7:] == ["3.00", "3.00", "1.50", "0.50", "300", "900", "3.00"]


def test_mfu():
    run = {"tok_per_s": 1000.0, "extra": {"params": 7_000_000_000}}
    assert report.mfu(run, "lora", 989.0) == pytest.approx(4 * 7e9 * 1000 / 989e12)
    assert report.mfu(run, "full", 989.0) == pytest.approx(6 * 7e9 * 1000 / 989e12)


def test_trl_side_rows_follow_the_protocol():
    """The TRL side's synthetic rows: lengths inside the protocol's ranges, real tokens = words + EOS capped."""
    trl_side = pytest.importorskip("trl_side")
    rows, real = trl_side.synthetic_rows("sft", 40, 4096, max_length=512)
    again, _ = trl_side.synthetic_rows("sft", 40, 4096, max_length=512)
    assert rows == again  # seeded: TRL and tuneforge train on the same rows
    for row, n in zip(rows, real):
        prompt, answer = len(row["prompt"].split()), len(row["completion"].split())
        assert 16 <= prompt <= 256 and 16 <= answer <= 768
        assert n == min(512, prompt + answer + 1)
    pairs, pair_real = trl_side.synthetic_rows("dpo", 10, 4096, max_length=300)
    for row, n in zip(pairs, pair_real):
        p, c, r = (len(row[k].split()) for k in ("prompt", "chosen", "rejected"))
        assert 16 <= c <= 512 and 16 <= r <= 512
        assert n == min(300, p + c + 1) + min(300, p + r + 1)
