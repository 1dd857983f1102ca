"""Every ``bash`` and ``python`` snippet of the README runs, in the order it appears, on a copy of the repository.

The two install commands at the top (they create a virtual environment) are the only blocks not run: this test
runs inside that environment already. Blocks fenced as ``text`` are shown, not run (hub models, GPUs, clusters).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each runnable block, in order; the venv-creating install commands excluded."""
    return [(lang, code) for lang, code in FENCE.findall(text) if "python3 -m venv" not in code]


def as_script(blocks: list[tuple[str, str]]) -> str:
    """One bash script: bash blocks as written, python blocks through the current interpreter."""
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for number, (lang, code) in enumerate(blocks, 1):
        parts.append(f"echo '### README block {number} ({lang})'")
        parts.append(code if lang == "bash" else f"python - <<'README_PY'\n{code}README_PY")
    return "\n".join(parts) + "\n"


def test_readme_blocks_are_found_and_the_install_commands_are_left_out():
    blocks = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert any("tuneforge train" in code for _, code in blocks)
    assert not any("python3 -m venv" in code for _, code in blocks)
    assert any(lang == "python" for lang, _ in blocks)


@pytest.mark.slow
def test_every_readme_snippet_runs_in_order(tmp_path):
    work = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target)
    script = work / "readme.sh"
    script.write_text(as_script(readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HOME=str(tmp_path / "home"), TUNEFORGE_HOME=str(tmp_path / "home/.tuneforge"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    (tmp_path / "home").mkdir()
    done = subprocess.run(["bash", str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, f"README snippets failed (exit {done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-4000:]}"
