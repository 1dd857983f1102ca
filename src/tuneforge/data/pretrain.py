"""Continued pre-training data: raw-text documents → pieces of at most seq_length tokens → training rows.

Documents (a ``text`` column of JSON/JSONL/CSV/Parquet rows, or whole ``.txt``/``.md`` files: one file is
one document) are encoded once into the tokenized cache, each whole, as [BOS if the tokenizer adds one] +
its tokens + EOS, every token a label (``encode.encode_pretrain``). A blank line inside a file does not
start a new document: a file's paragraphs belong together; write one row per document for finer documents.

Here, per split, the documents are cut and grouped, from the cached lengths only (no token is read):

- a document longer than ``seq_length`` becomes pieces of ``seq_length`` tokens that overlap by one
  token, so every token after the document's first is a target exactly once (a piece's first token is
  context only, and was the previous piece's last target);
- with ``packing: true`` consecutive pieces are packed, next-fit, into rows of at most ``seq_length``
  tokens; the recipe feeds each row with restarting position ids and no attention mask, so no document
  attends to another (docs/architecture.md, "Packing"); without packing each piece is a row of its own.

The grouping is a pure function of the data and ``seq_length``: every process and every resume sees the
same rows. Index arrays (a few int64 per piece) are what memory holds; tokens stay memory-mapped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .split import PreparedData, Split, prepare_data
from .templates import Encoded


def build_pretrain_data(cfg, tokenizer) -> PreparedData:
    """Documents of ``cfg.train_data`` (and validation) for pre-training: ``data.train.rows[i]`` is a whole
    document (templates.Encoded); ``pack_split`` turns a split into training rows."""
    return prepare_data(cfg, tokenizer, strategy="pretrain")


def cut_documents(lengths: np.ndarray, seq_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(document, start, end) of each piece: documents longer than ``seq_length`` are cut into pieces of
    ``seq_length`` tokens overlapping by one token (the stride is seq_length - 1)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    stride = seq_length - 1
    # pieces per document: 1 when it fits, else ceil((n - 1) / stride)
    counts = np.where(lengths <= seq_length, 1, -(-(lengths - 1) // stride)).astype(np.int64)
    doc = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(len(doc), dtype=np.int64) - first  # piece number within its document
    start = k * stride
    end = np.minimum(start + seq_length, lengths[doc])
    return doc, start, end


def pack_pieces(piece_lengths: np.ndarray, seq_length: int) -> np.ndarray:
    """Row offsets (n rows + 1) into the pieces: consecutive pieces packed next-fit into rows of at most
    ``seq_length`` tokens."""
    offsets = [0]
    used = 0
    for i, n in enumerate(piece_lengths.tolist()):
        if used and used + n > seq_length:
            offsets.append(i)
            used = 0
        used += n
    offsets.append(len(piece_lengths))
    return np.asarray(offsets, dtype=np.int64)


@dataclass
class PackedSplit:
    """A split's documents as training rows: row ``r`` holds pieces ``offsets[r]:offsets[r + 1]``."""

    split: Split
    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        sizes = self.end - self.start
        per_row = np.add.reduceat(sizes, self.offsets[:-1]) if len(sizes) else np.zeros(0, dtype=np.int64)
        self.lengths: list[int] = per_row.tolist()  # tokens per row, for the sampler and the memory estimate
        self.n_pieces = len(sizes)
        self.n_cut = int(np.sum(np.bincount(self.doc, minlength=len(self.split)) > 1)) if len(sizes) else 0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def pieces(self, row: int) -> list[Encoded]:
        """The pieces of row ``row``, each a fully trained Encoded (labels = ids)."""
        return [self._piece(p) for p in range(int(self.offsets[row]), int(self.offsets[row + 1]))]

    def _piece(self, p: int) -> Encoded:
        items = self.split.items
        d = int(self.doc[p])
        store = items.stores[int(items.store_of[d])]
        base = int(store.offsets[int(items.index[d])])
        ids = store.arrays["ids"][base + int(self.start[p]): base + int(self.end[p])].tolist()
        return Encoded(ids, list(ids), 0)


def pack_split(split: Split | None, seq_length: int, packing: bool) -> PackedSplit | None:
    """``split``'s documents cut to ``seq_length`` and (with ``packing``) packed into rows."""
    if split is None:
        return None
    doc, start, end = cut_documents(np.asarray(split.lengths, dtype=np.int64), seq_length)
    offsets = pack_pieces(end - start, seq_length) if packing else np.arange(len(doc) + 1, dtype=np.int64)
    return PackedSplit(split, doc, start, end, offsets)
