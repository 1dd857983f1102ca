"""Render bench/data/results.jsonl (every recorded measurement) as the table in bench/data/RESULTS.md."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def table(rows: list[dict]) -> str:
    lines = ["| date (UTC) | data | rows | file MiB | tool | phase | seconds | peak RSS GiB (process) | "
             "peak RSS GiB (process tree) | load avg at start |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            result = f"failed: {r['error'][:80]} | | "
        else:
            result = f"{r['seconds']:.2f} | {r['peak_rss_gib']:.3f} | {r['peak_tree_rss_gib']:.3f}"
        lines.append(f"| {r['date']} | {r['kind']} | {r['rows']:,} | {r['file_mib']} | {r['tool']} | {r['phase']} | "
                     f"{result} | {r['load_avg_1m_at_start']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    rows = [json.loads(line) for line in (HERE / "results.jsonl").read_text().splitlines() if line.strip()]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
