"""Text that cannot name a file, refused before any filesystem call sees it.

``Path.exists()`` raises ``ValueError`` on a NUL byte and ``OSError`` on a name component longer than the
filesystem allows (255 bytes on Linux, macOS and Windows' NTFS); both used to surface as tracebacks (or 500s
in the service). The same rule serves config keys, the service's path keys and upload names."""
from __future__ import annotations

MAX_COMPONENT_BYTES = 255  # NAME_MAX of ext4, xfs, btrfs, APFS and NTFS
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux


def path_text_problem(value: str) -> str | None:
    """Why ``value`` cannot be a path (None when it can be)."""
    if "\x00" in value:
        return "contains a NUL byte"
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_PATH_BYTES:
        return f"is {len(encoded)} bytes long; a path has at most {MAX_PATH_BYTES}"
    longest = max((len(p.encode("utf-8", "surrogatepass")) for p in value.replace("\\", "/").split("/")), default=0)
    if longest > MAX_COMPONENT_BYTES:
        return f"has a name of {longest} bytes; a file or directory name has at most {MAX_COMPONENT_BYTES}"
    return None


def text_problem(value: str) -> str | None:
    """Why a non-path string cannot be used (a NUL byte: C libraries and file formats end the text there)."""
    return "contains a NUL byte" if "\x00" in value else None
