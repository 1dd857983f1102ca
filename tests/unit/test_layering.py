"""The floors of src/tuneforge stand on each other one way (docs/architecture.md, "The floors").

Read from the source (AST; every import counts: at module level, inside a function, or under
``if TYPE_CHECKING``), each module belongs to one floor, and imports only from its own floor or lower ones:

    apps                      the composed console app and the ``tuneforge console`` command
    console                   pages over the service object it is handed
    service | serving         the task service; the OpenAI-compatible server (peers: neither imports the other)
    commands                  the CLI, ``tuneforge.train``, evaluation, tools, export
    engine                    config, data, models, losses, training, the run directory, the gallery
    base                      errors, path text, storage, the HTTP guard

Besides that, nothing outside the service imports its internals: the console and serving may import only the
service's public face (``PUBLIC_FACE``); only ``apps`` composes the service's own modules.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import tuneforge

PACKAGE_DIR = Path(tuneforge.__file__).resolve().parent

FLOORS: dict[str, tuple[str, ...]] = {
    "base": ("errors", "pathtext", "storage", "httpguard"),
    "engine": ("config", "preflight", "data", "models", "losses", "preference_losses", "kto_losses",
               "reward_losses", "grpo_loss", "rewards", "training", "run_outputs", "rundir", "monitor", "plots",
               "machine_check", "gallery"),
    "commands": ("__init__", "cli", "train_command", "evaluation", "tools", "export"),
    "service": ("service",),
    "serving": ("serving",),
    "console": ("console",),
    "apps": ("apps",),
}
HEIGHT = {"base": 0, "engine": 1, "commands": 2, "service": 3, "serving": 3, "console": 4, "apps": 5}
# What of the service a module outside it may import: the package root (its vocabularies, importing nothing heavy)
# and its client (a running service over HTTP, or a task read from the service's home).
PUBLIC_FACE = frozenset({"tuneforge.service", "tuneforge.service.client"})
COMPOSER = "apps"  # the one floor that builds the service from its parts


def module_name(path: Path) -> str:
    parts = ("tuneforge",) + path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(name: str, tree: ast.AST, is_package: bool, modules: set[str]) -> set[str]:
    """Every tuneforge module ``name`` imports: ``from .x import y`` gives ``x.y`` when y is a module, else ``x``
    (``from . import sibling`` only walks through the package; ``__version__`` is no dependency)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                stem = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            subs = {f"{stem}.{alias.name}" for alias in node.names}
            found |= subs & modules
            if any(s not in modules and not s.endswith(".__version__") for s in subs):
                found.add(stem)
    return {f for f in found if f == "tuneforge" or f.startswith("tuneforge.")}


@functools.lru_cache(maxsize=None)
def _sources() -> dict[str, tuple[str, bool]]:
    return {module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
            for p in sorted(PACKAGE_DIR.rglob("*.py"))}


@functools.lru_cache(maxsize=None)
def _imports_of(name: str, source: str, is_package: bool) -> frozenset[str]:
    return frozenset(imported(name, ast.parse(source), is_package, set(_sources())))


def source_imports(planted: dict[str, str] | None = None) -> dict[str, set[str]]:
    """Module -> the tuneforge modules it imports; ``planted`` adds source lines to modules (files untouched)."""
    return {name: set(_imports_of(name, text + "\n" + (planted or {}).get(name, ""), is_package))
            for name, (text, is_package) in _sources().items()}


def floor_of(module: str) -> str | None:
    unit = module.split(".")[1] if "." in module else "__init__"
    return next((floor for floor, units in FLOORS.items() if unit in units), None)


def _known(target: str, modules: set[str]) -> str | None:
    """The module an import names (``tuneforge.x.y`` may be the name ``y`` in module ``tuneforge.x``)."""
    return target if target in modules else (target.rpartition(".")[0] if target.rpartition(".")[0] in modules else None)


def violations(imports: dict[str, set[str]]) -> list[str]:
    """Every import that goes down-to-up, sideways between peer floors, or into the service's internals."""
    modules = set(imports)
    found = []
    for source, targets in sorted(imports.items()):
        here = floor_of(source)
        for target in sorted({t for t in (_known(t, modules) for t in targets) if t}):
            there = floor_of(target)
            if here is None or there is None or here == there:
                continue
            if HEIGHT[there] > HEIGHT[here] or (HEIGHT[there] == HEIGHT[here] and there != "service"):
                found.append(f"{source} ({here}) imports {target} ({there}): a floor imports only the floors below")
            elif there == "service" and here != COMPOSER and target not in PUBLIC_FACE:
                found.append(f"{source} ({here}) imports {target}: outside the service only {sorted(PUBLIC_FACE)}")
    return found


def floor_cycles(imports: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of floors that import each other (directly)."""
    modules = set(imports)
    edges = {(floor_of(s), floor_of(t)) for s, ts in imports.items() for t in (_known(t, modules) for t in ts) if t}
    edges = {(a, b) for a, b in edges if a and b and a != b}
    return sorted((a, b) for a, b in edges if (b, a) in edges and a < b)


def test_every_module_has_a_floor():
    unplaced = sorted({m for m in source_imports() if floor_of(m) is None})
    assert unplaced == [], f"put these in a floor of FLOORS (tests/unit/test_layering.py): {unplaced}"


def test_floors_stand_one_way_and_the_service_keeps_its_internals():
    assert violations(source_imports()) == []


def test_no_two_floors_import_each_other():
    assert floor_cycles(source_imports()) == []


def test_the_engine_never_imports_the_floors_above():
    above = ("tuneforge.service", "tuneforge.console", "tuneforge.serving", "tuneforge.apps", "tuneforge.evaluation")
    offending = {m: sorted(t for t in targets if t.startswith(above))
                 for m, targets in source_imports().items() if floor_of(m) in ("base", "engine")}
    assert {m: t for m, t in offending.items() if t} == {}


def _planted(module: str, statement: str) -> dict[str, set[str]]:
    return source_imports({module: statement})


def test_a_planted_import_is_caught():
    """The checks above can fail: each kind of wrong import, planted, is named."""
    console = violations(_planted("tuneforge.console.pages", "from ..service.deploy import has_model"))
    assert console == ["tuneforge.console.pages (console) imports tuneforge.service.deploy: outside the service "
                       f"only {sorted(PUBLIC_FACE)}"]
    serving = violations(_planted("tuneforge.serving.cli", "from ..service.store import Store"))
    assert [v.split(" imports ")[1] for v in serving] == [
        f"tuneforge.service.store: outside the service only {sorted(PUBLIC_FACE)}"]
    engine = _planted("tuneforge.training.loop", "from ..console import mount")
    assert any(v.startswith("tuneforge.training.loop (engine) imports tuneforge.console") for v in violations(engine))
    assert ("console", "engine") in floor_cycles(engine)
    sideways = violations(_planted("tuneforge.service.core", "import tuneforge.serving.batcher"))
    assert sideways == ["tuneforge.service.core (service) imports tuneforge.serving.batcher (serving): a floor "
                        "imports only the floors below"]
    assert violations(_planted("tuneforge.serving.cli", "from ..service.client import read_task")) == []
