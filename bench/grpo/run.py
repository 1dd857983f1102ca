"""GRPO step time and rollout tokens/s: tuneforge against TRL 1.16's GRPOTrainer, in one invocation.

Both sides train the same model (the built-in toy saved as a Hugging Face directory) with LoRA r=16 on q, k,
v, o, on the same prompts (plain strings, no chat template), with the same G, prompts per step, completion
length and sampling settings, one after the other in subprocesses with the same environment. The reward is
the same dense function (share of CJK characters), so neither side skips work on zero-variance groups.

    python bench/grpo/run.py --steps 8 --warm 2                     # prints a table and RESULT lines
    python bench/grpo/run.py --side trl --model DIR --prompts FILE  # one side (used by the above)

Step time: mean wall seconds per optimizer step after ``--warm`` steps. Rollout tokens/s: completion tokens
sampled / seconds spent sampling (TRL: its ``_generate_single_turn``; tuneforge: ``rollout_seconds``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = ["What is %d + %d? Answer with the number only." % (a, b) for a in range(1, 9) for b in range(1, 9)]


def cjk_share(prompts, completions, **kwargs):
    out = []
    for text in completions:
        chars = [c for c in text if not c.isspace()]
        out.append(sum("\u4e00" <= c <= "\u9fff" for c in chars) / len(chars) if chars else 0.0)
    return out


def trl_side(a: argparse.Namespace) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(a.model)
    prompts = json.loads(Path(a.prompts).read_text())
    times: list[float] = []
    rollout = {"seconds": 0.0, "tokens": 0}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    def reward(prompts, completions, completion_ids, **kw):
        rollout["tokens"] += sum(len(c) for c in completion_ids)
        return cjk_share(prompts, completions)

    args = GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=a.prompts_per_step * a.G,
                      num_generations=a.G, max_completion_length=a.completion_length, max_steps=a.steps,
                      learning_rate=1e-3, logging_steps=1, report_to=[], use_cpu=True, bf16=False,
                      save_strategy="no", temperature=1.0, beta=0.0, loss_type="dapo", disable_dropout=True,
                      gradient_checkpointing=False, seed=0)
    trainer = GRPOTrainer(model=a.model, reward_funcs=[reward], args=args, processing_class=tok, callbacks=[Clock()],
                          train_dataset=Dataset.from_dict({"prompt": prompts}),
                          peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                       "o_proj"], task_type="CAUSAL_LM"))
    generate = trainer._generate_single_turn

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return generate(*args, **kwargs)
        finally:
            rollout["seconds"] += time.perf_counter() - started

    trainer._generate_single_turn = timed
    start = time.perf_counter()
    trainer.train()
    return _result("trl", start, times, a.warm, rollout["tokens"], rollout["seconds"])


def tuneforge_side(a: argparse.Namespace) -> dict:
    import tuneforge

    work = Path(tempfile.mkdtemp())
    data = work / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in json.loads(Path(a.prompts).read_text())))
    reward = work / "reward.py"
    reward.write_text(Path(__file__).read_text())  # this file: its cjk_share is the reward, as TRL's side uses
    out = work / "run"
    start = time.perf_counter()
    tuneforge.train({"training_strategy": "grpo", "model": a.model, "train_data": str(data), "output_dir": str(out),
                     "per_device_train_batch_size": a.prompts_per_step, "num_generations": a.G,
                     "max_completion_length": a.completion_length, "seq_length": 128, "max_steps": a.steps,
                     "learning_rate": 1e-3, "lora_dim": 16, "lora_alpha": 32, "logging_steps": 1, "save_steps": -1,
                     "apply_chat_template": False, "reward_functions": [f"{reward}:cjk_share"], "seed": 0,
                     "warmup_ratio": 0.0}, progress=False)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "reward" in r and "eval_reward" not in r]
    tokens = sum(r["completion_length"] * a.prompts_per_step * a.G for r in steps)
    seconds = sum(r["rollout_seconds"] for r in steps)
    return _result("tuneforge", start, [r["time"] for r in steps], a.warm, int(tokens), seconds)


def _result(side: str, start: float, step_ends: list[float], warm: int, tokens: int, rollout_seconds: float) -> dict:
    measured = step_ends[warm:]
    step = (measured[-1] - step_ends[warm - 1]) / len(measured) if warm and len(measured) else None
    return {"side": side, "steps": len(step_ends), "step_seconds": step,
            "rollout_tokens_per_second": tokens / rollout_seconds if rollout_seconds else None,
            "rollout_tokens": tokens, "rollout_seconds": rollout_seconds, "wall_seconds": time.perf_counter() - start}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", choices=["trl", "tuneforge"])
    p.add_argument("--model")
    p.add_argument("--prompts")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warm", type=int, default=2)
    p.add_argument("--G", type=int, default=8)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--completion-length", type=int, default=32)
    a = p.parse_args()
    if a.side:
        result = (trl_side if a.side == "trl" else tuneforge_side)(a)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    from tuneforge.models.builtin import save_toy

    work = Path(tempfile.mkdtemp())
    model = save_toy(work / "toy")
    prompts = work / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    common = ["--model", str(model), "--prompts", str(prompts), "--steps", str(a.steps), "--warm", str(a.warm),
              "--G", str(a.G), "--prompts-per-step", str(a.prompts_per_step),
              "--completion-length", str(a.completion_length)]
    results = {}
    for side in ("trl", "tuneforge"):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parent)}
        proc = subprocess.run([sys.executable, __file__, "--side", side, *common], capture_output=True, text=True,
                              env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return 1
        results[side] = json.loads(line[len("RESULT "):])
        print(line, flush=True)
    t, f = results["trl"], results["tuneforge"]
    print(f"step seconds: TRL {t['step_seconds']:.3f}, tuneforge {f['step_seconds']:.3f} "
          f"({t['step_seconds'] / f['step_seconds']:.2f}x); rollout tokens/s: TRL {t['rollout_tokens_per_second']:.0f}, "
          f"tuneforge {f['rollout_tokens_per_second']:.0f} "
          f"({f['rollout_tokens_per_second'] / t['rollout_tokens_per_second']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
