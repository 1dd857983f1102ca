"""Time and peak RSS of ``tuneforge export --format gguf`` on a 0.5B-shaped random-init model.

The model has Qwen2.5-0.5B's shape (24 layers, hidden 896, 14/2 heads, intermediate 4864, vocab 151936, tied
embeddings; 494M parameters), random weights saved in bf16 like the release, and the built-in tokenizer (the
vocabulary rows past it are written as unused tokens). The export runs as its own process, sampled for RSS
(itself and children) every 50 ms. There is no TRL counterpart (TRL does not export GGUF).

    python bench/export/bench_export.py --dtype f16 [--workdir /tmp/export-bench]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

SHAPE = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
             num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True)


def build_model(directory: Path) -> int:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from tuneforge.models.builtin import TOKENIZER_DIR

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    cfg = Qwen2Config(**SHAPE, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(str(directory), safe_serialization=True)
    tok.save_pretrained(str(directory))
    return sum(p.numel() for p in model.parameters())


def measure(command: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    output = proc.stdout.read()
    return {"wall_s": round(time.perf_counter() - start, 1), "peak_rss_gib": round(peak / 2**30, 2),
            "returncode": proc.returncode, "output_tail": output[-2500:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="f16", choices=("f32", "f16", "bf16", "q8_0"))
    parser.add_argument("--workdir", default="/tmp/export-bench")
    args = parser.parse_args()
    work = Path(args.workdir)
    model_dir, out = work / "qwen2-0.5b-shape", work / f"gguf-{args.dtype}"
    if not (model_dir / "config.json").is_file():
        model_dir.mkdir(parents=True, exist_ok=True)
        print(f"building the random-init model ({build_model(model_dir) / 1e6:.0f}M parameters) ...", flush=True)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    result = measure([sys.executable, "-m", "tuneforge.cli", "export", str(model_dir), "--format", "gguf",
                      "--out", str(out), "--dtype", args.dtype])
    files = list(out.glob("*.gguf"))
    if (out / "export_report.json").is_file():
        report = json.loads((out / "export_report.json").read_text())
        result.update(export_seconds=report["seconds"], phases_peak_rss_gib=report["peak_rss_gib"])
    result.update(dtype=args.dtype, gguf_mib=round(files[0].stat().st_size / 2**20, 1) if files else None,
                  safetensors_mib=round(sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) / 2**20, 1),
                  load_average=os.getloadavg())
    print(result.pop("output_tail"))
    print(json.dumps(result, indent=2))
    return result["returncode"]


if __name__ == "__main__":
    sys.exit(main())
