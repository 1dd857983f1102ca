"""One data-preparation measurement in this (fresh) process; prints one JSON line.

    python bench/data/measure.py tuneforge --kind sft --data F.jsonl --cache DIR --workers N
    python bench/data/measure.py trl --kind sft --data F.jsonl --cache DIR --workers N
    python bench/data/measure.py train --kind sft --data F.jsonl --cache DIR --workers N --out DIR

``tuneforge``: ``split.prepare_data`` (read, tokenize, cache write or hit, split, lengths) — what
``tuneforge train`` does before loading weights. ``trl``: ``datasets.load_dataset("json")`` plus the
trainer's own ``_prepare_dataset`` (its ``datasets.map`` tokenization), the trainer built beforehand
on a 2-row set so its fixed start-up is not counted. ``train``: the whole ``tuneforge train`` run with
``max_steps=2``. Peak RSS: this process (``ru_maxrss``), and the sum over its process tree sampled
every 50 ms (forked workers share pages, so the sum over-counts them).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time

import psutil


class TreePeak:
    """Peak of the summed RSS of this process and its children, sampled in a thread."""

    def __init__(self, interval: float = 0.05, pss: bool = False):
        self.peak, self.peak_pss, self.interval, self._stop = 0, 0, interval, threading.Event()
        self.pss = pss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = pss = 0
            for p in [me] + me.children(recursive=True):
                try:
                    if self.pss:  # proportional set size: shared pages counted once over the tree
                        info = p.memory_full_info()
                        pss += info.pss
                        total += info.rss
                    else:
                        total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, pss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _tuneforge(args) -> dict:
    from tuneforge.config import from_dict
    from tuneforge.data.split import prepare_data
    from tuneforge.models.load import load_tokenizer

    cfg = from_dict({"train_data": args.data, "training_strategy": args.kind, "data_cache_dir": args.cache,
                     "data_num_workers": args.workers, "seq_length": 1024})
    tok = load_tokenizer(cfg.model)
    start = time.perf_counter()
    data = prepare_data(cfg, tok)
    seconds = time.perf_counter() - start
    store = data.train.items.stores[0]
    return {"seconds": seconds, "rows": len(data.train), "tokens": int(len(store.arrays["ids"])),
            "built": store.built_here}


def _trl(args) -> dict:
    os.environ["HF_DATASETS_CACHE"] = args.cache
    import datasets
    from datasets import Dataset, load_dataset

    from tuneforge.models.builtin import toy_model
    from tuneforge.models.load import load_tokenizer

    datasets.disable_progress_bars()
    tok = load_tokenizer("builtin:toy")
    model = toy_model(tok)
    common = dict(output_dir=os.path.join(args.cache, "trl-out"), report_to=[], dataset_num_proc=args.workers,
                  use_cpu=True, bf16=False,
                  max_length=1024)
    if args.kind == "sft":
        from trl import SFTConfig, SFTTrainer

        tiny = Dataset.from_list([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 2)
        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=tiny, processing_class=tok)
        prepare = lambda ds: trainer._prepare_dataset(ds, tok, trainer.args, False, None, "train")  # noqa: E731
    else:
        from trl import DPOConfig, DPOTrainer

        tiny = Dataset.from_list([{"prompt": "q", "chosen": "a", "rejected": "b"}] * 2)
        trainer = DPOTrainer(model=model, ref_model=toy_model(tok), args=DPOConfig(**common), train_dataset=tiny,
                             processing_class=tok)
        prepare = lambda ds: trainer._prepare_dataset(ds, tok, trainer.args, "train")  # noqa: E731
    start = time.perf_counter()
    ds = load_dataset("json", data_files=args.data, split="train", cache_dir=args.cache)
    ds = prepare(ds)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(ds)}


def _train(args) -> dict:
    import tuneforge

    start = time.perf_counter()
    summary = tuneforge.train({"train_data": args.data, "training_strategy": args.kind, "data_cache_dir": args.cache,
                               "data_num_workers": args.workers, "seq_length": 1024, "max_steps": 2,
                               "per_device_train_batch_size": 2, "output_dir": args.out,
                               "overwrite_output_dir": True, "save_steps": -1, "logging_steps": 1}, progress=False)
    return {"seconds": time.perf_counter() - start, "steps": summary.steps, "loss": summary.train_loss}


def _train_processes(args) -> dict:
    """``tuneforge train --nproc N`` as a child process group (the tree's peak RSS and PSS are sampled)."""
    import subprocess

    overrides = [f"train_data={args.data}", f"training_strategy={args.kind}", f"data_cache_dir={args.cache}",
                 f"data_num_workers={args.workers}", "seq_length=1024", "max_steps=2", "per_device_train_batch_size=2",
                 f"output_dir={args.out}", "overwrite_output_dir=true", "save_steps=-1", "logging_steps=1"]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tuneforge.cli", "train", *overrides, "--nproc", str(args.nproc),
                           "--no-progress"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return {"seconds": time.perf_counter() - start, "nproc": args.nproc}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("tuneforge", "trl", "train", "train-nproc"))
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--kind", choices=("sft", "dpo"), required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="/tmp/tuneforge-bench-data-run")
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with TreePeak(pss=args.what.startswith("train")) as tree:
        result = {"tuneforge": _tuneforge, "trl": _trl, "train": _train, "train-nproc": _train_processes}[args.what](args)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    result["peak_tree_rss_gib"] = tree.peak / 2 ** 30
    if tree.pss:
        result["peak_tree_pss_gib"] = tree.peak_pss / 2 ** 30
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
