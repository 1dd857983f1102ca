"""Serving throughput: `tuneforge serve` against `transformers serve`, same model, same requests, one run.

1. Trains a tiny SFT LoRA run on the built-in toy model (`examples/configs/sft_lora.yaml`, 1 step, a small
   learning rate so its greedy answers are long rather than an immediate end-of-turn), and merges it
   (`tuneforge merge`), because `transformers serve` cannot load a PEFT adapter directory.
2. Starts each server as a subprocess on 127.0.0.1 (a free port), waits until it answers, sends 2 warm-up
   requests, then for each concurrency level C sends C * R chat requests from C concurrent clients
   (greedy, `max_tokens` fixed, distinct prompts) and records requests/s and completion tokens/s (the
   servers' own `usage.completion_tokens`) over the wall time of the level, and the server's peak resident
   memory (its process tree, sampled every 0.2 s with psutil) over the whole run.

    python bench/serve/bench_serve.py                      # levels 1,4,16; 4 requests per client; 64 tokens; 2 tries
    python bench/serve/bench_serve.py --levels 1,4 --requests-per-client 2 --max-tokens 32

Servers: `tuneforge` (the adapter run, --max-batch-size 16), `tuneforge-merged` (the merged run, so the cost
of applying LoRA at run time shows), `transformers-serve` (the merged run) and `transformers-serve-cb` (the
merged run, --continuous-batching). Each level runs --repeats times and keeps the fastest try (other load on
a shared machine only slows a try down). A server that fails to start or to answer is reported as failed with
its last log lines; nothing is estimated.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_runs(work: Path) -> tuple[Path, Path]:
    run, merged = work / "sft-lora", work / "sft-lora-merged"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if not (run / "adapter_config.json").is_file():
        subprocess.run([sys.executable, "-m", "tuneforge.cli", "train", str(REPO / "examples/configs/sft_lora.yaml"),
                        f"output_dir={run}", "max_steps=1", "learning_rate=1e-5", "--no-progress"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    if not (merged / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "tuneforge.cli", "merge", str(run), "--output", str(merged)],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    return run, merged


def server_commands(run: Path, merged: Path, port: int) -> dict[str, tuple[list[str], str]]:
    """name -> (command, the model id requests name)."""
    tf_serve = [str(Path(sys.executable).with_name("transformers")), "serve", str(merged), "--host", "127.0.0.1",
                "--port", str(port), "--device", "cpu"]
    return {
        "tuneforge": ([sys.executable, "-m", "tuneforge.cli", "serve", str(run), "--port", str(port),
                       "--max-batch-size", "16", "--max-concurrent", "64"], run.name),
        "tuneforge-merged": ([sys.executable, "-m", "tuneforge.cli", "serve", str(merged), "--port", str(port),
                              "--max-batch-size", "16", "--max-concurrent", "64"], merged.name),
        "transformers-serve": (tf_serve, str(merged)),
        "transformers-serve-cb": (tf_serve + ["--continuous-batching"], str(merged)),
    }


async def wait_ready(base: str, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with code {proc.returncode}")
            try:
                if (await client.get(base + "/v1/models")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"not ready after {seconds:.0f} s")


async def one_request(client: httpx.AsyncClient, base: str, model: str, i: int, max_tokens: int) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": f"Question {i}: how should I store item {i}?"}],
            "max_tokens": max_tokens, "temperature": 0}
    response = await client.post(base + "/v1/chat/completions", json=body)
    response.raise_for_status()
    return int(response.json()["usage"]["completion_tokens"])


async def run_level(base: str, model: str, clients: int, per_client: int, max_tokens: int) -> dict:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients + 4)) as client:
        async def worker(w: int) -> list[int]:
            return [await one_request(client, base, model, w * per_client + k, max_tokens) for k in range(per_client)]

        start = time.perf_counter()
        counts = await asyncio.gather(*(worker(w) for w in range(clients)))
        wall = time.perf_counter() - start
    tokens = sum(sum(c) for c in counts)
    requests = clients * per_client
    return {"clients": clients, "requests": requests, "completion_tokens": tokens, "wall_s": round(wall, 3),
            "requests_per_s": round(requests / wall, 3), "tokens_per_s": round(tokens / wall, 1)}


class PeakRss:
    """Samples the server's resident memory (process tree, psutil) every 0.2 s; ``peak_gib`` the highest seen."""

    def __init__(self, pid: int):
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            try:
                tree = [self.proc] + self.proc.children(recursive=True)
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                return

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    @property
    def peak_gib(self) -> float:
        return round(self.peak / 2**30, 2)


async def bench_server(name: str, command: list[str], model: str, port: int, args, log_dir: Path) -> dict:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)})
    base = f"http://127.0.0.1:{port}"
    result: dict = {"server": name, "command": " ".join(command)}
    rss = PeakRss(proc.pid).__enter__()
    try:
        await wait_ready(base, proc)
        async with httpx.AsyncClient(timeout=600) as client:
            for i in range(2):
                await one_request(client, base, model, 10_000 + i, args.max_tokens)
        result["levels"] = []
        for clients in args.levels:  # the best of --repeats tries: other load on the machine only slows a try down
            tries = [await run_level(base, model, clients, args.requests_per_client, args.max_tokens)
                     for _ in range(args.repeats)]
            result["levels"].append(max(tries, key=lambda t: t["tokens_per_s"]))
    except (RuntimeError, httpx.HTTPError) as exc:
        result["failed"] = f"{exc.__class__.__name__}: {exc}"
        result["log_tail"] = log_path.read_text(errors="replace")[-1500:]
    finally:
        rss.__exit__()
        result["peak_rss_gib"] = rss.peak_gib
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


def versions() -> dict:
    import fastapi
    import torch
    import transformers
    import uvicorn

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__, "cpus": os.cpu_count(),
            "machine": platform.platform()}


def table(results: list[dict]) -> str:
    lines = ["| server | clients | requests | completion tokens | wall s | requests/s | tokens/s | server peak RSS GiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['server']} | failed: {r['failed'][:120]} | | | | | | |")
            continue
        for lv in r["levels"]:
            lines.append(f"| {r['server']} | {lv['clients']} | {lv['requests']} | {lv['completion_tokens']} | "
                         f"{lv['wall_s']} | {lv['requests_per_s']} | {lv['tokens_per_s']} | {r['peak_rss_gib']} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", default="1,4,16", help="concurrent clients per level (default 1,4,16)")
    p.add_argument("--requests-per-client", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="tries per level; the fastest is kept (default 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="OMP_NUM_THREADS of each server (default 1: on a busy 2-core machine two OpenMP threads "
                        "per server slowed every server down several times)")
    p.add_argument("--servers", default="tuneforge,tuneforge-merged,transformers-serve,transformers-serve-cb")
    p.add_argument("--work", default=str(REPO / "bench" / "out" / "serve"), help="runs, logs and results.jsonl")
    args = p.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    run, merged = prepare_runs(work)
    results = []
    for name in args.servers.split(","):
        port = free_port()
        command, model = server_commands(run, merged, port)[name]
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        results.append(asyncio.run(bench_server(name, command, model, port, args, work)))
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions(),
              "max_tokens": args.max_tokens, "requests_per_client": args.requests_per_client, "repeats": args.repeats,
              "threads": args.threads, "load_average": os.getloadavg(), "results": results}
    with open(work / "results.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record["versions"]))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
