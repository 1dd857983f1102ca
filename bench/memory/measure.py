"""Measure tuneforge's real peak memory on CPU, to calibrate ``tuneforge.models.memory`` (the planner's estimator).

Each case trains 2 optimizer steps in its own process (``tuneforge train``) and records the process's peak
RSS (``os.wait4``), the same figure the run's end banner prints as peak host memory. Every row is longer than
``seq_length`` so it is truncated to exactly ``seq_length`` tokens: each micro-batch is the estimator's worst
case (batch x seq_length), with no padding and no row groups. The results are written to
``bench/memory/measured.json`` together with everything needed to recompute the estimate (model shape,
config keys, rows' tokens); ``tests/unit/models/test_memory_calibration.py`` holds the estimate within 20 %
of each figure.

    python bench/memory/measure.py --list                 # the cases
    python bench/memory/measure.py                        # run them all (~3-5 minutes on 2 idle cores)
    python bench/memory/measure.py --only small-sft-lora-b8-s512 --dry-run
    TUNEFORGE_SRC=/path/to/other/src python bench/memory/measure.py   # measure another checkout's code

Shapes: ``toy`` = builtin:toy; ``small`` = the benchmark's small shape (bench/trl_side.py SHAPES["small"],
Llama layout, word-level tokenizer), dumped once under bench/out/memory/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = REPO / "bench" / "out" / "memory"
RESULTS = HERE / "measured.json"

# name: (shape, strategy, method, batch, seq_length, extra config keys)
CASES: dict[str, tuple[str, str, str, int, int, dict]] = {
    "toy-sft-lora-b8-s512": ("toy", "sft", "lora", 8, 512, {}),
    "toy-sft-lora-b32-s1024": ("toy", "sft", "lora", 32, 1024, {}),
    "toy-sft-full-b32-s1024": ("toy", "sft", "full", 32, 1024, {}),
    "toy-sft-qlora4-b16-s1024": ("toy", "sft", "qlora4", 16, 1024, {}),
    "toy-dpo-lora-b16-s1024": ("toy", "dpo", "lora", 16, 1024, {}),
    "toy-sft-lora-b32-s1024-gc": ("toy", "sft", "lora", 32, 1024, {"gradient_checkpointing": True}),
    "small-sft-lora-b8-s512": ("small", "sft", "lora", 8, 512, {}),
    "small-sft-lora-b16-s1024": ("small", "sft", "lora", 16, 1024, {}),
    "small-sft-lora-b16-s1024-dropout": ("small", "sft", "lora", 16, 1024, {"lora_dropout": 0.05}),
    "small-sft-lora-b16-s1024-gc": ("small", "sft", "lora", 16, 1024, {"gradient_checkpointing": True}),
    "small-sft-full-b8-s512": ("small", "sft", "full", 8, 512, {}),
    "small-sft-full-b16-s1024": ("small", "sft", "full", 16, 1024, {}),
    "small-sft-qlora4-b8-s1024": ("small", "sft", "qlora4", 8, 1024, {}),
    "small-dpo-lora-b4-s512": ("small", "dpo", "lora", 4, 512, {}),
    "small-dpo-full-b4-s512": ("small", "dpo", "full", 4, 512, {}),
}


def small_dump() -> Path:
    """The benchmark's small shape as a local model directory (random init, word-level tokenizer)."""
    target = WORK / "small-model"
    if (target / "config.json").is_file():
        return target
    sys.path.insert(0, str(REPO / "bench"))
    from trl_side import random_model, word_tokenizer, SHAPES  # noqa: E402

    model = random_model("small", "llama")
    tok = word_tokenizer(SHAPES["small"]["vocab_size"])
    model.save_pretrained(str(target))
    tok.save_pretrained(str(target))
    return target


