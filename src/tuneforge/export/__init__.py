"""Export a run for local runtimes: GGUF (llama.cpp, Ollama, LM Studio), verified by an independent reader.

``tuneforge export RUN --format gguf --out DIR`` (``tools/export.py``) calls :func:`run.export`. The parts:
``archs`` (which model families and their GGUF hyperparameters), ``tensors`` (names, Q/K layout, storage
types, streaming one tensor at a time), ``vocab`` (tokenizer and chat template as metadata), ``writer`` (the
file), ``verify`` (transformers' GGUF loader against the run's own model), ``runtime_files`` (Ollama
Modelfile, README) and ``adapter`` (``--adapter-only``: a llama.cpp LoRA adapter GGUF).
"""

DTYPES = ("f32", "f16", "bf16", "q8_0")  # --dtype choices (kept here: the CLI imports no torch to list them)
