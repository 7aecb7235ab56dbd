"""What a crash of the command line says: every thread's Python stack, printed when a native library (OpenVINO,
onnxruntime, h5py) kills the process with a fatal signal, so a segfault seen once names the line it came from."""

from __future__ import annotations

import contextlib
import faulthandler
import sys


def report_crashes() -> None:
    """On a fatal signal (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL), print every thread's Python stack to the real
    stderr before the process dies (:mod:`faulthandler`; about 15 microseconds to turn on). Nothing when it is on
    already (``PYTHONFAULTHANDLER``) or stderr is no file."""
    if faulthandler.is_enabled() or sys.__stderr__ is None:
        return
    with contextlib.suppress(ValueError, OSError):  # a stderr without a file descriptor
        faulthandler.enable(file=sys.__stderr__, all_threads=True)