def write_rows(path: Path, shape: str, strategy: str, n: int, seq_length: int) -> None:
    """``n`` rows, each longer than ``seq_length`` tokens (a short prompt, a long answer)."""
    rng = random.Random(0)
    vocab = 32000 if shape == "small" else 2000

    def words(k: int) -> str:
        # small: one token per word "w<id>"; toy (byte-level BPE): several tokens per word
        return " ".join(f"w{rng.randrange(3, vocab)}" for _ in range(k))

    with path.open("w") as fh:
        for _ in range(n):
            prompt = words(16)
            if strategy == "sft":
                row = {"prompt": prompt, "completion": " " + words(seq_length + 64)}
            else:
                row = {"prompt": prompt, "chosen": " " + words(seq_length + 64), "rejected": " " + words(seq_length + 64)}
            fh.write(json.dumps(row) + "\n")


def case_config(name: str) -> dict:
    shape, strategy, method, batch, seq, extra = CASES[name]
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data.jsonl"
    write_rows(data, shape, strategy, 2 * batch, seq)
    cfg = dict(training_strategy=strategy, model="builtin:toy" if shape == "toy" else str(small_dump()),
               train_data=str(data), output_dir=str(work / "run"), overwrite_output_dir=True,
               per_device_train_batch_size=batch, gradient_accumulation_steps=1, seq_length=seq,
               learning_rate=1e-4, max_steps=2, logging_steps=1, eval_steps=0, save_steps=-1,
               apply_chat_template=False, lora_dim=0 if method == "full" else 32, lora_dropout=0.0,
               load_in_4bit=method == "qlora4", group_by_length=False)
    cfg.update(extra)
    return cfg


def start_record(metrics: Path) -> dict:
    for line in metrics.read_text().splitlines() if metrics.is_file() else []:
        rec = json.loads(line)
        if rec.get("event") == "start":
            return rec
    return {}


def run_case(name: str) -> dict:
    cfg = case_config(name)
    cfg_path = WORK / name / "config.json"
    cfg_path.write_text(json.dumps(cfg, indent=1))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               PYTHONPATH=os.environ.get("TUNEFORGE_SRC", str(REPO / "src")))
    log = WORK / name / "train.log"
    t0 = time.time()
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "tuneforge.cli", "train", str(cfg_path), "--no-progress"],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{name}: tuneforge exited with status {status}; see {log}")
    start = start_record(Path(cfg["output_dir"]) / "metrics.jsonl")
    shape, strategy, method, batch, seq, extra = CASES[name]
    return {"name": name, "shape": shape, "strategy": strategy, "method": method,
            "per_device_train_batch_size": batch, "seq_length": seq, "row_tokens": seq, **extra,
            "device": "cpu", "measured": "peak_rss_gib",
            "peak_rss_gib": round(usage.ru_maxrss / 2 ** 20, 3), "wall_s": round(time.time() - t0, 1),
            "total_params": start.get("total_params"), "trainable_params": start.get("trainable_params"),
            "estimate_at_measurement_gib": start.get("memory_estimate_total_gib")}


def versions() -> dict:
    import importlib.metadata as md

    return {m: md.version(m) for m in ("torch", "transformers", "peft", "accelerate", "bitsandbytes")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print the configs, train nothing")
    a = ap.parse_args()
    names = a.only or list(CASES)
    if a.list:
        print("\n".join(CASES))
        return
    if a.dry_run:
        for n in names:
            print(json.dumps(case_config(n)))
        return
    for n in names:
        row = run_case(n)
        print(f"{n}: {row['peak_rss_gib']:.3f} GiB peak RSS ({row['wall_s']} s; estimate then "
              f"{row['estimate_at_measurement_gib']})", flush=True)
        save_row(row)


def save_row(row: dict) -> None:
    """Merge one case into the results file (re-read each time: other sections may have changed)."""
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    rows = {r["name"]: r for r in data.get("cpu_runs", [])} | {row["name"]: row}
    data["cpu_runs"] = [rows[n] for n in CASES if n in rows]
    data["cpu_source"] = {"command": "python bench/memory/measure.py", "date": datetime.date.today().isoformat(),
                          "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared with other work",
                          "versions": versions()}
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
