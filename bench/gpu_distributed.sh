#!/usr/bin/env bash
# Smoke test of the parallelisms on ONE lent GPU (about 3-4 minutes): DDP, FSDP full_shard and
# DeepSpeed ZeRO-2/3, each launched through torchrun with 1 process (accelerate enables FSDP/DeepSpeed
# only in a distributed launch), SFT LoRA and full, DPO LoRA. Each run trains 6 steps of the built-in
# toy model, saves, and its output is reloaded; the per-step losses are compared with the DDP run of the
# same method (same rows per step, so they should agree to bf16 noise).
#
#   bash bench/gpu_distributed.sh            # writes $OUT/gpu_distributed.md (or bench/out/) and prints it
#   ONLY='sft-lora' bash bench/gpu_distributed.sh   # a subset
#
# DeepSpeed is not in the GPU image: carry its wheels (built offline into bench/out/wheels:
# deepspeed + hjson, ninja, py-cpuinfo, msgpack, einops, pydantic, psutil, nvidia-ml-py).
set -u
cd "$(dirname "$0")/.."
OUTDIR="${OUT:-bench/out}"
mkdir -p "$OUTDIR"
RUNS="$(mktemp -d)"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python}"

# Installs into the GPU machine's Python only (never on a machine without CUDA, e.g. a shared dev venv).
if ! "$PY" -c "import deepspeed" 2>/dev/null && [ -d bench/out/wheels ] \
    && "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  "$PY" -m pip install -q --no-index --find-links bench/out/wheels deepspeed 2>&1 | tail -2
fi
HAVE_DS=$("$PY" -c "import deepspeed" 2>/dev/null && echo 1 || echo 0)
"$PY" -c "import torch, accelerate; print('torch', torch.__version__, '| accelerate', accelerate.__version__, '| gpu', torch.cuda.get_device_name(0))"

COMMON=(model=builtin:toy max_steps=6 logging_steps=1 eval_steps=3 per_device_train_batch_size=4
        gradient_accumulation_steps=2 seq_length=256 lora_dropout=0.0 learning_rate=1e-3 warmup_ratio=0
        overwrite_output_dir=true)
SFT=(training_strategy=sft train_data=examples/data/sft_train.jsonl validation_data=examples/data/sft_val.jsonl)
DPO=(training_strategy=dpo train_data=examples/data/dpo_train.jsonl validation_data=examples/data/dpo_val.jsonl)

run() {  # name, then key=value...
  local name=$1; shift
  [[ -n "${ONLY:-}" && ! "$name" =~ $ONLY ]] && return 0  # ONLY=regex runs a subset (e.g. ONLY='zero3')
  local start=$(date +%s)
  timeout 120 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m tuneforge.cli train \
      "${COMMON[@]}" "$@" output_dir="$RUNS/$name" --no-progress > "$RUNS/$name.log" 2>&1
  local rc=$?
  echo "$name $rc $(( $(date +%s) - start ))" >> "$RUNS/index.txt"
  echo "== $name: exit $rc"; [ $rc -ne 0 ] && grep -E "Error|error" "$RUNS/$name.log" | tail -3
}

run sft-lora-ddp   "${SFT[@]}" lora_dim=16
run sft-lora-fsdp  "${SFT[@]}" lora_dim=16 fsdp=full_shard
run sft-full-ddp   "${SFT[@]}" lora_dim=0
run sft-full-fsdp  "${SFT[@]}" lora_dim=0 fsdp=full_shard
run dpo-lora-ddp   "${DPO[@]}" lora_dim=16
run dpo-lora-fsdp  "${DPO[@]}" lora_dim=16 fsdp=full_shard
if [ "$HAVE_DS" = 1 ]; then
  run sft-lora-zero2 "${SFT[@]}" lora_dim=16 deepspeed=zero2
  run sft-lora-zero3 "${SFT[@]}" lora_dim=16 deepspeed=zero3
  run sft-full-zero2 "${SFT[@]}" lora_dim=0 deepspeed=zero2
  run sft-full-zero3 "${SFT[@]}" lora_dim=0 deepspeed=zero3
  run dpo-lora-zero2 "${DPO[@]}" lora_dim=16 deepspeed=zero2
else
  echo "deepspeed not importable: ZeRO runs skipped (carry bench/out/wheels)"
fi

"$PY" - "$RUNS" "$OUTDIR/gpu_distributed.md" <<'EOF'
import json, sys
from pathlib import Path

runs, dest = Path(sys.argv[1]), Path(sys.argv[2])
rows = [line.split() for line in (runs / "index.txt").read_text().splitlines()]

def records(name):
    f = runs / name / "metrics.jsonl"
    return [json.loads(l) for l in f.read_text().splitlines()] if f.is_file() else []

def reload_ok(name):
    out = runs / name
    try:
        import torch
        from transformers import AutoModelForCausalLM
        if (out / "adapter_config.json").is_file():
            from peft import PeftModel
            cfg = json.loads((out / "adapter_config.json").read_text())
            m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(cfg["base_model_name_or_path"]), out)
            trained = any(float(p.abs().sum()) > 0 for n, p in m.named_parameters() if "lora_B" in n)
        else:
            m = AutoModelForCausalLM.from_pretrained(out)
            trained = True
        x = torch.tensor([[1, 2, 3, 4]])
        finite = bool(torch.isfinite(m(input_ids=x).logits).all())
        return "yes" if (trained and finite) else f"trained={trained} finite={finite}"
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return f"no ({exc.__class__.__name__}: {str(exc)[:60]})"

lines = ["| run | parallelism (as the run reports it) | exit | wall s | final loss | final eval_loss | max abs loss diff vs DDP | reload |",
         "|---|---|---|---|---|---|---|---|"]
for name, rc, wall in rows:
    rec = records(name)
    losses = [r["loss"] for r in rec if "loss" in r]
    evals = [r["eval_loss"] for r in rec if "eval_loss" in r]
    base = name.rsplit("-", 1)[0] + "-ddp"
    ref = [r["loss"] for r in records(base) if "loss" in r]
    diff = max((abs(a - b) for a, b in zip(losses, ref)), default=float("nan")) if name != base and ref else ""
    parallelism = next((r.get("engine", "?") for r in rec if r.get("event") == "start"), "-")
    lines.append(f"| {name} | {parallelism} | {rc} | {float(wall):.0f} | {losses[-1] if losses else '-':.4} | "
                 f"{evals[-1] if evals else '-':.4} | {diff if diff == '' else f'{diff:.2e}'} | "
                 f"{reload_ok(name) if rc == '0' else '-'} |")
text = "\n".join(lines)
dest.write_text(text + "\n")
print(text)
EOF
for f in "$RUNS"/*.log; do cp "$f" "$OUTDIR/" 2>/dev/null; done
