"""tuneforge vs the TRL anchor, side by side, on the same model and the same rows.

For one (mode, method, shape) the harness
  1. dumps the anchor's random-init model and its exact data (``trl_anchor.py --dump --arch llama``),
  2. runs the anchor (TRL) as a subprocess with the same arguments,
  3. runs ``tuneforge train`` as a subprocess on the dumped model directory and data.jsonl,
measuring each process's whole wall time and peak RSS (``os.wait4``), reading the steady-state real
tokens/s each reports (TRL: its RESULT line; tuneforge: metrics.jsonl after the warm-up steps), and
prints a table with the ratios. Results are appended to ``bench/out/results.jsonl``.

    python bench/run_bench.py --suite cpu                      # SFT LoRA, DPO LoRA, full SFT (small shape)
    python bench/run_bench.py --mode sft --method lora         # one comparison
    python bench/run_bench.py --mode sft --method lora --skip-trl --set packing=true
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from report import fmt, table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_ANCHOR_PATHS = (HERE / "trl_side.py",)  # the TRL side, in this repository
# What each method means for the anchor (it has no QLoRA: 4-bit runs are compared with TRL LoRA).
ANCHOR_PEFT = {"lora": "lora", "full": "full", "qlora4": "lora"}
CPU_SUITE = (("sft", "lora"), ("dpo", "lora"), ("sft", "full"))


@dataclass
class ProcessRun:
    """One measured subprocess."""

    name: str
    wall_s: float
    peak_rss_gib: float
    returncode: int
    log: str
    cpu_s: float | None = None  # user + system CPU time: less sensitive than wall time to other load
    tok_per_s: float | None = None
    sec_per_step: float | None = None
    gpu_peak_gib: float | None = None
    extra: dict = field(default_factory=dict)


def find_anchor(explicit: str | None) -> Path:
    for path in ([Path(explicit)] if explicit else list(DEFAULT_ANCHOR_PATHS)):
        if path.is_file():
            return path.resolve()
    raise SystemExit("TRL-side script not found: pass --anchor PATH (looked in "
                     + ", ".join(str(p) for p in DEFAULT_ANCHOR_PATHS) + ")")


def measure(name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``cmd`` to completion; wall time and peak RSS of that process tree (wait4 rusage)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kib = usage.ru_maxrss  # KiB on Linux
    return ProcessRun(name, round(wall, 2), round(peak_kib / 2**20, 3), proc.returncode, str(log_path),
                      cpu_s=round(usage.ru_utime + usage.ru_stime, 2))


def anchor_args(a: argparse.Namespace, mode: str, peft: str) -> list[str]:
    args = ["--arch", "llama", "--size", a.size, "--mode", mode, "--steps", str(a.steps), "--warm", str(a.warm),
            "--bs", str(a.bs), "--max-length", str(a.max_length)]
    if peft:
        args += ["--peft", peft]
    return args


def dump(a: argparse.Namespace, anchor: Path, mode: str, work: Path) -> Path:
    """The anchor's model and rows; reused when the same shape was dumped before (the dump is deterministic)."""
    target = work / f"dump-{a.size}-{mode}-s{a.steps}w{a.warm}b{a.bs}L{a.max_length}"
    if (target / "data.jsonl").is_file() and (target / "model" / "config.json").is_file():
        return target
    cmd = [sys.executable, str(anchor), "--dump", str(target)] + anchor_args(a, mode, "")
    run = measure("dump", cmd, work / "logs" / f"{target.name}.log")
    if run.returncode != 0:
        raise SystemExit(f"dump failed (exit {run.returncode}); see {run.log}")
    return target


def run_trl(a: argparse.Namespace, anchor: Path, mode: str, method: str, work: Path, tag: str) -> ProcessRun:
    cmd = [sys.executable, str(anchor)] + anchor_args(a, mode, ANCHOR_PEFT[method]) + a.trl_arg
    run = measure("trl", cmd, work / "logs" / f"{tag}-trl.log")
    for line in Path(run.log).read_text(errors="replace").splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[len("RESULT "):])
            run.tok_per_s, run.sec_per_step = res.get("real_tok_per_s"), res.get("sec_per_step")
            run.gpu_peak_gib = res.get("peak_mem_gib")
            run.extra = res
    return run


