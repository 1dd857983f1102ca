"""Writing a GGUF file: metadata first, then each tensor converted and written on its own."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .tensors import TensorPlan


def _progress(say: Callable[[str], None], total: int) -> Callable[[int], None]:
    """A line every ~10% of the bytes (large models take minutes; small ones print the last line only)."""
    state = {"done": 0, "next": total // 10 or 1}

    def step(nbytes: int) -> None:
        state["done"] += nbytes
        if state["done"] >= state["next"] or state["done"] == total:
            say(f"  wrote {state['done'] / 2**20:,.1f} / {total / 2**20:,.1f} MiB")
            state["next"] = state["done"] + (total // 10 or 1)
    return step


def write_gguf(path: Path, arch: str, metadata: Callable[[object], None], plans: list[TensorPlan],
               encoded: Iterable[tuple[TensorPlan, np.ndarray]], say: Callable[[str], None]) -> int:
    """Write ``path``; ``metadata(writer)`` adds the key/values. Returns the bytes of tensor data written."""
    import gguf

    from .tensors import qtype

    writer = gguf.GGUFWriter(str(path), arch)
    metadata(writer)
    for plan in plans:
        # The header lists every tensor before any data: declare them all from the plan, without data.
        stored_dtype = {"f32": np.float32, "f16": np.float16}.get(plan.storage, np.uint8)
        shape = plan.shape if stored_dtype is not np.uint8 else \
            gguf.quants.quant_shape_to_byte_shape(plan.shape, qtype(plan.storage))
        writer.add_tensor_info(plan.gguf_name, shape, np.dtype(stored_dtype), plan.nbytes,
                               raw_dtype=qtype(plan.storage) if stored_dtype is np.uint8 else None)
    total = sum(p.nbytes for p in plans)
    step = _progress(say, total)
    writer.open_output_file()
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for plan, array in encoded:
        writer.write_tensor_data(array)
        step(array.nbytes)
    writer.close()
    return total
