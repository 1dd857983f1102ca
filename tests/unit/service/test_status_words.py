"""A task's statuses are spelled once, in ``tuneforge.service`` (its ``__init__.py``): no other module of the
service re-spells one as a string, compared or assigned, in Python or in SQL text (the schema names no status)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import tuneforge.service as service

SERVICE_DIR = Path(service.__file__).resolve().parent
OWNER = SERVICE_DIR / "__init__.py"
SQL_WORD = re.compile(r"'(%s)'" % "|".join(service.STATUSES))  # WHERE status = 'queued'


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose may name a status)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def status_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string in ``source`` that is a task status, or holds one quoted as in SQL."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and (node.value in service.STATUSES or SQL_WORD.search(node.value))]


def test_the_scanner_finds_a_planted_status():
    planted = ('"""A module naming running in prose."""\n'
               'if task["status"] == "running":\n'
               '    sql = "WHERE status = \'queued\'"\n')
    assert status_literals(planted) == [(2, "running"), (3, "WHERE status = 'queued'")]


def test_no_module_of_the_service_respells_a_task_status():
    found = [f"{path.relative_to(SERVICE_DIR.parent)}:{line}: {text!r}"
             for path in sorted(SERVICE_DIR.rglob("*.py")) if path != OWNER
             for line, text in status_literals(path.read_text(encoding="utf-8"))]
    assert not found, ("task statuses re-spelled outside tuneforge/service/__init__.py (use its constants: "
                       "QUEUED, RUNNING, ..., FINAL_STATUSES, RESUMABLE):\n" + "\n".join(found))
