""""engine" names one thing in src/tuneforge: the training engine floor (config, data, models, losses, training,
the run directory; docs/architecture.md, "The floors"). The distributed setup is the *parallelism*
(``training/parallel.py``: ``parallelism_name``, ``check_parallelism``), the server's generation loop is the
*batcher* (``serving/batcher.py``), the service's start-up imports are ``service/preimport.py``.

What may still say "engine" are strings other programs or files read, never Python names: the ``"engine"`` key
of metrics.jsonl's start record, the ``engine``/``engine_name`` fields of ``tuneforge plan --json``, the DeepSpeed
checkpoint folder ``engine/`` and ``tuneforge serve --engine``'s flag. A string literal is not an identifier, so
those pass without an exception list.
"""
from __future__ import annotations

import ast
from pathlib import Path

import tuneforge

SRC = Path(tuneforge.__file__).parent

# Identifiers allowed to contain "engine": ones that name the training engine floor itself. None exists today;
# a name added here must be that sense (e.g. ``ENGINE_PACKAGES`` listing the floor's packages).
ALLOWED: frozenset[str] = frozenset()


def _names(tree: ast.AST):
    """(line, identifier) for every name the module defines or uses: functions, classes, variables, attributes,
    arguments, keyword arguments, imported modules and their aliases."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.lineno, node.name
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.arg):
            yield node.lineno, node.arg
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.value.lineno, node.arg
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for part in (getattr(node, "module", None) or "").split("."):
                yield node.lineno, part
            for alias in node.names:
                for part in alias.name.split(".") + [alias.asname or ""]:
                    yield node.lineno, part
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                yield node.lineno, name
        elif isinstance(node, ast.ExceptHandler) and node.name:
            yield node.lineno, node.name


def engine_names(root: Path = SRC) -> list[str]:
    """``path:line: name`` for each identifier (or module/package path part) that says "engine" outside ALLOWED."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        for part in rel.with_suffix("").parts:
            if "engine" in part.lower():
                found.append(f"{rel}: module name {part!r}")
        for line, name in _names(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if "engine" in name.lower() and name not in ALLOWED:
                found.append(f"{rel}:{line}: {name}")
    return sorted(set(found))


def test_no_python_name_in_src_says_engine_in_another_sense():
    assert engine_names() == [], "rename (parallelism, batcher, ...) or justify in ALLOWED"


def test_the_check_finds_each_kind_of_name(tmp_path):
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "engine.py").write_text(
        "from .parallel import engine_name as name\n"
        "import deepspeed.runtime.engine\n"
        "class Engine:\n"
        "    def start(self, engine_kind): ...\n"
        "x = state.engines\n"
        "f(engine=1)\n"
        "record = {'engine': 'DDP'}\n")  # a recorded key, as metrics.jsonl's start record has: allowed
    found = engine_names(tmp_path)
    assert found == sorted(["serving/engine.py: module name 'engine'", "serving/engine.py:1: engine_name",
                            "serving/engine.py:2: engine", "serving/engine.py:3: Engine",
                            "serving/engine.py:4: engine_kind", "serving/engine.py:5: engines",
                            "serving/engine.py:6: engine"])
