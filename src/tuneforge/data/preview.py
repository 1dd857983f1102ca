"""The first training rows exactly as the model sees them (``tuneforge preview``, the console's data preview).

The rows come from the same prepared data training uses (the one encoder, the tokenized cache, the
validation split), so the text is the decoded token ids training trains on — truncation and dropped rows
included — with the trained spans marked by character positions. ``ROW_BUILDERS`` gives, per training
strategy, the rows as JSON-able dicts; ``tools/preview.py`` prints them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from ..config import TrainConfig
from .encode import DROP_NO_TRAINED, EncodeSettings, Encoding, encode_example
from .formats import RowReport, iter_examples
from .sources import source_files
from .split import data_sources, prepare_data
from .templates import IGNORE_INDEX, Encoded


@dataclass
class RenderedRow:
    text: str  # the decoded token ids
    trained_spans: list[tuple[int, int]]  # [start, end) character spans of ``text`` whose tokens are trained
    tokens: int
    trained_tokens: int
    truncated: bool

    @property
    def trained_text(self) -> list[str]:
        return [self.text[s:e] for s, e in self.trained_spans]


def trained_runs(labels: list[int]) -> list[tuple[int, int]]:
    """``[start, end)`` token index runs whose labels are trained."""
    runs, start = [], None
    for i, label in enumerate(labels + [IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        elif label == IGNORE_INDEX and start is not None:
            runs.append((start, i))
            start = None
    return runs


def render(tokenizer, enc: Encoded, truncated: bool) -> RenderedRow:
    """Decode ``enc`` and map its trained token runs to character spans of the decoded text.

    Character positions come from decoding prefixes of the ids, so they index the very string that
    decoding all ids gives (tokenizers that merge or strip spaces stay consistent).
    """
    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    text = decode(enc.input_ids)
    spans = [(min(len(decode(enc.input_ids[:s])), len(text)), min(len(decode(enc.input_ids[:e])), len(text)))
             for s, e in trained_runs(list(enc.labels))]
    return RenderedRow(text, spans, len(enc.input_ids), enc.n_trained, truncated)


def _first_rows(cfg: TrainConfig, tokenizer, n: int) -> list[tuple[str, Encoding]]:
    """The first ``n`` rows of train_data through the one encoder, with what training does with each.

    With a validation split or mixed sources the training rows are only known after the split, so they
    come from the prepared data (the same cache training maps); otherwise the file is streamed and only
    its first rows are encoded, however large it is.
    """
    settings = EncodeSettings.from_config(cfg)
    sources = data_sources(cfg.train_data)
    if cfg.validation_split > 0 or len(sources) > 1:
        train = prepare_data(cfg, tokenizer).train
        return [(train.sources[i], Encoding(train.items[i], train.is_truncated(i))) for i in range(min(n, len(train)))]
    report = RowReport() if cfg.on_bad_rows == "skip" else None
    out = []
    for file in source_files(sources[0].path):
        for example in iter_examples(file, cfg.training_strategy, report):
            out.append((example.source, encode_example(example, tokenizer, settings)))
            if len(out) == n:
                return out
    return out


def _fate(enc: Encoding) -> str | None:
    if enc.kept:
        return None
    if enc.drop == DROP_NO_TRAINED:
        return "NO trained token left: training refuses this row (raise seq_length)"
    if enc.refused:
        return f"training refuses this row ({enc.drop}; with on_bad_rows: skip it is dropped)"
    return f"training drops this row ({enc.drop})"


def _refused(source: str, enc: Encoding) -> dict:
    return {"source": source, "dropped": _fate(enc), "why": enc.why}


def _sft_rows(cfg: TrainConfig, tokenizer, n: int) -> list[dict]:
    rows = []
    for source, enc in _first_rows(cfg, tokenizer, n):
        if enc.item is None:  # the chat template refused the row
            rows.append(_refused(source, enc))
            continue
        rows.append({"source": source, "dropped": _fate(enc), **_row_json(render(tokenizer, enc.item, enc.truncated))})
    return rows


def _dpo_rows(cfg: TrainConfig, tokenizer, n: int) -> list[dict]:
    """Prompt+chosen and prompt+rejected of each pair, as the DPO loss sees them (the prompt untrained)."""
    rows = []
    for source, enc in _first_rows(cfg, tokenizer, n):
        if enc.item is None:
            rows.append(_refused(source, enc))
            continue
        chosen, rejected = enc.item.sequences()
        rows.append({"source": source, "dropped": _fate(enc),
                     "chosen": _row_json(render(tokenizer, chosen, enc.truncated)),
                     "rejected": _row_json(render(tokenizer, rejected, enc.truncated))})
    return rows


def _kto_rows(cfg: TrainConfig, tokenizer, n: int) -> list[dict]:
    """Prompt+completion of each KTO row, one per class it trains (a preference pair gives one of each)."""
    rows = []
    for source, enc in _first_rows(cfg, tokenizer, n):
        if enc.item is None:
            rows.append(_refused(source, enc))
            continue
        for label, seq, side in zip(("desirable", "undesirable"), enc.item.sequences(),
                                    (enc.item.chosen, enc.item.rejected)):
            if side:
                rows.append({"source": f"{source}, {label}", "dropped": _fate(enc),
                             **_row_json(render(tokenizer, seq, enc.truncated))})
    return rows


# pretrain: a whole document, every token trained (training cuts documents longer than seq_length into pieces)
ROW_BUILDERS: dict[str, Callable[[TrainConfig, object, int], list[dict]]] = {
    "sft": _sft_rows, "dpo": _dpo_rows, "kto": _kto_rows, "pretrain": _sft_rows, "reward": _dpo_rows,
    "grpo": lambda cfg, tokenizer, n: _grpo_preview().grpo_rows(cfg, tokenizer, n)}


def _grpo_preview():
    # Loads a model and samples with GRPO's own seeds (training/grpo_preview.py): imported only for GRPO configs,
    # the one place this data module reaches above itself.
    from ..training import grpo_preview

    return grpo_preview


def _row_json(row: RenderedRow) -> dict:
    data = asdict(row)
    data["trained_spans"] = [list(s) for s in row.trained_spans]
    data["trained_text"] = row.trained_text
    return data
