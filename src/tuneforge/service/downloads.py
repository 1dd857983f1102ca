"""A task's outputs as the API serves them: the run directory's listing (``rundir.list_outputs``, its one owner)
with each file's size in words and its download route, and the file a download names, kept inside the run
directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..rundir import list_outputs, resolve_output
from .errors import NotFound

_UNITS = ("B", "KiB", "MiB", "GiB")


def size_text(n: int | None) -> str | None:
    """Bytes with a binary unit: '812 B', '1.5 KiB', '3.2 GiB' (None for a folder)."""
    if n is None:
        return None
    value, unit = float(n), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.0f} {_UNITS[unit]}" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def file_url(task_id: int, name: str) -> str:
    """The API route that downloads one file of the task's run directory."""
    return f"/api/tasks/{task_id}/files/{quote(name)}"


def outputs_view(task: dict[str, Any], has_model: bool) -> dict[str, Any]:
    """``{"run_dir", "has_model", "files": [{name, kind (file/folder), size_bytes, size, description, url}]}``:
    folders (checkpoints) have no size and no download; ``has_model`` says whether deploy, export and eval apply."""
    files = []
    for entry in list_outputs(task.get("run_dir")):
        folder = entry["is_dir"]
        files.append({**entry, "kind": "folder" if folder else "file", "size": size_text(entry["size_bytes"]),
                      "url": None if folder else file_url(task["id"], entry["name"])})
    return {"run_dir": task.get("run_dir"), "has_model": has_model, "files": files}


def output_file(task: dict[str, Any], relative: str) -> Path:
    """The file ``relative`` of the task's run directory; NotFound for anything not a regular file inside it."""
    target = resolve_output(task["run_dir"], relative) if task.get("run_dir") else None
    if target is None:
        raise NotFound(f"task {task['id']}: no file {relative!r} in its run directory.")
    return target
