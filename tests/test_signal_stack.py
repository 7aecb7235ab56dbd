"""A freed alternate signal stack (what OpenVINO sessions freed out of order leave on the thread that ran them) turns
the next SIGTERM into a segfault; ``repair_signal_stack`` turns it off. Run in fresh interpreters, on a stack
mapped and unmapped here as OpenVINO does it (the real case, backend auto's probe of the default encoder before
``label`` serves, takes a minute: checked by hand, see pipeline/signal_stack.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack and /proc/self/maps: Linux")

FREED_STACK = """
import ctypes, os, signal, sys
from pipeline.signal_stack import _Stack, repair_signal_stack
libc = ctypes.CDLL(None)
libc.mmap.restype, libc.mmap.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                                          ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
size = 65536
addr = libc.mmap(None, size, 3, 0x22, -1, 0)  # read/write, private anonymous
assert libc.sigaltstack(ctypes.byref(_Stack(addr, 0, size)), None) == 0
libc.munmap(addr, size)  # freed while still this thread's signal stack
if sys.argv[1] == "repair":
    print("repaired", repair_signal_stack(), repair_signal_stack(), flush=True)  # the second finds nothing to do
signal.signal(signal.SIGTERM, lambda signum, frame: print("handled", flush=True))
os.kill(os.getpid(), signal.SIGTERM)
print("alive", flush=True)
"""


def _run(mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-c", FREED_STACK, mode], capture_output=True, text=True, env=env, timeout=60)


def test_a_freed_signal_stack_makes_sigterm_a_segfault_until_repaired():
    assert _run("as-is").returncode == -signal.SIGSEGV
    repaired = _run("repair")
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.split() == ["repaired", "True", "False", "handled", "alive"]


def test_a_sound_signal_stack_is_left_alone():
    from pipeline.signal_stack import repair_signal_stack

    assert repair_signal_stack() is False  # this process's own (none, or faulthandler's): mapped, untouched
