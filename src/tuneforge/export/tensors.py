"""Model tensors as GGUF stores them: llama.cpp names, the Q/K row order of its Llama graph, and the
storage type of each tensor for the chosen ``--dtype``.

Tensors are planned first (name, shape, type, bytes: the file's header needs them all) and then converted
and written one at a time, so at most one converted tensor exists beside the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..errors import ConfigError
from . import DTYPES  # noqa: F401  (re-exported)
from .archs import ArchSpec

# file_type (general.file_type, llama.cpp's LlamaFileType) per --dtype
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # buffers llama.cpp computes itself


def qtype(name: str):
    from gguf import GGMLQuantizationType as Q

    return {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}[name]


@dataclass
class TensorPlan:
    hf_name: str  # the model's state_dict key
    gguf_name: str
    shape: tuple[int, ...]
    storage: str  # one of DTYPES
    permute_heads: int = 0  # > 0: reorder rows for llama.cpp's RoPE, in this many heads

    @property
    def nbytes(self) -> int:
        from gguf.quants import quant_shape_to_byte_shape

        if self.storage == "f32":
            return int(np.prod(self.shape)) * 4
        if self.storage == "f16":
            return int(np.prod(self.shape)) * 2
        return int(np.prod(quant_shape_to_byte_shape(self.shape, qtype(self.storage))))


def to_llama_rope_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Within each head, rows (first half, second half) -> interleaved pairs, the layout llama.cpp's
    Llama graph rotates; transformers' GGUF reader undoes exactly this."""
    rows = weight.shape[0]
    return weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def storage_for(shape: tuple[int, ...], dtype: str) -> str:
    """Norms and other vectors stay f32 (as llama.cpp's converter keeps them); q8_0 needs rows in blocks of 32,
    else that tensor is stored f16."""
    if len(shape) < 2:
        return "f32"
    if dtype == "q8_0" and shape[-1] % 32:
        return "f16"
    return dtype


def gguf_name(hf_name: str, name_map) -> str | None:
    stem, _, suffix = hf_name.rpartition(".")
    mapped = name_map.get_name(stem)
    return f"{mapped}.{suffix}" if mapped else None


def plan_tensors(model: torch.nn.Module, spec: ArchSpec, dtype: str) -> list[TensorPlan]:
    """One plan per tensor the file holds; an unmapped tensor is an error (it would be silently lost)."""
    import gguf

    config = model.config
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == spec.gguf_arch)
    name_map = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    n_head = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_head
    plans = []
    for hf_name, tensor in model.state_dict().items():
        if hf_name.endswith(IGNORED_SUFFIXES):
            continue
        if hf_name == "lm_head.weight" and getattr(config, "tie_word_embeddings", False):
            continue  # llama.cpp reuses token_embd when the file has no output.weight
        name = gguf_name(hf_name, name_map)
        if name is None:
            raise ConfigError(f"tensor {hf_name!r} has no GGUF name for {spec.gguf_arch}; nothing was written.")
        heads = 0
        if spec.permute_qk and name.endswith(("attn_q.weight", "attn_q.bias")):
            heads = n_head
        elif spec.permute_qk and name.endswith(("attn_k.weight", "attn_k.bias")):
            heads = n_kv
        shape = tuple(tensor.shape)
        plans.append(TensorPlan(hf_name, name, shape, storage_for(shape, dtype), heads))
    return plans


def encode(plan: TensorPlan, tensor: torch.Tensor) -> np.ndarray:
    """The bytes of one tensor as stored (float32 -> its storage type)."""
    from gguf.quants import quantize

    data = tensor.detach().to(torch.float32)
    if plan.permute_heads:
        data = to_llama_rope_rows(data, plan.permute_heads)
    array = data.contiguous().numpy()
    if plan.storage == "f32":
        return array
    if plan.storage == "f16":
        return array.astype(np.float16)
    return quantize(array, qtype(plan.storage))


def stored_values(plan: TensorPlan, tensor: torch.Tensor) -> torch.Tensor:
    """What a reader gets back for ``tensor`` (in the model's own row order): the rounding the file applies."""
    if plan.storage == "f32":
        return tensor.detach().to(torch.float32)
    if plan.storage == "f16":
        return tensor.detach().to(torch.float16).to(torch.float32)
    from gguf.quants import dequantize

    stored = encode(TensorPlan(plan.hf_name, plan.gguf_name, plan.shape, plan.storage), tensor)
    return torch.from_numpy(np.asarray(dequantize(stored, qtype(plan.storage)), dtype=np.float32)).reshape(plan.shape)


def iter_encoded(model: torch.nn.Module, plans: list[TensorPlan]) -> Iterator[tuple[TensorPlan, np.ndarray]]:
    state = model.state_dict()  # references to the parameters, not copies
    for plan in plans:
        yield plan, encode(plan, state[plan.hf_name])