def tuneforge_config(a: argparse.Namespace, mode: str, method: str, data_dir: Path, out_dir: Path) -> dict:
    cfg = dict(training_strategy=mode, model=str(data_dir / "model"), train_data=str(data_dir / "data.jsonl"),
               output_dir=str(out_dir), overwrite_output_dir=True, per_device_train_batch_size=a.bs,
               gradient_accumulation_steps=1, seq_length=a.max_length, learning_rate=1e-4, num_train_epochs=1,
               max_steps=a.steps + a.warm, logging_steps=1, eval_steps=0, apply_chat_template=False,
               save_steps=-1,  # no resumable checkpoints: the anchor runs with save_strategy="no"
               lora_dim=0 if method == "full" else 32, lora_alpha=64, lora_dropout=0.0,
               lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], load_in_4bit=method == "qlora4")
    if mode == "dpo":
        cfg["dpo_beta"] = 0.1
    if method == "full":
        cfg.pop("lora_alpha")
    return cfg


def steady_tokens_per_second(metrics_path: Path, warm: int) -> tuple[float | None, float | None, float | None]:
    """(real tokens/s, s/step) over the steps after ``warm``, and the peak GPU memory, from metrics.jsonl.

    Each step record's ``tokens_per_second`` covers the interval since the previous record, so the
    tokens of a step are its rate times the time between consecutive records."""
    if not metrics_path.is_file():
        return None, None, None
    recs = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    steps = [r for r in recs if "tokens_per_second" in r and "event" not in r and "step" in r]
    gpu = max((r.get("gpu_peak_allocated_gib") or 0.0 for r in recs), default=0.0) or None
    by_step = {r["step"]: r for r in steps}
    tokens = seconds = 0.0
    n = 0
    for s in sorted(by_step):
        if s <= warm or s - 1 not in by_step:
            continue
        dt = by_step[s]["time"] - by_step[s - 1]["time"]
        tokens += by_step[s]["tokens_per_second"] * dt
        seconds += dt
        n += 1
    if not n or seconds <= 0:
        return None, None, gpu
    return tokens / seconds, seconds / n, gpu


def _start_event(metrics_path: Path) -> dict:
    if metrics_path.is_file():
        for line in metrics_path.read_text().splitlines():
            rec = json.loads(line) if line.strip() else {}
            if rec.get("event") == "start":
                return rec
    return {}


def run_tuneforge(a: argparse.Namespace, mode: str, method: str, data_dir: Path, work: Path, tag: str) -> ProcessRun:
    out_dir = work / f"{tag}-tuneforge"
    cfg = tuneforge_config(a, mode, method, data_dir, out_dir)
    cfg_path = work / f"{tag}-tuneforge.json"
    cfg_path.write_text(json.dumps(cfg, indent=1))
    cmd = [sys.executable, "-m", "tuneforge.cli", "train", str(cfg_path), "--no-progress"] + a.set
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    run = measure("tuneforge", cmd, work / "logs" / f"{tag}-tuneforge.log", env=env)
    run.tok_per_s, run.sec_per_step, run.gpu_peak_gib = steady_tokens_per_second(out_dir / "metrics.jsonl", a.warm)
    run.extra = {"overrides": a.set, "params": _start_event(out_dir / "metrics.jsonl").get("total_params")}
    return run


def token_check(data_dir: Path, mode: str, max_length: int) -> dict:
    """Does tuneforge train on the tokens the anchor counts? Per sequence (SFT row; DPO prompt+chosen and
    prompt+rejected): prompt + answer + EOS (the anchor's ``real``), capped at max_length."""
    sys.path.insert(0, str(REPO / "src"))
    from tuneforge.config import from_dict
    from tuneforge.models.load import load_tokenizer

    cfg = from_dict(dict(model=str(data_dir / "model"), train_data=str(data_dir / "data.jsonl"), seq_length=max_length,
                         apply_chat_template=False, training_strategy=mode))
    tok = load_tokenizer(cfg.model)
    rows = [json.loads(line) for line in (data_dir / "data.jsonl").read_text().splitlines() if line.strip()]
    answers = ("completion",) if mode == "sft" else ("chosen", "rejected")
    want = [min(max_length, len(r["prompt"].split()) + len(r[k].split()) + 1) for r in rows for k in answers]
    if mode == "sft":
        from tuneforge.data.sft import build_sft_data

        got = [len(r.input_ids) for r in build_sft_data(cfg, tok).train.rows]
    else:
        from tuneforge.data.dpo import build_dpo_data

        got = [len(seq.input_ids) for p in build_dpo_data(cfg, tok).train.pairs for seq in p.sequences()]
    return {"sequences": len(want), "tokens_match": got == want, "anchor_real_tokens": sum(want),
            "tuneforge_tokens": sum(got)}


