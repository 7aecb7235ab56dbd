"""Append-only JSON-lines files that survive a kill mid-write (``compare``'s results, ``label``'s labels)."""

from __future__ import annotations

import os
from pathlib import Path


def drop_partial_line(path: Path) -> None:
    """Cut a partial last line (left by a kill mid-write) off ``path``, durably, so every line parses."""
    if not path.exists():
        return
    data = path.read_bytes()
    keep = data[: data.rfind(b"\n") + 1]
    if keep != data:
        with open(path, "r+b") as f:
            f.truncate(len(keep))
            os.fsync(f.fileno())
