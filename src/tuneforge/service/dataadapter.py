"""The one place the service calls the data library (row validation, ``data/preview.py``, ``data/stats.py``: what
``tuneforge preview`` and ``tuneforge stats`` print), so a change of signature is fixed here only."""
from __future__ import annotations

from typing import Any

from ..config import TrainConfig
from . import preimport


def detect_strategy(path: str) -> tuple[str, str | None]:
    """('dpo' or 'sft', the row format of the first row) of a data file."""
    from ..data.formats import detect_format, read_rows

    for _line, row in read_rows(path):
        fmt = detect_format(row)
        return ("dpo" if fmt == "preference" else "sft"), fmt
    return "sft", None


def validate_rows(path: str, strategy: str) -> int:
    """Number of rows; raises DataError (file, line, field) for the first bad row."""
    from ..data.formats import load_examples

    return len(load_examples(path, strategy))


def _tokenizer(cfg: TrainConfig):
    preimport.ensure()  # two first requests at once must not race inside transformers' lazy imports
    from ..models.load import load_tokenizer

    return load_tokenizer(cfg.model, cfg.trust_remote_code)


def preview(cfg: TrainConfig, n: int) -> dict[str, Any]:
    """What ``tuneforge preview --json`` prints."""
    preimport.ensure()
    from ..data.preview import ROW_BUILDERS

    rows = ROW_BUILDERS[cfg.training_strategy](cfg, _tokenizer(cfg), n)
    return {"model": cfg.model, "training_strategy": cfg.training_strategy, "seq_length": cfg.seq_length, "rows": rows}


def stats(cfg: TrainConfig) -> dict[str, Any]:
    """What ``tuneforge stats --json`` prints."""
    preimport.ensure()
    from ..data.stats import collect

    return collect(cfg, _tokenizer(cfg))
