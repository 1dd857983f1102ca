"""``export()``: a run (LoRA, QLoRA, full) or a model directory -> a verified GGUF, a Modelfile and a README."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import torch

from ..errors import ConfigError
from ..models import inference
from ..models.load import first_line, is_builtin
from ..rundir import EXPORT_README, EXPORT_REPORT
from . import archs, outdir, runtime_files, tensors, verify
from .vocab import build_vocab, write_vocab


def base_config(source: inference.ModelSource):
    """The base model's config, read before any weights are loaded (architecture refusal costs nothing)."""
    if is_builtin(source.base):
        from ..models.builtin import toy_config

        return toy_config(1)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.base, trust_remote_code=source.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model {source.base!r}: cannot read its config ({first_line(exc)}).") from None


def file_stem(run: str) -> str:
    """The GGUF's name: the run directory's name, or builtin:toy -> builtin-toy."""
    path = Path(run)
    return (path.resolve().name if path.is_dir() else run.replace(":", "-").replace("/", "-")) or "model"


def conversations() -> list[list[dict]]:
    """The verification prompts as conversations without a system message (the template supplies the run's)."""
    return [[{"role": "user", "content": p}] for p in verify.PROMPTS]


def _prompt_ids(tokenizer, source) -> list[list[int]]:
    from ..data.formats import Message

    return [inference.prompt_ids(tokenizer, source, [Message(m["role"], m["content"]) for m in c])
            for c in conversations()]


def _metadata(model, spec, vocab, dtype: str, name: str):
    def add(writer) -> None:
        writer.add_name(name)
        writer.add_file_type(tensors.FILE_TYPES[dtype])
        if dtype == "q8_0":
            import gguf

            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for _key, method, value in archs.hyperparameters(model.config, spec):
            getattr(writer, method)(value)
        write_vocab(writer, vocab)
    return add


def load_run(run: str, *, trust_remote_code: bool, allow_pickle_weights: bool, say):
    source = inference.resolve_source(run, trust_remote_code=trust_remote_code)
    source.allow_pickle_weights = allow_pickle_weights
    spec = archs.spec_for(base_config(source), f"{run!r} (base {source.base})")
    inference.base_dtype(source)  # refuses a quantized base checkpoint: export needs its 16/32-bit weights
    if source.quantized_training:
        say(f"note: trained on a {source.quantized_training} quantized base; exported from the base in float32 "
            "with the adapter merged (never from quantized weights).")
    tokenizer = inference.load_tokenizer_for(source)
    return source, spec, tokenizer


def export_model(run: str, out: str, *, dtype: str = "f16", overwrite: bool = False, say: Callable = print,
                 trust_remote_code: bool = False, allow_pickle_weights: bool = False) -> Path:
    """Write ``out/<name>-<dtype>.gguf`` (+ Modelfile, README.md, export_report.json), verified."""
    target = Path(out)
    outdir.check_target(target, Path(run) if Path(run).is_dir() else None, overwrite)
    source, spec, tokenizer = load_run(run, trust_remote_code=trust_remote_code,
                                       allow_pickle_weights=allow_pickle_weights, say=say)
    started = time.perf_counter()
    say(f"loading {source.base}" + (f" + adapter {source.adapter} (merged)" if source.adapter else "")
        + " in float32 ...")
    model = inference.load_model(source, tokenizer, dtype=torch.float32, device=torch.device("cpu"), merge=True)
    spec = archs.spec_for(model.config, repr(run))  # the loaded config decides
    name = file_stem(run)
    vocab = build_vocab(tokenizer, model.config.vocab_size, where=repr(run), system_prompt=source.system_prompt,
                        use_chat_template=source.uses_chat_template(tokenizer))
    plans = tensors.plan_tensors(model, spec, dtype)
    stops = inference.stop_token_ids(model, tokenizer)
    prompts = _prompt_ids(tokenizer, source)
    ref = verify.reference(model, prompts, stops, greedy=dtype in verify.GREEDY_MUST_MATCH)
    staging = outdir.staging_dir(target)
    try:
        filename = f"{name}-{dtype}.gguf"
        say(f"writing {filename} ({spec.gguf_arch}, {len(plans)} tensors, {dtype}) ...")
        from .writer import write_gguf

        write_gguf(staging / filename, spec.gguf_arch, _metadata(model, spec, vocab, dtype, name), plans,
                   tensors.iter_encoded(model, plans), say)
        info = runtime_files.RuntimeInfo(name, filename, vocab.chat_template, _system_for_ollama(tokenizer, source),
                                         runtime_files.stop_tokens(tokenizer), runtime_files.generation_defaults(model),
                                         int(source.run_config.get("seq_length")
                                             or model.config.max_position_embeddings))
        peak_after_write = _peak_rss_gib()
        verify.expected_after_rounding(model, plans, ref)
        del model  # the reader's copy comes next: never two models at once
        report = _verify(staging, filename, ref, stops, tokenizer, source, dtype, say)
        info.report = report["table"]
        (staging / "Modelfile").write_text(runtime_files.modelfile(info), encoding="utf-8")
        (staging / EXPORT_README).write_text(runtime_files.readme(info), encoding="utf-8")
        report.update(source=str(run), dtype=dtype, seconds=round(time.perf_counter() - started, 2),
                      peak_rss_gib={"load_and_write": peak_after_write, "with_verification": _peak_rss_gib()},
                      bytes=(staging / filename).stat().st_size)
        (staging / EXPORT_REPORT).write_text(json.dumps(report, indent=2), encoding="utf-8")
        outdir.move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"exported to {target / filename} ({(target / filename).stat().st_size / 2**20:,.1f} MiB), "
        f"{target / 'Modelfile'}, {target / EXPORT_README}")
    return target / filename


def _peak_rss_gib() -> float | None:
    """This process's peak resident memory so far (Linux/macOS), for the report."""
    try:
        import resource
        import sys
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**30 if sys.platform == "darwin" else 2**20), 3)


def _system_for_ollama(tokenizer, source) -> str | None:
    """The run's system prompt, else the one the chat template renders by default (ChatML), else none."""
    if source.system_prompt is not None:
        return source.system_prompt
    if not getattr(tokenizer, "chat_template", None) or not source.uses_chat_template(tokenizer):
        return None
    text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    head = "<|im_start|>system\n"
    return text[len(head):text.index("<|im_end|>")] if text.startswith(head) else None


def _verify(staging: Path, filename: str, ref, stops, tokenizer, source, dtype: str, say) -> dict:
    say("verifying: reading the file back with transformers' GGUF loader ...")
    reader_model, reader_tokenizer = verify.load_reader(staging, filename)
    rows = verify.compare(reader_model, ref, stops)
    lines = verify.table(rows, dtype)
    tokenizer_bad = verify.tokenizer_mismatches(reader_tokenizer, tokenizer, conversations(), ref.prompts,
                                                source.uses_chat_template(tokenizer))
    lines.append("  tokenizer: special ids and the embedded chat template's prompt ids "
                 + ("DIFFER" if tokenizer_bad else "identical to the run's"))
    bad = verify.failures(rows, dtype) + tokenizer_bad
    for line in lines:
        say(line)
    if bad:
        raise verify.ExportVerificationError("the exported file failed verification, nothing was kept: "
                                             + "; ".join(bad))
    return {"table": lines, "rows": [vars(r) for r in rows], "file_tolerance": verify.FILE_TOLERANCE,
            "drift_tolerance": verify.DRIFT_TOLERANCE[dtype]}
