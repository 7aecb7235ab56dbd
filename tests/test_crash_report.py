"""A crash in native code under the command line prints where each thread's Python code stood (faulthandler), so a
segfault seen once says which line it came from. A real segfault (a read of address 0 through ctypes) in a fresh
interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGSEGV")

CRASHING_COMMAND = """
import ctypes, sys
import click
from pipeline.cli import main  # this script's main, as the review-transfer script's: the command line itself


@click.command()
def crash():
    ctypes.string_at(0)  # a native library's bad read


main.add_command(crash)
main([sys.argv[1]])
"""


def _run(command: str, *, fault_handler: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    if fault_handler is not None:
        env["PYTHONFAULTHANDLER"] = fault_handler
    return subprocess.run([sys.executable, "-c", CRASHING_COMMAND, command], capture_output=True, text=True, env=env,
                          timeout=60)


def test_a_segfault_in_a_command_names_the_python_line_it_came_from():
    res = _run("crash")
    assert res.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in res.stderr, res.stderr
    assert "in string_at" in res.stderr and 'File "<string>", line 9 in crash' in res.stderr, res.stderr


def test_the_report_is_printed_once_when_python_already_reports_crashes():
    res = _run("crash", fault_handler="1")
    assert res.returncode == -signal.SIGSEGV
    assert res.stderr.count("Fatal Python error: Segmentation fault") == 1, res.stderr
