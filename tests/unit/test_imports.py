"""No import cycles in src/tuneforge, and every module imports on its own.

The graph counts every import of a tuneforge module, at module level or inside a function: a lazy import
that closes a loop is still a cycle (it only moves the failure to run time). An intentional exception
would have to be listed here with its reason; there is none.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import tuneforge

PACKAGE_DIR = Path(tuneforge.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = ("tuneforge",) + path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """tuneforge modules that ``name`` imports anywhere in its source (``from . import x`` names submodule x)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block)
                   for statement in block.body for n in ast.walk(statement)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # ``if TYPE_CHECKING:`` imports never run
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    # A package's own __init__ runs before any of its modules; edges to it would only restate that.
    return {name: {t for t in _imports(name, path, known) if not name.startswith(t + ".")}
            for name, path in modules.items()}


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_the_engine_does_not_import_the_service_layer():
    service_layer = ("tuneforge.service", "tuneforge.console", "tuneforge.serving", "tuneforge.evaluation",
                     "tuneforge.gallery")
    engine = ("tuneforge.config", "tuneforge.preflight", "tuneforge.data", "tuneforge.models", "tuneforge.losses",
              "tuneforge.preference_losses", "tuneforge.training")
    offending = {name: sorted(t for t in targets if t.startswith(service_layer))
                 for name, targets in import_graph().items() if name.startswith(engine)}
    assert {k: v for k, v in offending.items() if v} == {}


def test_every_module_imports_on_its_own():
    """Each module imported with no tuneforge module loaded before it (one interpreter; third-party
    libraries stay loaded between modules, which changes nothing about tuneforge's own import order)."""
    script = textwrap.dedent("""
        import importlib, sys, traceback
        failed = []
        for name in sys.argv[1:]:
            for loaded in [m for m in sys.modules if m == "tuneforge" or m.startswith("tuneforge.")]:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except Exception:
                failed.append(name + ": " + traceback.format_exc(limit=3))
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
    """)
    names = sorted(n for n in _modules() if not n.endswith("__main__"))
    done = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_the_config_loads_without_torch():
    """``tuneforge train --help`` and config errors answer without waiting for torch to import."""
    done = subprocess.run([sys.executable, "-c", "import sys, tuneforge.config; print('torch' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
