"""One training command for the CLI, the Python API and a service task: the same after-training hook from each, and
no module reaches a command by rewriting ``sys.argv``."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import tuneforge
from tuneforge.cli import main
from tuneforge.config import from_dict
from tuneforge.evaluation.during_training import generation_hook
from tuneforge.training.run import RunSummary

SRC = Path(tuneforge.__file__).resolve().parent


def _assigns_sys_argv(tree: ast.AST) -> list[int]:
    """Lines that assign ``sys.argv`` (or an item or slice of it), also through ``setattr(sys, "argv", ...)``."""
    def is_argv(node: ast.AST) -> bool:
        while isinstance(node, ast.Subscript):
            node = node.value
        return isinstance(node, ast.Attribute) and node.attr == "argv" and \
            isinstance(node.value, ast.Name) and node.value.id == "sys"

    lines = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        if any(is_argv(t) for t in targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" and \
                len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "argv":
            lines.append(node.lineno)
    return lines


def test_the_argv_finder_finds_each_way_of_assigning_it():
    code = "import sys\nsys.argv = ['x']\nsys.argv[1:] = []\nsetattr(sys, 'argv', [])\nargv = sys.argv\n"
    assert _assigns_sys_argv(ast.parse(code)) == [2, 3, 4]


def test_no_module_rewrites_sys_argv():
    found = {str(p.relative_to(SRC)): lines for p in sorted(SRC.rglob("*.py"))
             if (lines := _assigns_sys_argv(ast.parse(p.read_text(encoding="utf-8"))))}
    assert found == {}


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """The engine's run and the after-training evaluation replaced by recorders (no model is trained)."""
    calls: list[tuple] = []

    def run_training(cfg, progress=True, step_hooks=()):
        calls.append(("train", cfg.output_dir, tuple(step_hooks)))
        return RunSummary(cfg.output_dir, cfg.method, 2, 1.0, model=object(),
                          run_evals=[{"step": 0, "eval_loss": 2.0}, {"step": 2, "eval_loss": 1.5}])

    def evaluate_after_training(cfg):
        calls.append(("evaluate", cfg.output_dir))

    monkeypatch.setattr("tuneforge.training.run.run_training", run_training)
    monkeypatch.setattr("tuneforge.evaluation.after_training.evaluate_after_training", evaluate_after_training)
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    return calls, str(data)


def test_the_after_training_hook_is_the_same_from_the_cli_and_the_api(fake_run, tmp_path, capsys):
    calls, data = fake_run
    keys = [f"train_data={data}", "model=builtin:toy", "eval_after_training=true"]
    assert main(["train", *keys, f"output_dir={tmp_path / 'cli'}"]) == 0
    cli_out = capsys.readouterr().out
    summary = tuneforge.train(None, [*keys, f"output_dir={tmp_path / 'api'}"])
    api_out = capsys.readouterr().out
    assert calls == [("train", str(tmp_path / "cli"), (generation_hook,)), ("evaluate", str(tmp_path / "cli")),
                     ("train", str(tmp_path / "api"), (generation_hook,)), ("evaluate", str(tmp_path / "api"))]
    line = "eval_loss: 2.0000 at start -> 1.5000 at the end (step 2)"
    assert line in cli_out and line in api_out
    assert summary.model is not None  # the API returns the trained model; the command drops it before evaluating


def test_the_api_applies_overrides_to_a_mapping_and_a_config(fake_run, tmp_path):
    calls, data = fake_run
    base = {"train_data": data, "model": "builtin:toy", "output_dir": str(tmp_path / "a")}
    tuneforge.train(base, [f"output_dir={tmp_path / 'b'}"])
    tuneforge.train(base)  # the mapping as given
    tuneforge.train(from_dict(base), [f"output_dir={tmp_path / 'c'}"])
    assert [c[1] for c in calls if c[0] == "train"] == [str(tmp_path / "b"), str(tmp_path / "a"), str(tmp_path / "c")]
