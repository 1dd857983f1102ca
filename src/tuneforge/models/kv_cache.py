"""Key/value-cache plumbing shared by the serving batcher and the training rollouts (transformers' API moved)."""
from __future__ import annotations

import inspect


def cache_argument(model) -> str:
    """transformers 5.2x names the key/value cache argument ``cache``; earlier releases ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def returned_cache(out):
    """The cache a forward pass returned, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
