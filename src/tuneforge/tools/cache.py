"""``tuneforge cache ls|clear``: the tokenized data cache (docs/data.md).

Entries are rebuilt automatically whenever their key changes, so clearing is only about disk space.
"""
from __future__ import annotations

import argparse
import json

from ..data.build import CACHE_DIR_ENV, cache_root
from ..data.cache import list_entries, remove_entries
from ..errors import ConfigError


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _ls(args: argparse.Namespace) -> int:
    root = cache_root(args.dir)
    entries = list_entries(root)
    if args.json:
        print(json.dumps({"cache_dir": str(root), "entries": entries}, ensure_ascii=False, indent=2))
        return 0
    total = sum(e["bytes"] for e in entries)
    print(f"cache: {root} ({len(entries)} entries, {_size(total)})")
    for e in entries:
        if e["state"] == "ok":
            print(f"  {e['key']}  {_size(e['bytes']):>10}  {e['strategy']}  seq_length {e['seq_length']}  "
                  f"{e['rows']} rows  {e['created']}  {e['data']}")
        else:
            print(f"  {e['key']}  {_size(e['bytes']):>10}  incomplete (rebuilt when next needed)")
    return 0


def _clear(args: argparse.Namespace) -> int:
    root = cache_root(args.dir)
    known = {e["key"] for e in list_entries(root)}
    unknown = [k for k in args.keys if k not in known]
    if unknown:
        raise ConfigError(f"cache clear: no entry {', '.join(map(repr, unknown))} in {root} "
                          "(see 'tuneforge cache ls').")
    removed = remove_entries(root, args.keys or None)
    print(f"removed {len(removed)} entries from {root}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("cache", help="list or clear the tokenized data cache",
                              description="The tokenized data cache: one entry per data source and encoding "
                                          f"settings (default location: ${CACHE_DIR_ENV} or ~/.cache/tuneforge/data).")
    sub = p.add_subparsers(dest="cache_command", required=True, metavar="ls|clear")
    ls = sub.add_parser("ls", help="list the entries: key, size, strategy, rows, data")
    ls.add_argument("--dir", help="cache directory (default: data_cache_dir's default)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_ls)
    clear = sub.add_parser("clear", help="delete entries (all, or the KEYs given)")
    clear.add_argument("keys", nargs="*", metavar="KEY", help="entries to delete (default: all)")
    clear.add_argument("--dir", help="cache directory (default: data_cache_dir's default)")
    clear.set_defaults(func=_clear)
