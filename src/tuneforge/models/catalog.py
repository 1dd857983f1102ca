"""The model gallery's entries, read from its one reviewed data file ``tuneforge/gallery/models.yaml``.

This lookup lives in the engine (``models``) because ``model: <gallery id>`` is resolved when a model loads;
``tuneforge.gallery`` re-exports it and adds the planner and the commands.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import TuneforgeError

DATA_FILE = Path(__file__).resolve().parents[1] / "gallery" / "models.yaml"
STRATEGIES = ("sft", "dpo", "kto", "reward", "pretrain", "grpo")  # with recommended values in models.yaml
METHODS = ("full", "lora", "qlora4", "qlora8")
DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


class GalleryError(TuneforgeError):
    """An unknown gallery id, strategy or method; the message names the close matches."""


@dataclass(frozen=True)
class GalleryEntry:
    """One known base model: where it lives, its architecture numbers, its chat template and recipes."""

    id: str
    hub_id: str
    family: str
    model_type: str  # transformers' model_type (qwen2, qwen3, llama, mistral, gemma2)
    parameters_b: float  # billions, as the model card states it
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool
    context_length: int  # native context (tokens)
    chat_template: str  # template family, see models.yaml `templates`
    end_of_turn: str
    license: str
    head_dim: int | None = None  # None: hidden / heads
    non_embedding_parameters_b: float | None = None
    parameters_card: str | None = None
    extended_context_length: int | None = None  # with rope scaling (YaRN), where the card gives it
    template_notes: str = ""
    notes: str = ""
    lora_target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    recommended: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    recommended_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # entry-specific values

    @property
    def parameters(self) -> int:
        return int(round(self.parameters_b * 1e9))

    @property
    def size(self) -> str:
        """Human size label: 7.61B, 494M."""
        b = self.parameters_b
        return f"{b:g}B" if b >= 1 else f"{b * 1000:.3g}M"

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def config_kwargs(self) -> dict[str, Any]:
        """The transformers config arguments that fix the architecture."""
        return dict(hidden_size=self.hidden, intermediate_size=self.intermediate, num_hidden_layers=self.layers,
                    num_attention_heads=self.heads, num_key_value_heads=self.kv_heads,
                    head_dim=self.resolved_head_dim, vocab_size=self.vocab, tie_word_embeddings=self.tied_embeddings,
                    max_position_embeddings=self.context_length)

    def hf_config(self):
        """A transformers config object of this architecture (no download)."""
        from transformers import AutoConfig

        return AutoConfig.for_model(self.model_type, **self.config_kwargs())

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["head_dim"] = self.resolved_head_dim
        out["parameters"] = self.parameters
        out["size"] = self.size
        return out


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


@functools.lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    return yaml.safe_load(DATA_FILE.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _load() -> tuple[GalleryEntry, ...]:
    data = _raw()
    templates, defaults = data["templates"], data["recommended"]
    out = []
    for raw in data["models"]:
        raw = dict(raw)
        template = templates[raw["chat_template"]]
        raw.setdefault("end_of_turn", template["end_of_turn"])
        raw.setdefault("template_notes", template.get("notes", ""))
        raw["recommended_overrides"] = raw.get("recommended", {}) or {}
        raw["recommended"] = _merge(defaults, raw["recommended_overrides"])
        out.append(GalleryEntry(**raw))
    return tuple(out)


def default_recommended() -> dict[str, dict[str, dict[str, Any]]]:
    """The data file's recommended values per strategy and method, before any entry's own values."""
    return copy.deepcopy(_raw()["recommended"])


def entries() -> list[GalleryEntry]:
    """Every gallery entry, in the data file's order (the toy first, then by family and size)."""
    return list(_load())


def _index() -> dict[str, GalleryEntry]:
    index = {}
    for entry in _load():
        index[entry.id.lower()] = entry
        index.setdefault(entry.hub_id.lower(), entry)
    return index


def find(name: str) -> GalleryEntry | None:
    """The entry whose id or hub id is ``name`` (case-insensitive), or None."""
    return _index().get(str(name).strip().lower())


def close_matches(name: str, n: int = 3) -> list[str]:
    """Ids that contain ``name`` (a fragment such as 'qwen2.5-7b'), then ids spelled like it."""
    lowered = {e.id.lower(): e.id for e in _load()}
    key = str(name).strip().lower()
    hits = [i for i in lowered if key and key in i]
    hits += [h for h in difflib.get_close_matches(key, list(lowered), n=n, cutoff=0.5) if h not in hits]
    return [lowered[h] for h in hits[:n]]


def get(name: str) -> GalleryEntry:
    """The entry for a gallery id (or hub id); an unknown name raises GalleryError naming close ids."""
    entry = find(name)
    if entry is not None:
        return entry
    hints = close_matches(name)
    hint = f" Did you mean {', '.join(hints)}?" if hints else ""
    raise GalleryError(f"model {name!r} is not in the gallery.{hint} 'tuneforge models list' shows every id.")


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> str:
    if value in choices:
        return value
    hint = difflib.get_close_matches(str(value), choices, n=1)
    raise GalleryError(f"{kind}={value!r}: expected one of {', '.join(choices)}"
                       + (f" (did you mean {hint[0]!r}?)" if hint else "") + ".")


def recommended_config(name: str, strategy: str = "sft", method: str = "lora") -> dict[str, Any]:
    """The recommended training keys for one model, strategy and method (TrainConfig key names)."""
    entry = get(name)
    check_choice("strategy", strategy, STRATEGIES)
    check_choice("method", method, METHODS)
    values = dict(entry.recommended[strategy][method])
    out: dict[str, Any] = {"training_strategy": strategy, "model": entry.id}
    out.update(values)
    if values.get("lora_dim", 0) > 0:
        out["lora_target_modules"] = list(entry.lora_target_modules)
    return out
