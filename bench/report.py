"""The comparison table from bench results (JSON lines written by run_bench.py).

    python bench/report.py bench/out/results.jsonl [--last N] [--peak-tflops 989]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# MFU = factor x parameters x real tokens/s / peak: forward+backward of frozen weights (LoRA) ~ 4 flops
# per parameter and token, with weight gradients (full) ~ 6.
MFU_FACTOR = {"lora": 4, "qlora4": 4, "full": 6}


def fmt(x, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def mfu(run: dict, method: str, peak_tflops: float) -> float | None:
    params = (run.get("extra") or {}).get("params")
    if not params or not run.get("tok_per_s"):
        return None
    return MFU_FACTOR[method] * params * run["tok_per_s"] / (peak_tflops * 1e12)


def table(results: list[dict], peak_tflops: float = 989.0) -> str:
    head = (f"{'run':<34}{'TRL wall s':>11}{'tf wall s':>10}{'wall x':>8}{'TRL RSS':>9}{'tf RSS':>8}{'RSS x':>7}"
            f"{'TRL tok/s':>11}{'tf tok/s':>10}{'tok/s x':>9}")
    lines = [head, "-" * len(head)]
    for r in results:
        trl, tf = r.get("trl") or {}, r.get("tuneforge") or {}
        if not tf:
            continue
        label = r["label"] + (" " + " ".join(r.get("tuneforge_overrides") or []) if r.get("tuneforge_overrides") else "")
        if r.get("trl_args"):
            label += " | TRL " + " ".join(r["trl_args"])
        ok = lambda run: run and run.get("returncode") == 0  # noqa: E731
        wall_x = trl["wall_s"] / tf["wall_s"] if ok(trl) and ok(tf) else None
        rss_x = tf["peak_rss_gib"] / trl["peak_rss_gib"] if ok(trl) and ok(tf) else None
        tok_x = tf["tok_per_s"] / trl["tok_per_s"] if ok(trl) and trl.get("tok_per_s") and tf.get("tok_per_s") else None
        lines.append(f"{label:<34}{fmt(trl.get('wall_s')):>11}{fmt(tf.get('wall_s')):>10}{fmt(wall_x, '.2f'):>8}"
                     f"{fmt(trl.get('peak_rss_gib'), '.2f'):>9}{fmt(tf.get('peak_rss_gib'), '.2f'):>8}{fmt(rss_x, '.2f'):>7}"
                     f"{fmt(trl.get('tok_per_s'), '.0f'):>11}{fmt(tf.get('tok_per_s'), '.0f'):>10}{fmt(tok_x, '.2f'):>9}")
        for who, run in (("TRL", trl), ("tuneforge", tf)):
            if run and run.get("returncode"):
                lines.append(f"{'':<34}{who} FAILED (exit {run['returncode']}): {run.get('log')}")
        if trl.get("gpu_peak_gib") or tf.get("gpu_peak_gib"):
            m_trl, m_tf = mfu(trl, r["method"], peak_tflops), mfu(tf, r["method"], peak_tflops)
            lines.append(f"{'':<34}GPU peak GiB: TRL {fmt(trl.get('gpu_peak_gib'), '.2f')}, tuneforge "
                         f"{fmt(tf.get('gpu_peak_gib'), '.2f')}; MFU: TRL {fmt(m_trl and 100 * m_trl, '.1f')}%, "
                         f"tuneforge {fmt(m_tf and 100 * m_tf, '.1f')}%")
    lines.append("wall x = TRL wall / tuneforge wall (higher is better); RSS x = tuneforge peak RSS / TRL peak RSS "
                 "(lower is better); whole processes; tok/s = real (non-pad) tokens/s after the warm-up steps.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="?", default=str(Path(__file__).resolve().parent / "out" / "results.jsonl"))
    ap.add_argument("--last", type=int, default=0, help="only the last N results")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100/H200: 989)")
    a = ap.parse_args(argv)
    rows = [json.loads(line) for line in Path(a.results).read_text().splitlines() if line.strip()]
    print(table(rows[-a.last:] if a.last else rows, a.peak_tflops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
