"""Writes grpo_arithmetic_train.jsonl / grpo_arithmetic_val.jsonl: small sums with their numeric answers.

Each row is a prompt and an `answer` column; the `accuracy` reward compares the completion's last number
(or \\boxed{}) with it. Deterministic: rerunning writes the same files.
"""
import json
import random
from pathlib import Path

HERE = Path(__file__).parent


def rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        op = rng.choice("+-")
        out.append({"prompt": f"What is {a} {op} {b}? Answer with the number only.",
                    "answer": str(a + b if op == "+" else a - b)})
    return out


if __name__ == "__main__":
    for name, n, seed in (("grpo_arithmetic_train.jsonl", 64, 1), ("grpo_arithmetic_val.jsonl", 8, 2)):
        (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in rows(n, seed)), encoding="utf-8")
