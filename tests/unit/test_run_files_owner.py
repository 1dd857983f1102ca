"""Only ``tuneforge.rundir.names`` spells a run directory's file names (issue 24: the run directory has one owner).

Walks every module of src/tuneforge and fails on a string constant (docstrings excluded; comments are not in
the syntax tree) that is a run-file name: equal to one (``"metrics.jsonl"``), a path ending in one
(``"out/metrics.jsonl"``), or a name built from a prefix (``"checkpoint-" ...``, ``"export-gguf-f16"``). Names
that are ordinary words elsewhere (``eval`` is a command, ``tensorboard`` a ``report_to`` value) count only as
path parts: ``run_dir / "eval"`` or ``"eval/"...``. Hugging Face's names for a saved model (``config.json``,
``adapter_model.safetensors`` ...) are that format's, used for any model directory, and are not counted.
"""
from __future__ import annotations

import ast
from pathlib import Path

import tuneforge
from tuneforge.rundir import names

PACKAGE_DIR = Path(tuneforge.__file__).resolve().parent
OWNER = PACKAGE_DIR / "rundir" / "names.py"
PREFIXES = (names.CHECKPOINT_PREFIX, names.EXPORT_PREFIX)
# Ordinary words, or names other folders use too (the data cache has its own manifest.json): a path part only.
WORDS = {names.EVAL_DIR, names.TENSORBOARD_DIR, names.MANIFEST}


def run_file_names() -> set[str]:
    found: set[str] = set()
    for key, value in vars(names).items():
        if not key.isupper() or key == "MODEL_FILES":
            continue
        values = value if isinstance(value, tuple) else (value,)
        found |= {v for v in values if isinstance(v, str) and v not in names.MODEL_FILES}
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _path_operands(tree: ast.AST) -> set[int]:
    """String constants used as a path part: ``x / "name"`` or ``"name" / x``."""
    return {id(side) for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
            for side in (node.left, node.right) if isinstance(side, ast.Constant)}


def spells_run_file(text: str, as_path: bool, known: set[str]) -> bool:
    last = text.rstrip("/").rpartition("/")[2]
    path_like = as_path or "/" in text
    if " " in text:
        return False  # prose (a message may name a file; it is not how code finds one)
    if last in known - WORDS or (path_like and last in WORDS) or (text.startswith(tuple(w + "/" for w in WORDS))):
        return True
    return last.startswith(PREFIXES)


def violations(path: Path, known: set[str]) -> list[str]:
    """``file:line: 'literal'`` for every run-file name ``path`` spells."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip, as_path = _docstrings(tree), _path_operands(tree)
    return [f"{path.name}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and spells_run_file(node.value, id(node) in as_path, known)]


def test_the_names_module_is_the_only_speller():
    known = run_file_names()
    found = [f"{p.parent.relative_to(PACKAGE_DIR.parent)}/{v}" for p in sorted(PACKAGE_DIR.rglob("*.py"))
             if p != OWNER for v in violations(p, known)]
    assert not found, "run-file names spelled outside tuneforge/rundir/names.py (import them from " \
                      "tuneforge.rundir):\n" + "\n".join(found)


def test_the_check_sees_the_ways_a_name_is_spelled(tmp_path):
    known = run_file_names()
    planted = tmp_path / "planted.py"
    planted.write_text('"""metrics.jsonl in a docstring is fine."""\n'
                       'a = "metrics.jsonl"\nb = out / "eval"\nc = f"checkpoint-{step}"\nd = "runs/x/train.log"\n'
                       'e = "export-gguf-f16"\nf = "an error about metrics.jsonl"\ng = ["eval", "--data"]\n'
                       'h = "config.json"\n', encoding="utf-8")
    lines = sorted(int(v.split(":")[1]) for v in violations(planted, known))
    assert lines == [2, 3, 4, 5, 6]  # not the docstring, the message, the command word or Hugging Face's name
