"""Record what a fixed set of runs wrote to ``metrics.jsonl``, minus the fields that measure the machine.

A design pass must leave training's results unchanged. Run this before and after and compare the folders:

    python scripts/metrics_fingerprint.py /tmp/before      # on the old tree
    python scripts/metrics_fingerprint.py /tmp/after       # on the new tree
    diff -r /tmp/before /tmp/after && echo identical

Each example config runs a few steps on the built-in model through the command line (``tuneforge train``), and
one also through the Python API (``tuneforge.train``) and one through a stop-and-resume. What is kept is every
record with its keys in the order written; what is dropped is what depends on the machine's speed or memory
(wall-clock times, throughput, memory readings), which differ between two runs of the same tree.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "examples" / "configs"
RUNS = {  # name -> (config, overrides)
    "sft_full": ("sft_full.yaml", ["max_steps=6", "eval_steps=3", "logging_steps=1"]),
    "sft_lora": ("sft_lora.yaml", ["max_steps=6", "eval_steps=3", "logging_steps=1"]),
    "sft_qlora4": ("sft_qlora4.yaml", ["max_steps=4", "eval_steps=2", "logging_steps=1"]),
    "dpo_lora": ("dpo_lora.yaml", ["max_steps=4", "eval_steps=2", "logging_steps=1"]),
    "kto_lora": ("kto_lora.yaml", ["max_steps=4", "eval_steps=2", "logging_steps=1"]),
    "reward_lora": ("reward_lora.yaml", ["max_steps=4", "eval_steps=2", "logging_steps=1"]),
    "pretrain_lora": ("pretrain_lora.yaml", ["max_steps=4", "eval_steps=2", "logging_steps=1"]),
    "grpo_lora": ("grpo_lora.yaml", ["max_steps=3", "logging_steps=1"]),
}
VOLATILE = ("time", "tokens_per_second", "samples_per_second", "elapsed_s", "seconds", "step_seconds",
            "rollout_seconds", "rollout_tokens_per_second")
VOLATILE_PREFIXES = ("host_", "device_memory", "gpu_", "cuda_", "peak_", "memory_")


def stable(record: dict) -> dict:
    return {key: value for key, value in record.items()
            if key not in VOLATILE and not key.startswith(VOLATILE_PREFIXES)
            and not key.endswith(("_seconds", "_gib", "_s"))}


def train(config: Path, overrides: list[str], out: Path, fault: str | None = None) -> None:
    cmd = [str(Path(sys.executable).with_name("tuneforge")), "train", str(config), *overrides, f"output_dir={out}"]
    env = {**os.environ, **({"TUNEFORGE_FAULT": fault} if fault else {})}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=config.parent, env=env)
    if fault and done.returncode == -9:
        return
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def train_in_process(config: Path, overrides: list[str], out: Path) -> None:
    code = ("import sys, tuneforge; tuneforge.train(sys.argv[1], sys.argv[2:], progress=False)")
    cmd = [sys.executable, "-c", code, str(config), *overrides, f"output_dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=config.parent)
    if done.returncode != 0:
        raise SystemExit(f"python API run failed ({done.returncode}):\n{done.stderr[-3000:]}")


def fingerprint(run_dir: Path, target: Path, scratch: str) -> None:
    # The scratch folder's random name appears in paths (a resumed run names its checkpoint): spelled alike.
    lines = [json.dumps(stable(json.loads(line)), ensure_ascii=False).replace(scratch, "<scratch>")
             for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for one <run>.jsonl per run (created)")
    parser.add_argument("--only", nargs="*", help="run names to record (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    names = args.only or [*RUNS, "sft_lora_api", "sft_lora_resumed"]
    with tempfile.TemporaryDirectory(prefix="tf-fingerprint-") as scratch:
        for name in names:
            run_dir = Path(scratch) / name
            if name == "sft_lora_api":
                config, overrides = RUNS["sft_lora"]
                train_in_process(CONFIGS / config, overrides, run_dir)
            elif name == "sft_lora_resumed":
                config, overrides = RUNS["sft_lora"]
                # Killed as it writes the step-6 checkpoint (step 3's is complete), then the same command again:
                # it resumes from step 3 and trims the metrics written after it.
                resumable = [*overrides, "save_steps=3"]
                train(CONFIGS / config, resumable, run_dir, fault="before_checkpoint_manifest@6:kill")
                train(CONFIGS / config, resumable, run_dir)
            else:
                config, overrides = RUNS[name]
                if name == "dpo_lora":  # on top of this script's SFT adapter, as the example chains them
                    overrides = [*overrides, f"adapter_name_or_path={Path(scratch) / 'sft_lora'}"]
                train(CONFIGS / config, overrides, run_dir)
            fingerprint(run_dir, args.out / f"{name}.jsonl", scratch)
            print(f"{name}: {sum(1 for _ in open(args.out / f'{name}.jsonl'))} records", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
