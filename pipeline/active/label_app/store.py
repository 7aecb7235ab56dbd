"""The labels FILE of ``label``: JSON lines ``{"text": ..., "label": "positive"|"negative"}``, durable at once.

Each label is appended and fsynced before the page is answered, so killing the server loses nothing;
a line cut short by a kill mid-write is dropped when the file is next opened. Undo rewrites the file
without that record (temporary file, fsync, ``os.replace``). The file is a normal SOURCE for ``fit``
and ``compare``. Skipped texts go to ``FILE.skipped`` (same format, no label) so a restart does not
show them again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.data.jsonlines import drop_partial_line
from pipeline.data.readers import DataError


class LabelFile:
    """Append-only JSON lines with a durable append and an atomic removal of one record."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def repair(self) -> None:
        """Cut a partial last line (from a kill mid-write), so the file parses."""
        drop_partial_line(self.path)

    def records(self) -> list[dict[str, Any]]:
        """Every record, in order (after :meth:`repair`); DataError naming the line of one that is not an object
        with a ``text`` string (the file is left as it is)."""
        self.repair()
        if not self.path.exists():
            return []
        found = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{self.path}: line {number}: malformed JSON at column {e.colno} ({e.msg}). Fix or "
                                "delete that line; the other lines are kept as they are.") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DataError(f"{self.path}: line {number}: expected an object with a \"text\" string, got "
                                f"{line.strip()[:60]!r}. Fix or delete that line; the other lines are kept as they are.")
            found.append(record)
        return found

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and fsync it before returning."""
        self.extend([record])

    def extend(self, records: list[dict[str, Any]]) -> None:
        """Write ``records`` in order and fsync once before returning (a kill mid-write leaves whole lines, and at
        most one partial last line, which :meth:`repair` drops)."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove_last(self, text: str) -> None:
        """Rewrite the file without the last record of ``text``, atomically."""
        records = self.records()
        for i in range(len(records) - 1, -1, -1):
            if records[i]["text"] == text:
                del records[i]
                break
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
