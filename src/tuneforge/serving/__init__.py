"""Serve trained runs through an OpenAI-compatible HTTP API (``tuneforge serve``).

- ``loading``: run directories → served models; runs that share a base share one copy of it in memory.
- ``sampling``: per-request sampling (greedy, temperature, top-p, seed) and stop-string tracking.
- ``batcher``: the batched generation loop (continuous batching on transformers, several adapters per batch).
- ``protocol``: the request bodies (validated) and the response shapes of the OpenAI API.
- ``app``: the FastAPI routes, API-key check, OpenAI-style error objects.
- ``vllm``: ``--engine vllm``, vLLM's own OpenAI server started with the runs as LoRA modules.
- ``cli``: the ``tuneforge serve`` command.
"""
