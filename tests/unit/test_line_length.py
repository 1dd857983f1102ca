"""Every source line of the package fits in 120 characters (issue 24: help and messages in wrapped lines).

Long strings are wrapped by implicit concatenation inside brackets, so the wrapping never changes a message.
"""
from __future__ import annotations

from pathlib import Path

import tuneforge

PACKAGE_DIR = Path(tuneforge.__file__).resolve().parent
MAX_LINE = 120


def long_lines(root: Path, limit: int = MAX_LINE) -> list[str]:
    """'file:line (N chars)' for each line of a .py file under root that is longer than limit."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if len(line) > limit:
                found.append(f"{path.relative_to(root.parent)}:{number} ({len(line)} chars)")
    return found


def test_no_source_line_is_longer_than_120_characters():
    too_long = long_lines(PACKAGE_DIR)
    assert not too_long, f"lines over {MAX_LINE} characters:\n" + "\n".join(too_long)


def test_a_long_line_is_named_with_its_file_and_line(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "ok.py").write_text("x = 1\n" + "y = '" + "a" * 114 + "'\n", encoding="utf-8")  # exactly 120
    (package / "bad.py").write_text("x = 1\n\n" + "y = '" + "a" * 115 + "'\n", encoding="utf-8")  # 121
    assert long_lines(package) == ["pkg/bad.py:3 (121 chars)"]
