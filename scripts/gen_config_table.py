"""Regenerate the config-key table in README.md from the config's own help texts.

Run: python scripts/gen_config_table.py   (tests/unit/test_readme.py fails when the table is stale)
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"


def table() -> str:
    """One table, a bold row heading each config group (the groups of tuneforge.config, in their order)."""
    from tuneforge.config import help_groups

    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for group, lines in help_groups():
        rows.append(f"| **{group.name} group** | | | {group.title.replace('|', '/')} |")
        for key, type_name, default, help_text in lines:
            rows.append(f"| `{key}` | {type_name.replace('|', '/')} | `{default}` | {help_text.replace('|', '/')} |")
    return "\n".join(rows)


def render(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    print("README.md config table updated")
