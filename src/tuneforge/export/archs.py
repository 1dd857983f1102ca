"""The model families GGUF export supports, and the hyperparameters llama.cpp reads for each.

A family is one :class:`ArchSpec` in ``ARCHITECTURES`` (Hugging Face ``model_type`` -> spec); anything
else is refused before any work, naming the supported ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError


@dataclass(frozen=True)
class ArchSpec:
    gguf_arch: str  # general.architecture, as llama.cpp names it
    permute_qk: bool  # llama.cpp's "llama" graph applies RoPE to interleaved pairs: Q/K rows are reordered
    family: str  # the words used in messages


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return float(theta if theta is not None else getattr(config, "rope_theta", 10000.0))


def _rope_type(config) -> str:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return str(params.get("rope_type", params.get("type", "default"))) if isinstance(params, dict) else "default"


def head_dim(config) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": ArchSpec("llama", True, "Llama"),
    "qwen2": ArchSpec("qwen2", False, "Qwen2/Qwen2.5"),
    "qwen3": ArchSpec("qwen3", False, "Qwen3"),
}


def supported_names() -> str:
    return ", ".join(f"{s.family} (model_type '{k}')" for k, s in ARCHITECTURES.items()) + \
        " and the built-in model (builtin:toy, a Llama)"


def spec_for(config, where: str) -> ArchSpec:
    """The spec for ``config``, or a ConfigError naming the supported families (nothing has been written)."""
    model_type = getattr(config, "model_type", None)
    spec = ARCHITECTURES.get(str(model_type))
    if spec is None:
        raise ConfigError(f"{where}: model_type {model_type!r} cannot be exported to GGUF; supported: "
                          f"{supported_names()}.")
    rope = _rope_type(config)
    if rope != "default":
        # llama.cpp needs extra tensors/keys for scaled RoPE (llama3, yarn, ...); not written here yet.
        raise ConfigError(f"{where}: RoPE scaling {rope!r} is not supported by this exporter (only unscaled RoPE).")
    if getattr(config, "use_sliding_window", False):
        raise ConfigError(f"{where}: use_sliding_window: true is not supported by this exporter.")
    return spec


def hyperparameters(config, spec: ArchSpec) -> list[tuple[str, Callable, Any]]:
    """(name, GGUFWriter method name, value) for the model's shape, as llama.cpp's loader expects them."""
    n_head = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    dim = head_dim(config)
    items: list[tuple[str, Callable, Any]] = [
        ("context_length", "add_context_length", int(config.max_position_embeddings)),
        ("embedding_length", "add_embedding_length", int(config.hidden_size)),
        ("block_count", "add_block_count", int(config.num_hidden_layers)),
        ("feed_forward_length", "add_feed_forward_length", int(config.intermediate_size)),
        ("head_count", "add_head_count", int(n_head)),
        ("head_count_kv", "add_head_count_kv", int(n_kv)),
        ("rope_freq_base", "add_rope_freq_base", _rope_theta(config)),
        ("layer_norm_rms_eps", "add_layer_norm_rms_eps", float(config.rms_norm_eps)),
        ("rope_dimension_count", "add_rope_dimension_count", dim),
        ("vocab_size", "add_vocab_size", int(config.vocab_size)),
    ]
    if dim * n_head != config.hidden_size:  # e.g. Qwen3: head_dim is its own number
        items += [("key_length", "add_key_length", dim), ("value_length", "add_value_length", dim)]
    return items
