"""Wall time and pruning of the README's sweep on a real console, one task at a time vs trials side by side.

    python bench/sweep/run.py [--port 8790]

Three consoles, each fresh (its own home, started and stopped here), each running
``tuneforge tasks sweep examples/configs/sft_lora.yaml learning_rate=1e-4,1e-3,1e-2 lora_dim=8,16 max_steps=40
--early-stop median --wait``:

* ``one at a time``: ``tuneforge console`` with its default ``--max-concurrent`` (1 on a CPU-only machine);
* ``3 at once, shared cores``: ``--max-concurrent 3``; the service gives each CPU task cores / 3 threads;
* ``3 at once, 2 threads each``: the same with ``OMP_NUM_THREADS=2`` in the console's environment, which the
  service leaves alone: every task starts torch's default on this 2-core machine (the queue before the share).

There is no TRL anchor: TRL has no task queue or sweep; the comparison is between the service's own settings.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ["examples/configs/sft_lora.yaml", "learning_rate=1e-4,1e-3,1e-2", "lora_dim=8,16", "max_steps=40",
         "--early-stop", "median", "--wait"]
CASES = {"one at a time": ([], {}), "3 at once, shared cores": (["--max-concurrent", "3"], {}),
         "3 at once, 2 threads each": (["--max-concurrent", "3"], {"OMP_NUM_THREADS": "2"})}


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/api/info", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the console at {url} did not answer in {timeout:.0f} s")


def one_case(name: str, flags: list[str], extra_env: dict[str, str], port: int, scratch: Path) -> dict:
    tool = str(Path(sys.executable).with_name("tuneforge"))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(HF_HUB_OFFLINE="1", **extra_env)
    home, url = scratch / f"home-{port}", f"http://127.0.0.1:{port}"
    console = subprocess.Popen([tool, "console", "--home", str(home), "--port", str(port), *flags], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_up(url)
        start = time.perf_counter()
        done = subprocess.run([tool, "tasks", "sweep", *SWEEP, "--server", url], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - start
    finally:
        console.terminate()
        console.wait(timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"{name}: the sweep failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    summary = re.search(r"\((\d+) trials, (\d+) pruned\)", done.stdout)
    winner = re.search(r"^winner: (.*)$", done.stdout, re.M)
    return {"case": name, "wall_s": round(wall, 1), "trials": int(summary.group(1)),
            "pruned": int(summary.group(2)), "winner": winner.group(1) if winner else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8790, help="first of three ports (127.0.0.1)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="tf-bench-sweep-"))
    try:
        results = [one_case(name, flags, env, args.port + i, scratch)
                   for i, (name, (flags, env)) in enumerate(CASES.items())]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
