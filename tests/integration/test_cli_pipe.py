"""A reader that closes the pipe early (`tuneforge models list | head -1`) is not an error: no traceback, exit 0."""
from __future__ import annotations

import subprocess
import sys


def test_output_piped_into_a_reader_that_leaves_early():
    # `true` closes its end at once, so every write of ours meets a closed pipe (head could race the buffer).
    cmd = f"{sys.executable} -m tuneforge.cli models list --json | true"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 0
