"""Every call evaluation makes into the data layer, in one place (docs/data.md).

A data file is read by the data layer's ``load_examples`` and every row encoded by the one encoder
(``encode.encode_example``) that training's cache uses, with the run's encoding settings, so evaluation
sees exactly the tokens, truncation and trained spans training sees; a row training would refuse is
refused the same way (file, line and field; exit code 2). A run's own validation split (after training)
comes from training's ``build_data`` itself, so held-out rows are the ones training held out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import TrainConfig
from ..data.encode import EncodeSettings, encode_example
from ..data.formats import Message, RowReport, detect_format, load_examples, read_rows
from ..data.split import PreparedData, data_sources
from ..errors import DataError


@dataclass
class GenerationItem:
    """One prompt to answer and the answer it is scored against."""

    source: str  # "file:line"
    prompt: list[Message]
    reference: str


@dataclass
class EncodedSplit:
    """Encoded rows of a file in the shape training's recipes read (``rows``/``pairs``, ``lengths``),
    with the examples they came from (for prompts and references)."""

    items: list = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    examples: list = field(default_factory=list)
    truncated: int = 0

    @property
    def rows(self) -> list:
        return self.items

    @property
    def pairs(self) -> list:
        return self.items

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class PredictionRow:
    """A row of a predictions file scored by ``tuneforge eval --predictions``."""

    line: int
    prediction: str
    reference: str
    row: dict


def file_strategy(path: str) -> str:
    """'dpo' for a file of prompt/chosen/rejected rows, 'sft' for any SFT format (from its first row)."""
    for line, row in read_rows(path):
        fmt = detect_format(row)
        if fmt is None:
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise DataError(path, line, None, f"cannot tell the row format from keys {keys}; expected instruction/"
                            "output, messages, conversations, prompt/completion or prompt/chosen/rejected")
        return "dpo" if fmt == "preference" else "sft"
    raise DataError(path, None, None, "no rows")


def _length(item: Any) -> int:
    return item.longest if hasattr(item, "longest") else len(item.input_ids)


def encode_examples(examples: list, tokenizer, cfg: TrainConfig, report: RowReport) -> EncodedSplit:
    """Encode as training does: kept rows in order; a row training refuses raises, one it drops is counted."""
    settings = EncodeSettings.from_config(cfg)
    split = EncodedSplit()
    for example in examples:
        enc = encode_example(example, tokenizer, settings)
        if not enc.kept:
            if enc.refused:
                path, _, line = example.source.rpartition(":")
                raise DataError(path, int(line) if line.isdigit() else None, enc.field, enc.why)
            report.drop(enc.drop, example.source)
            continue
        split.items.append(enc.item)
        split.sources.append(example.source)
        split.lengths.append(_length(enc.item))
        split.examples.append(example)
        split.truncated += int(enc.truncated)
    return split


def encode_file(cfg: TrainConfig, tokenizer) -> PreparedData:
    """``cfg.train_data`` (one file) encoded with ``cfg``'s settings, as the validation split the recipes
    evaluate (also set as ``train``, which the recipes' constructors read)."""
    report = RowReport()
    split = encode_examples(load_examples(cfg.train_data, cfg.training_strategy), tokenizer, cfg, report)
    if not len(split):
        raise DataError(cfg.train_data, None, None, "no row left to evaluate (" + report.summary().lstrip("; ") + ")")
    return PreparedData(train=split, validation=split, report=report)


def generation_items(split: EncodedSplit, strategy: str) -> list[GenerationItem]:
    """Prompts and reference answers of a split's rows. SFT: the conversation before its last assistant
    turn is the prompt, that turn the reference. Preference rows: the prompt, and the chosen answer."""
    items = []
    for ex in split.examples:
        if strategy == "dpo":
            items.append(GenerationItem(ex.source, list(ex.prompt), ex.chosen))
            continue
        last = max(i for i, m in enumerate(ex.messages) if m.role == "assistant")
        items.append(GenerationItem(ex.source, list(ex.messages[:last]), ex.messages[last].content))
    return items


def run_validation_items(cfg: TrainConfig, tokenizer) -> list[GenerationItem]:
    """The prompts and references of a finished run's validation rows, as training selected them
    (``validation_data``, or the rows ``validation_split`` held out); [] when the run has none."""
    from ..training.strategies import STRATEGIES

    return validation_items(cfg, STRATEGIES[cfg.training_strategy].build_data(cfg, tokenizer).validation)


def validation_items(cfg: TrainConfig, validation: Any, limit: int | None = None) -> list[GenerationItem]:
    """Prompts and references of an encoded validation split's rows (its first ``limit``), read back from
    the files they came from; [] for no split."""
    if validation is None:
        return []
    wanted = list(validation.sources)[:limit] if limit is not None else list(validation.sources)
    paths = [cfg.validation_data] if cfg.validation_data else [s.path for s in data_sources(cfg.train_data)]
    skip = RowReport() if cfg.on_bad_rows == "skip" else None
    by_source = {ex.source: ex for path in paths for ex in load_examples(path, cfg.training_strategy, skip)}
    examples = [by_source[s] for s in wanted if s in by_source]
    return generation_items(EncodedSplit(examples=examples), cfg.training_strategy)


def read_predictions(path: str) -> list[PredictionRow]:
    """Rows with string fields ``prediction`` and ``reference`` (other fields kept); bad rows name file, line, field."""
    rows = []
    for line, row in read_rows(path):
        if not isinstance(row, dict):
            raise DataError(path, line, None, f"expected a JSON object, got {type(row).__name__}")
        for key in ("prediction", "reference"):
            if key not in row or row[key] is None:
                raise DataError(path, line, key, "missing required field")
            if not isinstance(row[key], str):
                raise DataError(path, line, key, f"expected a string, got {type(row[key]).__name__}")
        rows.append(PredictionRow(line, row["prediction"], row["reference"], row))
    if not rows:
        raise DataError(path, None, None, "no rows")
    return rows
