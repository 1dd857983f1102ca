"""``tuneforge models list|show|config`` and ``tuneforge plan``: the gallery and the memory planner from a terminal."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..models.catalog import METHODS, STRATEGIES, GalleryEntry, entries, get, recommended_config
from ..models.memory import GIB

# Where each recommended value comes from, written as a comment beside it by `models config`.
KEY_SOURCES = {
    "learning_rate": {"full": "full fine-tuning practice for instruction models (1e-5 to 2e-5)",
                      "lora": "LoRA/QLoRA practice (QLoRA paper: 2e-4 for 7B-13B; 1e-4 to 2e-4 usual)",
                      "dpo": "DPO practice (DPO paper, Zephyr recipes): 10-100x below SFT",
                      "grpo": "GRPO: TRL 1.16's default 1e-6 for full training, about 10x that for LoRA"},
    "num_train_epochs": "2-10 is the usual range for SFT, 1-2 for DPO; stop when validation stops improving",
    "per_device_train_batch_size": "a starting point: 'tuneforge plan MODEL --gpu-memory GiB' gives the largest that "
                                   "fits, or use 'auto'",
    "gradient_accumulation_steps": "effective batch = batch x this x GPUs",
    "lora_dim": {"full": "0 = full-parameter training", "lora": "LoRA rank 32 on the attention projections (q,k,v,o)"},
    "lora_alpha": "2 x lora_dim (usual range 0.5-2x)",
    "lora_target_modules": "the gallery entry's default targets",
    "dpo_beta": "DPO paper default (0.1-0.5 usual; higher stays closer to the reference)",
    "load_in_4bit": "QLoRA: base in 4-bit NF4 (least memory)",
    "load_in_8bit": "QLoRA: base in 8-bit",
    "num_generations": "GRPO: completions per prompt (TRL 1.16's default; per_device_train_batch_size counts prompts)",
    "max_completion_length": "GRPO: most tokens sampled per completion (TRL 1.16's default)",
    "reward_functions": "GRPO: the final answer against the data's answer column; add format or path/file.py:fn",
}


def _source(key: str, strategy: str, method: str) -> str:
    src = KEY_SOURCES.get(key, "")
    if isinstance(src, dict):
        kind = strategy if key == "learning_rate" and strategy in ("dpo", "grpo") else (
            "full" if method == "full" else "lora")
        return src.get(kind, "")
    return src


def _default(strategy: str, method: str, key: str) -> Any:
    from ..models.catalog import default_recommended

    return default_recommended()[strategy][method].get(key)


def _yaml_value(value: Any) -> str:
    if isinstance(value, (list, str)):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    if isinstance(value, float) and "e" in text:  # YAML 1.1 reads 5e-06 as a string: write 5.0e-06
        mantissa, exponent = text.split("e")
        text = ((mantissa if "." in mantissa else mantissa + ".0") + "e"
                + (exponent if exponent[0] in "+-" else "+" + exponent))
    return text


# The repository's example data per strategy: (training, validation); pre-training reads a folder of documents.
EXAMPLE_DATA = {"sft": ("sft_train.jsonl", "sft_val.jsonl"), "dpo": ("dpo_train.jsonl", "dpo_val.jsonl"),
                "reward": ("dpo_train.jsonl", "dpo_val.jsonl"), "kto": ("kto_train.jsonl", "kto_val.jsonl"),
                "grpo": ("grpo_arithmetic_train.jsonl", "grpo_arithmetic_val.jsonl"), "pretrain": ("pretrain", None)}


def _example_data(strategy: str) -> tuple[str, str | None] | None:
    """The repository's example data for the toy (relative to the current directory when it is there)."""
    train, val = EXAMPLE_DATA.get(strategy, EXAMPLE_DATA["sft"])
    for base in (Path("examples/data"), Path(__file__).resolve().parents[3] / "examples" / "data"):
        if (base / train).exists() and (val is None or (base / val).is_file()):
            return str(base / train), (str(base / val) if val else None)
    return None


