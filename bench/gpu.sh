#!/usr/bin/env bash
# GPU benchmark (one H100/H200, bf16, ~8 minutes): tuneforge vs the TRL anchor.
#   1. 0.5B SFT LoRA, batch 8: TRL at its best setting (no gradient checkpointing) and tuneforge side by side
#      (tuneforge padded+length-grouped, then packed with flex attention).
#   2. 7B SFT LoRA, batch 4: tuneforge (MFU = 4 x params x real tok/s / 989e12), then TRL's best (--liger --gc 0)
#      if the time budget allows.
# Needs .whl/ from bench/fetch_gpu_wheels.sh (carried: the image lacks trl, datasets, liger-kernel).
# Writes $OUT/results.jsonl, $OUT/gpu.log, $OUT/table.txt and the run logs. Run from the repo root:
#   OUT=/tmp/out bash bench/gpu.sh          (device runner: carry [".whl"])
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD/src
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
WORK=${WORK:-/tmp/tf-bench}
BUDGET_S=${BUDGET_S:-480}
STEPS=${STEPS:-10}
WARM=${WARM:-3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
say() { echo "[$(elapsed)s] $*" | tee -a "$LOG"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c \
  "import torch, transformers, peft, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__)"; \
  python3 -c "import liger_kernel; print('liger-kernel ok')"; } >>"$LOG" 2>&1

bench() {  # label, then run_bench.py arguments
  local label=$1; shift
  say "start: $label"
  python3 bench/run_bench.py --work "$WORK" --out "$OUT/results.jsonl" \
    --steps "$STEPS" --warm "$WARM" --max-length 1024 --no-check-tokens "$@" >>"$LOG" 2>&1
  say "done ($?): $label"
}

# 1. 0.5B SFT LoRA, bs 8 (the dump is shared by the runs below)
bench "0.5b sft lora: TRL gc0 vs tuneforge" --size 0.5b --mode sft --method lora --bs 8 --trl-arg=--gc=0
bench "0.5b sft lora: tuneforge packed+flex" --size 0.5b --mode sft --method lora --bs 8 --skip-trl \
  --set packing=true --set attn_implementation=flex_attention

# 2. 7B SFT LoRA, bs 4: tuneforge first (the target), then TRL's best beside tuneforge's default if time is left
if (( $(elapsed) < BUDGET_S - 200 )); then
  bench "7b sft lora: tuneforge packed+flex" --size 7b --mode sft --method lora --bs 4 --skip-trl \
    --set packing=true --set attn_implementation=flex_attention
fi
if (( $(elapsed) < BUDGET_S - 150 )); then
  bench "7b sft lora: TRL liger gc0 vs tuneforge padded" --size 7b --mode sft --method lora --bs 4 \
    --trl-arg=--liger --trl-arg=--gc=0
else
  say "skipped TRL 7B (time budget)"
fi

python3 bench/report.py "$OUT/results.jsonl" >"$OUT/table.txt" 2>>"$LOG"
cat "$OUT/table.txt" | tee -a "$LOG"
mkdir -p "$OUT/logs" && cp "$WORK"/logs/*.log "$OUT/logs/" 2>/dev/null
rm -rf "$WORK"/*-tuneforge  # run outputs (adapters) are not needed
say "total $(elapsed)s"
