"""The main thread's alternate signal stack, which OpenVINO can leave pointing at freed memory.

Each OpenVINO session installs an alternate signal stack (``sigaltstack``) on the thread that runs it and puts back
the one it found when it is freed. Freed in another order than made (backend auto's probe builds and drops several
exports), the last one puts back a stack already freed. Python runs every signal handler on that stack
(``SA_ONSTACK``), so the next SIGTERM or Ctrl-C is a segfault (SIGSEGV from the kernel, which cannot write the
handler's frame there) instead of a clean stop. :func:`repair_signal_stack` turns such a stack off; handlers then
run on the thread's own stack.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

SS_DISABLE = 2


class _Stack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def repair_signal_stack() -> bool:
    """Turn off the calling thread's alternate signal stack when it lies outside the process's memory; whether it
    did. A no-op (False) off Linux, where ``/proc/self/maps`` does not say what is mapped."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    current = _Stack()
    if libc.sigaltstack(None, ctypes.byref(current)) != 0 or current.ss_flags & SS_DISABLE or not current.ss_sp:
        return False
    if _mapped(current.ss_sp, current.ss_size):
        return False
    off = _Stack(None, SS_DISABLE, 0)
    return libc.sigaltstack(ctypes.byref(off), None) == 0


def _mapped(start: int, size: int) -> bool:
    """Whether ``[start, start + size)`` lies in one mapping of ``/proc/self/maps``."""
    with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
        for line in maps:
            low, high = (int(bound, 16) for bound in line.split(maxsplit=1)[0].split("-"))
            if low <= start and start + size <= high:
                return True
    return False
