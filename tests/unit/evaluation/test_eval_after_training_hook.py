"""``eval_after_training`` is run by the command layer once the run is saved, not by the engine."""
import ast
from pathlib import Path

import tuneforge
from tuneforge.training.run import RunSummary

SRC = Path(tuneforge.__file__).parent


def _hooked(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr("tuneforge.training.run.run_training", lambda cfg, progress=True, **hooks: RunSummary(cfg.output_dir, "lora", 1, 0.5))
    monkeypatch.setattr("tuneforge.evaluation.after_training.evaluate_after_training", lambda cfg, **kw: calls.append(cfg))
    return calls


def test_python_api_runs_it_when_asked(monkeypatch, data, tmp_path):
    calls = _hooked(monkeypatch)
    tuneforge.train({"train_data": data, "output_dir": str(tmp_path / "a")}, progress=False)
    assert calls == []
    tuneforge.train({"train_data": data, "output_dir": str(tmp_path / "b"), "eval_after_training": True}, progress=False)
    assert [c.output_dir for c in calls] == [str(tmp_path / "b")]


def test_the_engine_never_imports_evaluation():
    for package in ("config", "data", "models", "training", "losses.py", "preference_losses.py"):
        for path in ([SRC / package] if package.endswith(".py") else sorted((SRC / package).rglob("*.py"))):
            if not path.is_file():
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    assert "evaluation" not in (node.module or ""), f"{path} imports {node.module}"
