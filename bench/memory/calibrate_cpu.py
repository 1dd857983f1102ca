"""Estimated against measured peak RSS on CPU with a real-size vocabulary (issue 29): a 2-layer Qwen2-shaped
model with Qwen's 151,646-token vocabulary and a byte-level BPE tokenizer of that size, trained for a few steps
by `tuneforge train` in a fresh process at several batch sizes, lengths and methods. Prints one line per case:
the run's own estimate (its start record), the measured peak RSS (its end record) and their ratio.

    python bench/memory/calibrate_cpu.py [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

VOCAB = 151_646
CASES = [  # (method keys, per_device_train_batch_size, seq_length)
    ({"lora_dim": 8}, 4, 256), ({"lora_dim": 8}, 8, 512), ({"lora_dim": 8}, 16, 1024),
    ({"lora_dim": 0}, 4, 256), ({"lora_dim": 0}, 16, 1024),
]


def real_size_tokenizer(out: Path, vocab_size: int = VOCAB, seed: int = 0):
    """A byte-level BPE of ``vocab_size`` tokens: the 256 byte symbols, then merges of random existing pairs (the
    size of Qwen's vocabulary and merge list, which is what the memory depends on)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {s: i for i, s in enumerate(sorted(alphabet))}
    tokens, merges, rng = list(vocab), [], random.Random(seed)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    while len(vocab) < vocab_size - len(specials):
        a, b = rng.choice(tokens), rng.choice(tokens[:2000] if len(tokens) > 2000 else tokens)
        if len(a) + len(b) > 12 or a + b in vocab:
            continue
        vocab[a + b] = len(vocab)
        tokens.append(a + b)
        merges.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    fast.save_pretrained(str(out))
    return fast


def make_model(out: Path) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = real_size_tokenizer(out)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=256, intermediate_size=704, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(str(out))
    return out


def make_data(path: Path, rows: int = 256) -> Path:
    rng = random.Random(1)
    words = ["goji", "berry", "store", "dry", "ginseng", "tea", "枸杞", "保存", "干燥", "人参"]
    lines = [json.dumps({"instruction": " ".join(rng.choice(words) for _ in range(rng.randint(5, 30))),
                         "output": " ".join(rng.choice(words) for _ in range(rng.randint(50, 400)))},
                        ensure_ascii=False) for _ in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_case(model: Path, data: Path, out: Path, keys: dict, batch: int, seq: int) -> dict:
    args = [sys.executable, "-m", "tuneforge.cli", "train", f"model={model}", f"train_data={data}",
            f"output_dir={out}", "max_steps=3", "eval_steps=0", "save_steps=-1", f"seq_length={seq}",
            f"per_device_train_batch_size={batch}", "logging_steps=1", "--no-progress", "on_bad_rows=skip",
            *(f"{k}={v}" for k, v in keys.items())]
    subprocess.run(args, check=True, capture_output=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                                              "OMP_NUM_THREADS": "2"})
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in records if r.get("event") == "start")
    end = next(r for r in records if r.get("event") == "end")
    return {"estimate_gib": start.get("memory_estimate_total_gib"), "peak_gib": end.get("host_peak_rss_gib"),
            "parts": {k[len("memory_estimate_"):-4]: v for k, v in start.items() if k.startswith("memory_estimate_")}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="calibrate-"))
    model, data = make_model(root / "model"), make_data(root / "rows.jsonl")
    for i, (keys, batch, seq) in enumerate(CASES):
        found = run_case(model, data, root / f"run{i}", keys, batch, seq)
        ratio = found["estimate_gib"] / found["peak_gib"] if found["estimate_gib"] and found["peak_gib"] else None
        method = "full" if keys.get("lora_dim") == 0 else "lora"
        print(f"{method:4s} batch {batch:2d} seq {seq:4d}: estimate {found['estimate_gib']} GiB, measured peak "
              f"{found['peak_gib']} GiB, ratio {ratio:.2f}; parts {found['parts']}" if ratio else f"{method} {batch} {seq}: {found}", flush=True)


if __name__ == "__main__":
    main()
