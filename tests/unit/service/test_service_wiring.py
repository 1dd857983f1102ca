"""The service object builds its queue and hands it what it needs; the dependency goes one way (docs/architecture.md,
"The floors"): the worker, the pruner, the sweeps and placement never import ``core`` or hold the service object,
and no module of the service reaches into another object's private attributes."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tuneforge.service as service_pkg
from tuneforge.service.executors import Executor
from tuneforge.service.settings import Settings
from tuneforge.service.store import Store
from tuneforge.service.worker import Capacity, Worker, WorkerHooks

SERVICE_DIR = Path(service_pkg.__file__).resolve().parent
BELOW_CORE = ("worker", "pruning", "sweeps", "placement")


def imports_core(source: str) -> bool:
    """Whether a service module imports ``core`` in any form (module level, in a function, under TYPE_CHECKING)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names = {a.name for a in node.names}
            if node.module in ("core", "tuneforge.service.core") or (node.module in (None, "tuneforge.service")
                                                                       and "core" in names):
                return True
        elif isinstance(node, ast.Import) and any(a.name == "tuneforge.service.core" for a in node.names):
            return True
    return False


def private_reaches(source: str) -> list[str]:
    """``obj._name`` where obj is not ``self``/``cls``: another object's (or module's) private attribute."""
    return [ast.unparse(node) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))]


def holds_the_service(source: str) -> bool:
    """Whether code (not prose) names ``TaskService`` or reaches through a ``.service`` attribute."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "TaskService" or \
                isinstance(node, ast.Constant) and node.value == "TaskService" or \
                isinstance(node, ast.Attribute) and node.attr == "service":
            return True
    return False


def test_the_checks_see_what_they_look_for():
    assert imports_core("if TYPE_CHECKING:\n    from .core import TaskService\n")
    assert imports_core("def f():\n    from . import core\n")
    assert not imports_core("from .store import Store\n")
    assert private_reaches("worker._pruner = 1\nself._ok = 2\n") == ["worker._pruner"]
    assert holds_the_service('def f(s: "TaskService"): pass\n') and holds_the_service("self.service.store\n")
    assert not holds_the_service('"""Built by ``TaskService``."""\nself.store\n')


@pytest.mark.parametrize("name", BELOW_CORE)
def test_the_queue_never_reaches_back_into_the_service_object(name):
    source = (SERVICE_DIR / f"{name}.py").read_text(encoding="utf-8")
    assert not imports_core(source), f"service/{name}.py imports service/core.py: core hands it what it needs"
    if name in ("worker", "pruning"):
        assert not holds_the_service(source), f"service/{name}.py holds the service object"


def test_no_module_of_the_service_touches_another_objects_private_attributes():
    found = [f"service/{p.name}: {reach}" for p in sorted(SERVICE_DIR.rglob("*.py"))
             for reach in private_reaches(p.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


class _Idle(Executor):
    name = "local"

    def poll(self, task):
        return None


def test_a_worker_runs_from_what_it_is_handed(tmp_path):
    """No service object: a store, an executor, settings, the capacity and the hooks are all a worker needs."""
    calls: list[str] = []
    store = Store(tmp_path / "tasks.db")
    try:
        hooks = WorkerHooks(notify=lambda: calls.append("notify"), check_datasets=lambda config: None,
                            scan_runs=lambda: calls.append("scan"), sweep_pass=lambda: calls.append("sweeps"))
        worker = Worker(store, _Idle(), Settings(home=tmp_path), Capacity(gpus=0, max_concurrent=1), hooks)
        worker.tick()
        assert calls == ["sweeps", "scan"]  # nothing queued or running: nothing changed, nothing to notify
    finally:
        store.close()
