"""The training-curves plot. (The memory estimate's tests moved to tests/unit/models/test_memory.py.)"""
from __future__ import annotations


def test_curves_plot_from_metrics(tmp_path):
    from tuneforge.plots import plot_metrics_file

    metrics = tmp_path / "metrics.jsonl"
    rows = [{"event": "start", "step": 0, "host_rss_gib": 0.5}, {"step": 0, "eval_loss": 3.0, "host_rss_gib": 0.6},
            {"step": 1, "loss": 2.5, "learning_rate": 1e-4, "host_rss_gib": 0.7}]
    metrics.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows) + '{"torn', encoding="utf-8")
    out = plot_metrics_file(metrics)
    assert out == tmp_path / "training_curves.png" and out.read_bytes()[:4] == b"\x89PNG"
