"""Files next to the GGUF for the runtimes: an Ollama ``Modelfile`` and a README with the commands.

Ollama does not run the Jinja chat template embedded in the GGUF; its TEMPLATE is a Go template. Known
template families are translated (``OLLAMA_TEMPLATES``: ChatML -- the built-in model and Qwen --, Llama 3);
any other gets a plain "role: content" fallback, and the README says so (llama.cpp and LM Studio use the
embedded template itself).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

CHATML = ('{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
          '{{- range .Messages }}{{- if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
          '{{ end }}{{- end }}<|im_start|>assistant\n')
LLAMA3 = ('{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
          '{{- range .Messages }}{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n'
          '{{ .Content }}<|eot_id|>{{ end }}{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n')
FALLBACK = ('{{- if .System }}{{ .System }}\n\n{{ end }}'
            '{{- range .Messages }}{{- if ne .Role "system" }}{{ .Role }}: {{ .Content }}\n{{ end }}'
            '{{- end }}assistant: ')
# (marker in the Jinja template, family name, Ollama template)
OLLAMA_TEMPLATES = (("<|im_start|>", "ChatML", CHATML), ("<|start_header_id|>", "Llama 3", LLAMA3))
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>")
# tuneforge chat/generate defaults (tools/common.py), used where the model's generation_config sets none
GENERATION_DEFAULTS = {"temperature": 0.7, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.0}
OLLAMA_PARAMETER = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                    "repetition_penalty": "repeat_penalty"}


@dataclass
class RuntimeInfo:
    name: str  # model name for ollama create / the file stem
    gguf_file: str
    template: str | None  # the Jinja template embedded in the file
    system: str | None
    stops: list[str]
    generation: dict[str, float]
    num_ctx: int
    adapter_base: str | None = None  # adapter-only: the base GGUF the adapter applies to
    base_export_command: str | None = None
    report: list[str] = field(default_factory=list)


def ollama_template(template: str | None) -> tuple[str, str]:
    for marker, family, go_template in OLLAMA_TEMPLATES:
        if template and marker in template:
            return family, go_template
    return "fallback (role: content)", FALLBACK


def stop_tokens(tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab()
    stops = [tokenizer.eos_token] if tokenizer.eos_token else []
    return stops + [t for t in END_OF_TURN if t in vocab and t not in stops]


def generation_defaults(model) -> dict[str, float]:
    """The model's own sampling settings (generation_config) where it samples, else tuneforge's defaults."""
    config = getattr(model, "generation_config", None)
    values = dict(GENERATION_DEFAULTS)
    if config is not None and getattr(config, "do_sample", False):
        for key in values:
            if getattr(config, key, None) is not None:
                values[key] = float(getattr(config, key))
    return values


def _quote(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def modelfile(info: RuntimeInfo) -> str:
    family, go_template = ollama_template(info.template)
    lines = [f"# Ollama Modelfile written by tuneforge export (template: {family})"]
    if info.adapter_base:
        lines += [f"FROM {info.adapter_base}", f"ADAPTER ./{info.gguf_file}"]
    else:
        lines.append(f"FROM ./{info.gguf_file}")
    lines.append(f"TEMPLATE {_quote(go_template)}")
    if info.system:
        lines.append(f"SYSTEM {_quote(info.system)}")
    lines += [f"PARAMETER stop {json.dumps(s)}" for s in info.stops]
    lines += [f"PARAMETER {OLLAMA_PARAMETER[k]} {v:g}" for k, v in info.generation.items()]
    lines.append(f"PARAMETER num_ctx {info.num_ctx}")
    return "\n".join(lines) + "\n"


def readme(info: RuntimeInfo) -> str:
    family, _ = ollama_template(info.template)
    if info.adapter_base:
        run_lines = ["## Base model first", "",
                     "This is a LoRA adapter: the runtimes apply it to its base model's GGUF.",
                     "Export the base (once) so that the Modelfile's FROM line finds it:", "", "```bash",
                     info.base_export_command or "", "```", "",
                     "## llama.cpp", "", "```bash",
                     f"llama-cli -m {info.adapter_base} --lora {info.gguf_file} --jinja -cnv"
                     + (f" -sys {json.dumps(info.system, ensure_ascii=False)}" if info.system else ""),
                     "```"]
    else:
        run_lines = ["## llama.cpp", "", "```bash", f"llama-cli -m {info.gguf_file} --jinja -cnv   "
                     "# or: llama-server -m " + info.gguf_file + " --jinja", "```"]
    if info.adapter_base:
        intro = (f"`{info.gguf_file}`: a LoRA adapter written by `tuneforge export --adapter-only`; the tokenizer and "
                 "the chat template are in the base model's GGUF.")
    else:
        intro = (f"`{info.gguf_file}`: written by `tuneforge export`; the tokenizer and the chat template"
                 + (" (with the run's system prompt as its default)" if info.system else "")
                 + " are embedded in the file.")
    return "\n".join([
        f"# {info.name} (GGUF)", "", intro, "",
        *run_lines, "",
        "## Ollama", "", "```bash", f"ollama create {info.name} -f Modelfile", f"ollama run {info.name}", "```", "",
        f"The Modelfile's TEMPLATE is the {family} template translated for Ollama"
        + ("" if family != "fallback (role: content)" else
           "; this model's chat template has no Ollama translation here, so the fallback only approximates it") + ".",
                      "",
        "## LM Studio", "", "```bash", f"lms import {info.gguf_file}", "```", "",
        "LM Studio reads the embedded chat template.", "",
        "## Verification at export time", "", "```", *info.report, "```", ""])
