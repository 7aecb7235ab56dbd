"""Silence the exporting libraries' tracer warnings and log lines while an export runs, and nothing else.

The exporters (torch.onnx, onnxruntime's optimizer and quantizer, NNCF, OpenVINO's converter) log under their own
loggers, and onnxruntime's quantizer also straight to the root logger. Raising the root logger's level would
silence every other logger of the process too, this package's included, and, set and restored by two threads at
once, could leave the root logger silenced for good; so only those libraries' loggers are raised, and the root
logger gets a filter that drops records logged on it directly (records propagated from other loggers pass).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator

# the exporting libraries' top-level loggers (their modules' loggers inherit the level)
EXPORT_LOGGERS = ("torch", "onnx", "onnxruntime", "onnxscript", "nncf", "openvino", "transformers")

_lock = threading.Lock()
_depth = 0  # exports running inside quiet() now (threads may export at once): the first sets, the last restores
_saved: dict[str, int] = {}
_warnings: list[warnings.catch_warnings] = []


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Hide warnings (of every thread, as ``warnings.catch_warnings`` does), the exporting libraries' log lines below ERROR and lines logged on the root logger itself,
    restoring every level as it was when the last export inside leaves."""
    global _depth
    with _lock:
        if _depth == 0:
            for name in EXPORT_LOGGERS:
                logger = logging.getLogger(name)
                _saved[name] = logger.level
                logger.setLevel(logging.ERROR)
            logging.getLogger().addFilter(_errors_only)
            _warnings.append(warnings.catch_warnings())
            _warnings[0].__enter__()
            warnings.simplefilter("ignore")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _warnings.pop().__exit__(None, None, None)
                logging.getLogger().removeFilter(_errors_only)
                for name, level in _saved.items():
                    logging.getLogger(name).setLevel(level)
                _saved.clear()
