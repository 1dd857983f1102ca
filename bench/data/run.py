"""Data benchmark: tuneforge's tokenized cache against TRL's dataset preparation, on the same files.

    python bench/data/run.py --sizes 10000 100000 --kinds sft dpo            # both, first run + cache hit
    python bench/data/run.py --sizes 1000000 --kinds sft --no-trl --train    # + a max_steps=2 run at that size

Each measurement runs in a fresh process (``measure.py``) so its peak RSS is its own. Results are
appended to ``bench/data/results.jsonl`` and the table in ``bench/data/RESULTS.md`` is regenerated
from all recorded results (see README.md here).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import synth

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.jsonl"


def _measure(what: str, kind: str, data: Path, cache: Path, workers: int, out: Path | None = None) -> dict:
    strategy = "dpo" if kind == "dpo" else "sft"
    cmd = [sys.executable, str(HERE / "measure.py"), what, "--kind", strategy, "--data", str(data), "--cache", str(cache),
           "--workers", str(workers)] + (["--out", str(out)] if out else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _versions() -> dict:
    import datasets
    import numpy
    import tokenizers
    import transformers
    import trl

    return {"python": platform.python_version(), "numpy": numpy.__version__, "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__, "datasets": datasets.__version__, "trl": trl.__version__}


def _record(row: dict) -> None:
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def run(sizes: list[int], kinds: list[str], workers: int, work: Path, trl: bool, train: bool) -> None:
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
            "cpus": os.cpu_count(), "load_avg_1m_at_start": os.getloadavg()[0], "workers": workers, **_versions()}
    for size in sizes:
        for kind in kinds:
            data = synth.write(work / f"{kind}_{size}.jsonl", kind, size)
            base = {**meta, "kind": kind, "rows": size, "file_mib": round(data.stat().st_size / 2 ** 20, 1)}
            ours = work / f"cache-tuneforge-{kind}-{size}"
            shutil.rmtree(ours, ignore_errors=True)
            for phase in ("first", "hit"):
                _record({**base, "tool": "tuneforge", "phase": phase, **_measure("tuneforge", kind, data, ours, workers)})
            if train:
                _record({**base, "tool": "tuneforge", "phase": "train max_steps=2 (cache hit)",
                         **_measure("train", kind, data, ours, workers, work / f"run-{kind}-{size}")})
            shutil.rmtree(ours, ignore_errors=True)
            if trl:
                theirs = work / f"cache-trl-{kind}-{size}"
                shutil.rmtree(theirs, ignore_errors=True)
                for phase in ("first", "hit"):
                    _record({**base, "tool": "trl", "phase": phase, **_measure("trl", kind, data, theirs, workers)})
                shutil.rmtree(theirs, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--kinds", nargs="+", choices=("sft", "sft_short", "dpo"), default=["sft", "dpo"],
                   help="sft: chat rows of ~300 tokens (Chinese and English); sft_short: ~50 tokens; dpo: pairs")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--work", type=Path, default=Path("/tmp/tuneforge-bench-data"), help="data files and caches")
    p.add_argument("--no-trl", action="store_true", help="skip TRL's preparation")
    p.add_argument("--train", action="store_true", help="also run tuneforge train max_steps=2 on the cached data")
    args = p.parse_args()
    run(args.sizes, args.kinds, args.workers, args.work, not args.no_trl, args.train)
    return 0


if __name__ == "__main__":
    sys.exit(main())
