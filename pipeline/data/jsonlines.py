"""Append-only JSON-lines files that survive a kill mid-write (``compare``'s results, ``label``'s labels)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def drop_partial_line(path: Path) -> None:
    """Cut a partial last line (left by a kill mid-write) off ``path``, durably, so every line parses. A last line
    that parses whole but lacks its line break (a file edited by hand) is kept: the break is added instead."""
    if not path.exists():
        return
    data = path.read_bytes()
    keep = data[: data.rfind(b"\n") + 1]
    if keep == data:
        return
    try:
        json.loads(data[len(keep):])
        whole = True
    except ValueError:  # JSONDecodeError, or bytes cut inside a UTF-8 character
        whole = False
    with open(path, "r+b") as f:
        if whole:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(len(keep))
        os.fsync(f.fileno())