def config_text(model: str, strategy: str, method: str, train_data: str | None, seq_length: int | None) -> str:
    """A ready YAML config with the recommended values and, beside each, where it comes from."""
    entry = get(model)
    values = recommended_config(entry.id, strategy, method)
    data = (train_data, None) if train_data else (_example_data(strategy) if entry.id == "builtin:toy" else None)
    slug = entry.id.replace("builtin:", "")
    lines = [f"# tuneforge {strategy} / {method} for {entry.id} ({entry.hub_id}, {entry.size} parameters)",
             "# written by: tuneforge models config " + f"{entry.id} --strategy {strategy} --method {method}",
             f"# licence: {entry.license}; chat template: {entry.chat_template} (turns end with {entry.end_of_turn})",
             ""]
    keys: list[tuple[str, Any, str]] = [
        ("training_strategy", strategy, ""), ("model", entry.id, f"gallery id -> {entry.hub_id}"),
        ("train_data", data[0] if data else "train.jsonl", "" if data else "your training rows (JSON/JSONL)")]
    if data and data[1]:
        keys.append(("validation_data", data[1], ""))
    else:
        keys.append(("validation_split", 0.05, "hold out 5% to see when validation stops improving"))
    keys.append(("output_dir", f"runs/{slug}-{strategy}-{method}", ""))
    keys.append(("seq_length", seq_length or min(1024, entry.context_length),
                 f"tokens per row; 'tuneforge stats' shows your rows' lengths (context {entry.context_length})"))
    overrides = entry.recommended_overrides.get(strategy, {}).get(method, {})
    for key, value in values.items():
        if key in ("training_strategy", "model"):
            continue
        note = _source(key, strategy, method)
        if key in overrides:
            note = f"{entry.id}'s own value (gallery default {_default(strategy, method, key)}); " + note
        if key == "gradient_accumulation_steps":
            note += f" ({values.get('per_device_train_batch_size', 1) * value} rows per step on one GPU)"
        keys.append((key, value, note))
    if entry.id == "builtin:toy":
        keys.append(("eval_steps", 20, "the example data is small"))
    for key, value, note in keys:
        lines.append(f"{key}: {_yaml_value(value)}" + (f"  # {note}" if note else ""))
    return "\n".join(lines) + "\n"


def _entry_row(e: GalleryEntry) -> tuple[str, ...]:
    return (e.id, e.size, e.family, f"{e.context_length:,}", e.hub_id)


def _cmd_list(args: argparse.Namespace) -> int:
    items = entries()
    if args.json:
        print(json.dumps([e.to_dict() for e in items], indent=1, ensure_ascii=False))
        return 0
    rows = [("id", "size", "family", "context (tokens)", "hub id")] + [_entry_row(e) for e in items]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    e = get(args.model)
    d = e.to_dict()
    if args.json:
        print(json.dumps(d, indent=1, ensure_ascii=False))
        return 0
    params = f"{e.size} parameters" + (f" ({e.non_embedding_parameters_b}B without embeddings)"
                                       if e.non_embedding_parameters_b else "")
    print(f"{e.id}: {e.hub_id} ({e.family}, {params}), licence: {e.license}")
    print(f"  architecture: {e.model_type}, {e.layers} layers, hidden {e.hidden}, intermediate {e.intermediate}, "
          f"{e.heads} heads / {e.kv_heads} kv heads x {e.resolved_head_dim}, vocab {e.vocab:,}, "
          f"embeddings {'tied' if e.tied_embeddings else 'untied'}")
    ext = f" ({e.extended_context_length:,} with rope scaling)" if e.extended_context_length else ""
    print(f"  context: {e.context_length:,} tokens{ext}")
    print(f"  chat template: {e.chat_template}, turns end with {e.end_of_turn}; {e.template_notes}")
    print(f"  LoRA targets: {', '.join(e.lora_target_modules)}")
    if e.notes:
        print(f"  notes: {e.notes}")
    print("  recommended (strategy / method: keys):")
    for strategy in STRATEGIES:
        for method in METHODS:
            vals = e.recommended[strategy][method]
            print(f"    {strategy} / {method}: " + ", ".join(f"{k} {v}" for k, v in vals.items()))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    print(config_text(args.model, args.strategy, args.method, args.train_data, args.seq_length), end="")
    return 0


def _gib(x: float) -> str:
    return f"{x:.1f}"


def _fit_text(fit, device: str = "cuda") -> str:
    ck = "gradient_checkpointing: true" if fit.gradient_checkpointing else "no checkpointing"
    if fit.gradient_checkpointing:
        plain = fit.batch_size_without_checkpointing
        ck += f" (batch {plain} without)" if plain else " (needed: batch 1 does not fit without)"
    more = (f" (up to {fit.batch_size_with_checkpointing} with checkpointing)"
            if not fit.gradient_checkpointing and fit.batch_size_with_checkpointing > fit.batch_size else "")
    where = ("1 GPU" if device == "cuda" else "1 process") if fit.parallelism == "single" else \
        f"{fit.gpus} GPUs with {_parallelism(fit.parallelism)}"
    return f"batch {fit.batch_size}{more}, {ck}, {where}"


def _parallelism(key: str) -> str:
    from .planner import PARALLELISM_NAMES

    return PARALLELISM_NAMES[key]


