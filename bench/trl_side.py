"""The TRL side of the benchmark: TRL's SFTTrainer / DPOTrainer on a random-init model of a named shape.

It follows the project's measurement protocol (the same shapes and length distribution as the reference
figures in bench/RESULTS.md): random words of a word-level vocabulary, SFT prompts of 16–256 words and
answers of 16–768, DPO prompts of 16–256 and each response of 16–512; real (non-pad) tokens per second
counted after ``--warm`` steps; LoRA r=32, alpha=64 on q, k, v, o; learning rate 1e-4; bf16 on CUDA.

    python bench/trl_side.py --size small --mode sft --peft lora --steps 4 --warm 1   # prints RESULT {...}
    python bench/trl_side.py --size small --mode sft --dump DIR                       # model + data.jsonl, no training

``run_bench.py`` first dumps (``--dump DIR --arch llama``) so that tuneforge trains on exactly the rows and the
model TRL trains on, then runs this script for the TRL figures. Needs ``trl`` and ``datasets``
(``pip install -e ".[test]"``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time

import torch
from transformers import TrainerCallback

# Model shapes (Qwen2.5 numbers for 0.5b/1.5b/7b; tiny and small are CPU-sized).
SHAPES = {
    "tiny": dict(vocab_size=4096, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
    "small": dict(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=True),
    "0.5b": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
    "7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4),
}
SPECIAL = ("<pad>", "<eos>", "<unk>")  # ids 0, 1, 2; every other id is the word "w<id>"


def word_tokenizer(vocab_size: int):
    """A whitespace word-level tokenizer: one token per word, so lengths are exact and cheap to count."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {name: i for i, name in enumerate(SPECIAL)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL), vocab_size)})
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def random_model(size: str, arch: str):
    """Random-init weights (seed 0); llama = the same shape without q/k/v biases."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if arch == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    config = config_cls(**SHAPES[size], max_position_embeddings=32768, rope_theta=1e6)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = model_cls(config)
    return model.to(torch.bfloat16 if device == "cuda" else torch.float32)


def synthetic_rows(mode: str, count: int, vocab_size: int, max_length: int) -> tuple[list[dict], list[int]]:
    """Rows of random words and, per row, the real tokens a trainer sees (capped at max_length, + EOS)."""
    rng = random.Random(0)

    def text(lo: int, hi: int) -> str:
        return " ".join(f"w{rng.randrange(len(SPECIAL), vocab_size)}" for _ in range(rng.randint(lo, hi)))

    def real(prompt: str, answer: str) -> int:
        return min(max_length, len(prompt.split()) + len(answer.split()) + 1)

    rows, real_tokens = [], []
    for _ in range(count):
        prompt = text(16, 256)
        if mode == "sft":
            row = {"prompt": prompt, "completion": " " + text(16, 768)}
            real_tokens.append(real(prompt, row["completion"]))
        else:
            row = {"prompt": prompt, "chosen": " " + text(16, 512), "rejected": " " + text(16, 512)}
            real_tokens.append(real(prompt, row["chosen"]) + real(prompt, row["rejected"]))
        rows.append(row)
    return rows, real_tokens


def write_dump(directory: str, model, tokenizer, rows: list[dict]) -> None:
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(os.path.join(directory, "model"))
    tokenizer.save_pretrained(os.path.join(directory, "model"))
    with open(os.path.join(directory, "data.jsonl"), "w") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)


class StepClock(TrainerCallback):
    """Wall time from the end of the warm-up steps to the last step."""

    def __init__(self, warm: int):
        self.warm, self.start, self.end, self.timed_steps = warm, None, None, 0

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if state.global_step == self.warm:
            self.start = time.perf_counter()
        elif state.global_step > self.warm:
            self.timed_steps, self.end = state.global_step - self.warm, time.perf_counter()


def build_trainer(a: argparse.Namespace, model, tokenizer, rows: list[dict], clock):
    from datasets import Dataset

    lora = None
    if a.peft == "lora":
        from peft import LoraConfig

        lora = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, task_type="CAUSAL_LM",
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    common = dict(output_dir=tempfile.mkdtemp(prefix="trl-side-"), per_device_train_batch_size=a.bs,
                  max_steps=a.steps + a.warm, learning_rate=1e-4, logging_steps=1000, save_strategy="no",
                  report_to="none", bf16=torch.cuda.is_available(), gradient_checkpointing=bool(a.gc),
                  max_length=a.max_length, dataloader_num_workers=0, use_liger_kernel=a.liger, seed=0,
                  disable_tqdm=True)
    data = Dataset.from_list(rows)
    if a.mode == "sft":
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer(model=model, args=SFTConfig(**common, packing=a.packing), train_dataset=data,
                          processing_class=tokenizer, peft_config=lora, callbacks=[clock])
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**common, beta=0.1, precompute_ref_log_probs=a.precompute_ref)
    return DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora,
                      callbacks=[clock])


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--arch", default="qwen2", choices=["qwen2", "llama"])
    ap.add_argument("--mode", default="sft", choices=["sft", "dpo"])
    ap.add_argument("--peft", default="lora", choices=["lora", "full"])
    ap.add_argument("--bs", type=int, default=8, help="rows per step")
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warm", type=int, default=5, help="untimed warm-up steps")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--packing", action="store_true")
    ap.add_argument("--gc", type=int, default=1, help="gradient checkpointing (TRL's default: on)")
    ap.add_argument("--liger", action="store_true", help="Liger kernels (needs liger-kernel)")
    ap.add_argument("--precompute-ref", action="store_true", help="DPO: precompute the reference log-probs")
    ap.add_argument("--dump", help="write DIR/model and DIR/data.jsonl (the rows a timed run consumes), then exit")
    return ap.parse_args()


def main() -> None:
    a = parse_args()
    model = random_model(a.size, a.arch)
    tokenizer = word_tokenizer(model.config.vocab_size)
    rows, real_tokens = synthetic_rows(a.mode, (a.steps + a.warm + 2) * a.bs, model.config.vocab_size, a.max_length)
    if a.dump:
        consumed = (a.steps + a.warm) * a.bs
        write_dump(a.dump, model, tokenizer, rows[:consumed])
        print(f"dumped {consumed} rows to {a.dump}")
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    clock = StepClock(a.warm)
    build_trainer(a, model, tokenizer, rows, clock).train()
    seconds = clock.end - clock.start
    tokens_per_s = clock.timed_steps * a.bs * (sum(real_tokens) / len(real_tokens)) / seconds
    result = dict(anchor="trl", arch=a.arch, size=a.size, mode=a.mode, peft=a.peft, bs=a.bs, packing=a.packing,
                  gc=a.gc, liger=a.liger, steps=clock.timed_steps, sec_per_step=round(seconds / clock.timed_steps, 4),
                  real_tok_per_s=round(tokens_per_s, 1),
                  peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
                  params=sum(p.numel() for p in model.parameters()),
                  device=torch.cuda.get_device_name() if cuda else "cpu")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
