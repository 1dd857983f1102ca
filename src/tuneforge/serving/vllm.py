"""``tuneforge serve --engine vllm``: vLLM's own OpenAI server, with the runs as LoRA modules.

vLLM serves one base model per process, so the runs must be LoRA adapters on one base, one full model,
or one full model plus adapters trained on it. A QLoRA adapter is merged into its 16-bit base first
(vLLM does not apply LoRA modules to a 4-bit bitsandbytes base), and the merged model is served
instead. The chat template and ``system_prompt`` the runs were trained with are handed to vLLM as a
``--chat-template`` file, so chat prompts are rendered as in training; runs with different system
prompts therefore cannot share one vLLM process.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..models import inference
from .loading import RunSpec, TrustSettings, backbone_key, resolve

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


@dataclass
class VllmPlan:
    """The vLLM command line, its environment additions, and what had to be prepared for it."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)  # run name -> merged model directory
    chat_template: Path | None = None


def merged_dir(root: Path, name: str, source: inference.ModelSource) -> Path:
    """A merge cache entry keyed by the adapter's weights file (size and mtime) and its base."""
    weights = Path(source.adapter or "") / "adapter_model.safetensors"
    stat = weights.stat() if weights.is_file() else None
    token = json.dumps([os.path.realpath(source.adapter or ""), stat and stat.st_size, stat and stat.st_mtime_ns,
                        source.base])
    return root / f"{name}-{hashlib.sha256(token.encode()).hexdigest()[:12]}"


def _merge_qlora(name: str, spec: RunSpec, source: inference.ModelSource, root: Path, say) -> str:
    from ..models.merge import merge

    target = merged_dir(root, name, source)
    if (target / "config.json").is_file():
        say(f"{name}: using the merged model cached at {target}")
    else:
        say(f"{name}: QLoRA adapter; merging it into its 16-bit base for vLLM -> {target}")
        merge(spec.path, str(target), say=say, trust_remote_code=source.trust_remote_code,
              allow_pickle_weights=source.allow_pickle_weights)
    return str(target)


def chat_template_with_system(template: str, system_prompt: str | None) -> str:
    """The run's template, with the run's system prompt inserted where a request has no system message
    (what training did, see data/templates.with_system_prompt)."""
    if system_prompt is None:
        return template
    literal = json.dumps(system_prompt)  # a valid Jinja string literal
    return ("{%- if not messages or messages[0]['role'] != 'system' -%}"
            "{%- set messages = [{'role': 'system', 'content': " + literal + "}] + messages -%}"
            "{%- endif -%}" + template)


def _template_file(sources, tokenizers, root: Path) -> Path | None:
    settings = {(s.system_prompt, getattr(t, "chat_template", None), s.uses_chat_template(t))
                for s, t in zip(sources, tokenizers)}
    if len(settings) > 1:
        raise ConfigError("--engine vllm: these runs differ in chat template, system_prompt or apply_chat_template; "
                          "one vLLM process renders every chat the same way. Serve them in separate processes.")
    system_prompt, template, uses_template = settings.pop()
    if not uses_template or not template:
        return None  # vLLM's own default; such runs are meant for /v1/completions with their own special tokens
    text = chat_template_with_system(template, system_prompt)
    path = root / f"chat_template-{hashlib.sha256(text.encode()).hexdigest()[:12]}.jinja"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _lora_rank(adapters: dict[str, str]) -> int:
    ranks = []
    for path in adapters.values():
        config = json.loads((Path(path) / inference.ADAPTER_CONFIG).read_text(encoding="utf-8"))
        ranks.append(max([int(config.get("r", 8))] + [int(v) for v in (config.get("rank_pattern") or {}).values()]))
    top = max(ranks)
    return next((r for r in VLLM_LORA_RANKS if r >= top), top)


def _choose_model(specs, sources, merged: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """(model directory, its served name, LoRA modules name -> directory) for one vLLM process."""
    full = [(spec.name, merged.get(spec.name, spec.path)) for spec, src in zip(specs, sources)
            if spec.name in merged or not src.adapter]
    adapters = {spec.name: src.adapter for spec, src in zip(specs, sources) if src.adapter and spec.name not in merged}
    adapter_keys = {backbone_key(src) for spec, src in zip(specs, sources) if spec.name in adapters}
    if len(full) > 1 or len(adapter_keys) > 1:
        raise ConfigError("--engine vllm serves one base model per process: "
                          f"these runs need {len(full) + len(adapter_keys)}"
                          f" (full or merged models: {', '.join(n for n, _ in full) or 'none'}; adapter bases: "
                          f"{len(adapter_keys)}). Serve them in separate processes (different --port).")
    if full:
        name, path = full[0]
        if adapter_keys and adapter_keys != {os.path.realpath(path)}:
            raise ConfigError(f"--engine vllm: the adapters were not trained on {path}; serve them separately.")
        return path, name, adapters  # type: ignore[return-value]
    first = next(src for spec, src in zip(specs, sources) if spec.name in adapters)
    base_name = Path(first.base).name if Path(first.base).is_dir() else first.base
    if base_name in adapters:
        base_name += "-base"
    return first.base, base_name, adapters  # type: ignore[return-value]


def plan_vllm(specs: list[RunSpec], *, host: str, port: int, api_key: str | None, trust: TrustSettings,
              work_dir: Path, extra_args: str = "", say=print) -> VllmPlan:
    """Work out (and prepare: merges, template file) the vLLM server command for these runs."""
    sources = [resolve(spec, trust) for spec in specs]
    tokenizers = [inference.load_tokenizer_for(s) for s in sources]
    merged = {spec.name: _merge_qlora(spec.name, spec, src, work_dir / "merged", say)
              for spec, src in zip(specs, sources) if src.adapter and src.quantized_training}
    model, served_name, adapters = _choose_model(specs, sources, merged)
    template = _template_file(sources, tokenizers, work_dir)
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--served-model-name", served_name, "--host", host, "--port", str(port)]
    if adapters:
        command += ["--enable-lora", "--max-loras", str(len(adapters)), "--max-lora-rank", str(_lora_rank(adapters)),
                    "--lora-modules", *[f"{name}={path}" for name, path in adapters.items()]]
    if template is not None:
        command += ["--chat-template", str(template)]
    if trust.trust_remote_code:
        command.append("--trust-remote-code")
    command += shlex.split(extra_args)
    # The key goes through the environment (vLLM reads VLLM_API_KEY), not the command line others can list.
    return VllmPlan(command, {"VLLM_API_KEY": api_key} if api_key else {}, merged, template)


def default_work_dir() -> Path:
    return Path(os.environ.get("TUNEFORGE_HOME", Path.home() / ".tuneforge")) / "serving"


def run_vllm(specs: list[RunSpec], args, api_key: str | None) -> int:
    """Start vLLM's server in the foreground; Ctrl-C (or SIGTERM) stops it."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("--engine vllm needs vLLM (Linux with a CUDA GPU): pip install vllm. "
                          "The default --engine transformers needs nothing more.")
    plan = plan_vllm(specs, host=args.host, port=args.port, api_key=api_key,
                     trust=TrustSettings(args.trust_remote_code, args.allow_pickle_weights),
                     work_dir=default_work_dir(), extra_args=args.vllm_args,
                     say=lambda line: print(line, file=sys.stderr, flush=True))
    print("starting vLLM: " + " ".join(shlex.quote(x) for x in plan.command), file=sys.stderr, flush=True)
    child = subprocess.Popen(plan.command, env={**os.environ, **plan.env})
    previous = signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        try:
            return child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
