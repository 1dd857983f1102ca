"""Standard benchmarks through lm-evaluation-harness (optional: ``pip install lm-eval``).

The run's model is loaded by the engine's inference loader with its adapter merged (lm-eval takes a plain
transformers model) and handed to lm-eval's ``HFLM``. Tasks whose data is local are task YAML files in a
directory given with ``--lm-eval-include`` (``dataset_path: json`` over a local JSON/JSONL file); lm-eval's
own hub benchmarks need their data sets downloaded into the Hugging Face cache first (docs/evaluation.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import inference
from ..models.load import first_line

INSTALL_HINT = "pip install lm-eval (the lm-evaluation-harness)"


def _import_lm_eval():
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ConfigError("--lm-eval-tasks needs lm-evaluation-harness, which is not installed: "
                          f"{INSTALL_HINT}.") from None
    return lm_eval, HFLM, TaskManager


def _task_manager(TaskManager, include: str | None, tasks: list[str]):
    if include is not None and not Path(include).is_dir():
        raise ConfigError(f"--lm-eval-include {include!r}: no such directory (it holds the task YAML files).")
    manager = TaskManager(include_path=include) if include else TaskManager()
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        where = f" in {include!r} or" if include else ""
        raise ConfigError(f"--lm-eval-tasks: unknown task(s) {unknown}: not found{where} among lm-eval's own tasks. "
                          "A task over a local file is a YAML in the --lm-eval-include directory (docs/evaluation.md).")
    return manager


def run_lm_eval(opts: Any) -> dict[str, Any]:
    """lm-eval's results for ``opts.lm_eval_tasks`` on ``opts.model`` (adapter merged), as a JSON-ready dict."""
    lm_eval, HFLM, TaskManager = _import_lm_eval()
    from .loading import open_eval_model

    manager = _task_manager(TaskManager, opts.lm_eval_include, opts.lm_eval_tasks)
    model = open_eval_model(opts.model, opts.adapter, device=opts.device, dtype=opts.dtype,
                            trust_remote_code=opts.trust_remote_code, allow_pickle_weights=opts.allow_pickle_weights)
    merged = inference.load_model(model.source, model.tokenizer, dtype=model.dtype, device=model.device,
                                  merge=model.is_adapter)
    lm = HFLM(pretrained=merged, tokenizer=model.tokenizer, batch_size=opts.batch_size or 8, device=str(model.device))
    try:
        out = lm_eval.simple_evaluate(model=lm, tasks=list(opts.lm_eval_tasks), task_manager=manager,
                                      limit=opts.lm_eval_limit, log_samples=False, bootstrap_iters=0,
                                      verbosity="ERROR")
    except (OSError, ConnectionError, FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"lm-eval could not run {opts.lm_eval_tasks} ({first_line(exc)}). Hub benchmarks need "
                          "their data downloaded first; local tasks need their data_files paths to exist.") from None
    return {"tasks": list(opts.lm_eval_tasks), "include": opts.lm_eval_include, "limit": opts.lm_eval_limit,
            "results": out.get("results", {}), "n-shot": out.get("n-shot", {}), "versions": out.get("versions", {})}
