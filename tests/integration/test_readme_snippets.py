"""Every ``bash`` and ``python`` snippet of the README runs, in the order it appears, on a copy of the repository.

The two install commands at the top create a virtual environment: this test runs inside one already, so of them
only the quick start's training runs (not the test suite, which is what runs this test). Blocks fenced as ``text`` are shown, not run (hub models, GPUs, clusters).
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


INSTALL_STEPS = ("python3 -m venv", ". .venv/bin/activate", "pip install")


def without_install(code: str) -> str:
    """An install command's own work after the install (the quick start's training), minus the test run itself."""
    steps = [step.strip() for step in code.strip().split(" && ")]
    return " && ".join(step for step in steps if not step.startswith(INSTALL_STEPS) and "pytest" not in step)


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each runnable block, in order; the two install commands reduced to what follows the
    install (this test already runs inside an installed environment)."""
    blocks = []
    for lang, code in FENCE.findall(text):
        if "python3 -m venv" in code:
            code = without_install(code)
        if code.strip():
            blocks.append((lang, code if code.endswith("\n") else code + "\n"))
    return blocks


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
    assert not any("python3 -m venv" in code or "pytest" in code for _, code in blocks)
    assert blocks[0] == ("bash", "HF_HUB_OFFLINE=1 tuneforge train examples/configs/sft_lora.yaml overwrite_output_dir=true\n")
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
