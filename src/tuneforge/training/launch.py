"""``tuneforge train CONFIG --nproc N``: N local processes through PyTorch's own launcher (torchrun).

Each process runs the ordinary ``tuneforge train`` code; accelerate reads the launcher's environment
(RANK, WORLD_SIZE, MASTER_ADDR ...) and joins the process group, so the same config also runs under
``torchrun`` or ``accelerate launch`` directly (multi-node: see the README, Training on several devices).
"""
from __future__ import annotations

import os
import subprocess
import sys

from ..errors import ConfigError


def launch_command(config: str | None, overrides: list[str], nproc: int) -> list[str]:
    """The torchrun command line (a list: no shell, so paths and values need no quoting)."""
    if nproc < 1:
        raise ConfigError(f"--nproc {nproc}: expected at least 1 process.")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "tuneforge.cli", "train"]
    if config is not None:
        cmd.append(config)
    return cmd + list(overrides)


def launch_processes(config: str | None, overrides: list[str] | None, nproc: int) -> int:
    """Run the training in ``nproc`` local processes (rank 0 prints and writes); returns the launcher's exit
    code, non-zero when any process failed (the failing process printed its ``tuneforge: error:`` line)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return subprocess.call(launch_command(config, list(overrides or []), nproc), env=env)
