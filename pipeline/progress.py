"""Progress of long work: a tqdm bar on a terminal; off a terminal (a log file, a pipe, CI) a plain line
at most every :data:`LINE_SECONDS`, and one at the end of work that printed any, instead of the
thousands of carriage-return updates a bar writes there."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

LINE_SECONDS = 30.0


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def progress_bar(total: int | None, desc: str, unit: str = "it", progress: bool | None = None, *,
                 leave: bool = True, initial: int = 0) -> Any:
    """A progress object with tqdm's ``update``/``set_postfix``/``close`` (and ``with``).

    ``progress=False``: silent; ``True``: a tqdm bar wherever stderr goes; ``None``: a bar on a
    terminal, else :class:`LineProgress`.
    """
    from tqdm.auto import tqdm

    if progress is False or (progress is None and not on_terminal()):
        return LineProgress(total, desc, unit, initial=initial, every=None if progress is False else LINE_SECONDS)
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, initial=initial)


class LineProgress:
    """Counts like a tqdm bar, but writes a plain line ``desc: n/total unit (p%), s, rate, ETA`` to stderr at most
    every ``every`` seconds (never when ``every`` is None), and a last one on ``close`` if it wrote any."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", *, initial: int = 0,
                 every: float | None = LINE_SECONDS, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.n, self.every = total, desc, unit, initial, every
        self.initial = initial
        self.stream = stream
        self.lines = 0
        self.postfix = ""
        self._start = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more; write a line when ``every`` seconds passed since the last one."""
        self.n += n
        if self.every is not None and time.monotonic() - self._last >= self.every:
            self._write()

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (e.g. the running loss)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Write the last line, if this progress wrote any before (short work stays silent)."""
        if self.lines:
            self._write()
        self.every = None

    def line(self) -> str:
        """``desc: n/total units (p%), s elapsed[, rate units/s (s per unit under one a second), ETA s][, postfix]``,
        the rate and ETA once some work is done."""
        units = self.unit + ("es" if self.unit.endswith(("s", "x", "ch", "sh")) else "s")
        done = f"{self.n:,}/{self.total:,} {units} ({self.n / self.total:.0%})" if self.total else f"{self.n:,} {units}"
        elapsed = time.monotonic() - self._start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        pace = f", {rate:,.0f} {units}/s" if rate >= 1 else f", {1 / rate:,.0f} s per {self.unit}" if rate > 0 else ""
        if rate > 0 and self.total and self.n < self.total:
            pace += f", ETA {(self.total - self.n) / rate:.0f} s"
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done}, {elapsed:.0f} s{pace}{tail}"

    def _write(self) -> None:
        print(self.line(), file=self.stream or sys.stderr, flush=True)
        self.lines += 1
        self._last = time.monotonic()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
