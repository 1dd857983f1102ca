"""Count the activations autograd keeps per decoder layer and token, for the memory estimator's coefficients.

For each shape and mode (LoRA r32 on q,k,v,o with and without dropout, full training) one forward pass of
tuneforge's training module (``CausalLMLoss``) runs under ``torch.autograd.graph.saved_tensors_hooks``; the
bytes of every distinct storage saved for backward (parameters excluded) are summed. Two depths (1 and 3
layers) separate the per-layer count from what lies outside the layers (embeddings, final norm, loss).
Results go to ``bench/memory/measured.json`` under ``saved_tensors`` (fp32 elements per layer and token);
``tests/unit/models/test_memory_calibration.py`` checks the estimator's coefficients against them.

    python bench/memory/saved_tensors.py        # ~1 minute on one core
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "measured.json"
# (hidden, intermediate, heads, kv heads): different ratios so the hidden / kv / intermediate terms separate
SHAPES = [(128, 384, 4, 2), (256, 1024, 4, 4), (512, 1408, 8, 4), (384, 2048, 6, 2), (256, 512, 8, 1)]
MODES = ("lora", "lora_dropout", "full")


def saved_elements_per_token(hidden: int, inter: int, heads: int, kv_heads: int, layers: int, mode: str,
                             batch: int = 2, tokens: int = 256, vocab: int = 2000) -> float:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneforge.models.forward import CROSS_ENTROPY, CausalLMLoss

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg)
    if mode != "full":
        model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.05 if mode == "lora_dropout" else 0.0,
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    module = CausalLMLoss(model)
    module.train()
    ids = torch.randint(3, vocab, (batch, tokens))
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(ids, torch.ones_like(ids), None, targets=ids.clone(), output=CROSS_ENTROPY)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params) / 4 / (batch * tokens)


def main() -> None:
    torch.manual_seed(0)
    rows = []
    for hidden, inter, heads, kv_heads in SHAPES:
        for mode in MODES:
            one = saved_elements_per_token(hidden, inter, heads, kv_heads, 1, mode)
            three = saved_elements_per_token(hidden, inter, heads, kv_heads, 3, mode)
            per_layer = (three - one) / 2
            rows.append({"hidden": hidden, "intermediate": inter, "kv_width": kv_heads * hidden // heads,
                         "mode": mode, "lora_dim": 0 if mode == "full" else 32,
                         "per_layer_elements": round(per_layer, 1), "outside_layers_elements": round(one - per_layer, 1)})
            print(rows[-1], flush=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    data["saved_tensors"] = rows
    data["saved_tensors_source"] = {"command": "python bench/memory/saved_tensors.py",
                                    "date": datetime.date.today().isoformat(), "torch": torch.__version__}
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
