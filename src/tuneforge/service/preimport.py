"""Pre-import the modules the request handlers use (transformers, models, data), once, under a lock,
before requests are served.

transformers resolves names lazily (``_LazyModule``): two request threads importing ``AutoTokenizer`` for the
first time at once can see a half-initialised module and fail with ``ImportError: cannot import name
'AutoTokenizer'``. The app imports these at start-up; every handler that needs them also calls ``ensure()``,
so a ``TaskService`` used without the app (tests, scripts) is safe too."""
from __future__ import annotations

import importlib
import threading

# (module, names resolved from it): resolving a name makes _LazyModule store it, so later lookups never race
MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("transformers", ("AutoTokenizer", "AutoConfig", "LlamaConfig", "PreTrainedTokenizerFast", "PretrainedConfig")),
    ("tuneforge.models.builtin", ()),
    ("tuneforge.models.load", ()),
    ("tuneforge.models.memory", ()),
    ("tuneforge.data.formats", ()),
    ("tuneforge.data.preview", ()),
    ("tuneforge.data.stats", ()),
)

_lock = threading.Lock()
_done = False


def ensure() -> None:
    """Import ``MODULES`` (first call only; later calls return at once)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        for module_name, names in MODULES:
            module = importlib.import_module(module_name)
            for name in names:
                getattr(module, name)
        _done = True
