#!/usr/bin/env bash
# Download the wheels bench/gpu.sh installs on the GPU machine (its image has torch, transformers, peft and
# accelerate, but not trl, datasets or liger-kernel) into .whl/ (git-ignored; pass it to the device run's
# `carry`), and copy the TRL side (bench/trl_side.py) beside them. Python 3.12, x86_64 manylinux; ~65 MB without bitsandbytes.
#   bash bench/fetch_gpu_wheels.sh            # trl, datasets (+ pyarrow, pandas, ...), liger-kernel
#   WITH_BNB=1 bash bench/fetch_gpu_wheels.sh # also bitsandbytes (+43 MB) for QLoRA runs
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
mkdir -p "$DEST"
# trl, datasets, pandas, dill, multiprocess, xxhash as on the CPU benchmark (datasets 5.2 works with
# huggingface_hub 2.x; datasets 4.x needs hub < 2 and httpx); pyarrow 24, the oldest datasets 5.2 accepts,
# is 6 MB smaller than the newest. The dependencies listed are those of trl/datasets/liger that a
# torch+transformers image lacks (checked with: unzip -p .whl/NAME-*.whl '*/METADATA' | grep ^Requires-Dist).
PKGS=(
  trl==1.16.0 datasets==5.2.0 liger-kernel==0.8.5
  pyarrow==24.0.0 pandas==3.1.1 python-dateutil==4.0.0 tzdata==2026.6
  dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0
)
if [[ "${WITH_BNB:-0}" == 1 ]]; then PKGS+=(bitsandbytes==0.50.2); fi
for spec in "${PKGS[@]}"; do
  name=${spec%%==*}
  if ls "$DEST"/"${name//-/_}"-"${spec##*==}"-*.whl >/dev/null 2>&1; then continue; fi
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" "$spec"
done
ANCHOR=${ANCHOR:-bench/trl_side.py}
cp "$ANCHOR" "$DEST/trl_anchor.py"
du -sh "$DEST"
ls -1 "$DEST"