def versions() -> dict:
    out = {}
    for mod in ("torch", "transformers", "peft", "accelerate", "trl"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing library is reported, not fatal
            out[mod] = None
    return out


def run_one(a: argparse.Namespace, anchor: Path, mode: str, method: str, work: Path) -> dict:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"{a.size}-{mode}-{method}-{stamp}"
    data_dir = dump(a, anchor, mode, work)
    result = {"label": f"{a.size} {mode.upper()} {method}", "mode": mode, "method": method, "size": a.size,
              "steps": a.steps, "warm": a.warm, "bs": a.bs, "max_length": a.max_length, "rows": (a.steps + a.warm) * a.bs,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(), "load_avg_before": os.getloadavg(),
              "versions": versions(), "trl_args": a.trl_arg, "tuneforge_overrides": a.set}
    if a.check_tokens:
        result["token_check"] = token_check(data_dir, mode, a.max_length)
        print("token check:", result["token_check"], flush=True)
    order = ["tuneforge"] if a.skip_trl else ["trl", "tuneforge"]
    for who in order:
        print(f"[{result['label']}] running {who} ...", flush=True)
        run = run_trl(a, anchor, mode, method, work, tag) if who == "trl" else run_tuneforge(a, mode, method, data_dir, work, tag)
        if run.returncode != 0:
            print(f"  {who} FAILED with exit {run.returncode}; log: {run.log}", flush=True)
        else:
            print(f"  {who}: {run.wall_s:.1f} s wall ({run.cpu_s:.1f} s CPU), {run.peak_rss_gib:.2f} GiB peak RSS, "
                  f"{fmt(run.tok_per_s, '.0f')} tok/s", flush=True)
        result[who] = asdict(run)
    result["load_avg_after"] = os.getloadavg()
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["cpu"], help="cpu: SFT LoRA, DPO LoRA and full SFT on the small shape")
    ap.add_argument("--mode", choices=["sft", "dpo"], default="sft")
    ap.add_argument("--method", choices=["lora", "full", "qlora4"], default="lora")
    ap.add_argument("--size", default="small", help="anchor shape: tiny, small, 0.5b, 1.5b, 7b")
    ap.add_argument("--steps", type=int, default=4, help="timed steps (after --warm)")
    ap.add_argument("--warm", type=int, default=2, help="warm-up steps, excluded from tok/s")
    ap.add_argument("--bs", type=int, default=8, help="rows per step, both sides (the anchor's default is 8)")
    ap.add_argument("--max-length", type=int, default=512, help="anchor max_length = tuneforge seq_length")
    ap.add_argument("--anchor", help="path to the TRL-side script (default: bench/trl_side.py)")
    ap.add_argument("--work", default=str(HERE / "out" / "work"), help="dumps, configs, logs, run outputs")
    ap.add_argument("--out", default=str(HERE / "out" / "results.jsonl"), help="JSON lines appended here")
    ap.add_argument("--skip-trl", action="store_true", help="tuneforge only (no TRL run, no ratios)")
    ap.add_argument("--trl-arg", action="append", default=[], help="extra anchor argument, e.g. --trl-arg=--gc=0")
    ap.add_argument("--set", action="append", default=[], help="extra tuneforge key=value override (repeatable)")
    ap.add_argument("--no-check-tokens", dest="check_tokens", action="store_false",
                    help="skip the check that tuneforge tokenizes the rows as the anchor counts them")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    anchor = find_anchor(a.anchor)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    combos = CPU_SUITE if a.suite == "cpu" else ((a.mode, a.method),)
    results = []
    for mode, method in combos:
        res = run_one(a, anchor, mode, method, work)
        results.append(res)
        with open(a.out, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    print()
    print(table(results))
    failed = [r["label"] for r in results if any((r.get(w) or {}).get("returncode") for w in ("trl", "tuneforge"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