def print_plan(p) -> None:
    unit = "GPU" if p.device == "cuda" else "host"
    size = f"{p.parameters / 1e9:.2f}B" if p.parameters >= 1e9 else f"{p.parameters / 1e6:.1f}M"
    print(f"plan: {p.model} ({p.source}, {size} parameters) | {p.strategy}, seq_length "
          f"{p.seq_length} | {p.gpus} x {p.gpu_memory_gib:g} GiB {unit}{', bf16' if p.device == 'cuda' else ', fp32'}")
    covers = "peak memory of one GPU: tensors + CUDA context + allocator slack" if p.device == "cuda" else \
        "peak RSS of the training process, runtime baseline included"
    from ..models.memory import SAFETY_MARGIN

    print(f"estimates: {covers}, in GiB, at the batch shown; planned to {100 * (1 - SAFETY_MARGIN):.0f}% of the "
          f"memory ({p.gpu_memory_gib * (1 - SAFETY_MARGIN):.1f} GiB): estimates came within "
          + ("11% of measured GPU" if p.device == "cuda" else "16% of measured CPU") + " peaks (docs/gallery.md)")
    head = ("method", "fits", "total", "weights", "adapter+grad+optim", "activations", "logits", "runtime", "settings")
    rows = [head]
    for m in p.methods:
        est = m.fit.estimate if m.fit else m.minimum
        states = est.trainable + est.gradients + est.optimizer
        settings = (_fit_text(m.fit, p.device) if m.fit
                    else "needs " + _gib(est.total / GIB) + " GiB at batch 1 with checkpointing")
        rows.append((m.method, "yes" if m.fits else "no", _gib(est.total / GIB), _gib(est.weights / GIB),
                     _gib(states / GIB), _gib(est.activations / GIB), _gib(est.logits / GIB), _gib(est.overhead / GIB),
                     settings))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
    for m in p.methods:
        if m.fits:
            continue
        if m.needs:
            opts = "; ".join(f"{f.gpus} GPUs with {_parallelism(f.parallelism)} (batch {f.batch_size}"
                             f"{', gradient_checkpointing: true' if f.gradient_checkpointing else ''}, "
                             f"{_gib(f.estimate.total / GIB)} GiB each)" for f in m.needs)
            print(f"{m.method}: does not fit {p.gpus} x {p.gpu_memory_gib:g} GiB; would fit on {opts}")
        else:
            print(f"{m.method}: {m.note}")


def _cmd_plan(args: argparse.Namespace) -> int:
    from .planner import plan

    p = plan(args.model, args.gpu_memory, gpus=args.gpus, strategy=args.strategy, method=args.method,
             seq_length=args.seq_length, device="cpu" if args.cpu else "cuda")
    if args.json:
        print(json.dumps(p.to_dict(), indent=1))
    else:
        print_plan(p)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model gallery: list, show, write a recommended config",
                            description="Known base models with their architecture, chat template and recommended "
                                        "hyperparameters.")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    p = msub.add_parser("list", help="table of gallery models")
    p.add_argument("--json", action="store_true", help="JSON array of every entry")
    p.set_defaults(func=_cmd_list)
    p = msub.add_parser("show", help="everything about one model")
    p.add_argument("model", help="gallery id (or its hub id)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_show)
    p = msub.add_parser("config", help="print a ready YAML config with recommended hyperparameters",
                        description="Print a training config (redirect it: > my.yaml) with the gallery's recommended "
                                    "values.")
    p.add_argument("model", help="gallery id")
    p.add_argument("--strategy", choices=STRATEGIES, default="sft")
    p.add_argument("--method", choices=METHODS, default="lora")
    p.add_argument("--train-data", help="training data file to write into the config")
    p.add_argument("--seq-length", type=int, help="seq_length to write (default: 1024, or the context if shorter)")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("plan", help="what fits a GPU: method, batch size, checkpointing, multi-GPU "
                                    "parallelism",
                       description="Estimate per method whether training fits, the largest "
                                   "per_device_train_batch_size, "
                                   "whether gradient checkpointing is needed and, when one GPU is not enough, which "
                                   "parallelism (ZeRO-2, ZeRO-3, FSDP) on how many GPUs makes it fit.")
    p.add_argument("model", help="gallery id, local model directory, or a config.json file")
    p.add_argument("--gpu-memory", type=float, required=True, metavar="GiB",
                   help="memory of one GPU in GiB (e.g. 24, 80)")
    p.add_argument("--gpus", type=int, default=1, help="number of GPUs (default 1)")
    p.add_argument("--strategy", choices=STRATEGIES, default="sft")
    p.add_argument("--method", choices=METHODS + ("all",), default="all")
    p.add_argument("--seq-length", type=int, default=1024, help="tokens per row (default 1024)")
    p.add_argument("--cpu", action="store_true", help="plan a CPU run (fp32) with --gpu-memory as the host RAM")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_plan)
