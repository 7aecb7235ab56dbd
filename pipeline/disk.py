"""What a write that ran out of disk space tells the user: the directory, its free space and what to do.

Every writer of the package writes under a temporary name and renames it into place, and removes the
temporary when the write fails, so a full disk leaves nothing half-written; :func:`explain_full_disk`
turns the library's own error (an ``OSError`` with ``ENOSPC``, HDF5's "errno = 28", a C++ library's
"No space left on device", numpy's short write) into one :class:`DiskFullError` line. A command's printed
results that meet a full disk name standard output and where it goes (:func:`stdout_full_error`).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import ReviewTransferError
from pipeline.paths import ENV_VAR

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)  # a read-only mount, or no permission to write there
FULL_MARKS = ("No space left on device", "errno = 28", "Disk quota exceeded")
# numpy's ``tofile`` (``np.save`` of an array) reports a short write without an errno: "5000 requested and 4032 written"
SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
STDOUT_FIX = "free some space there, or send the output to a disk with room (another redirect, or --out FILE where the command takes it)"
CACHE_FIX = (f"free some space there, or put the cache on a disk with room ({ENV_VAR}=DIR or --cache-dir DIR), "
             "and rerun: what was stored before is intact")


class DiskFullError(ReviewTransferError, OSError):
    """A write ran out of disk space; the message names the directory, its free space and the fix."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception that caused it, is a write that ran out of disk space (or quota)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if any(mark in str(exc) for mark in FULL_MARKS) or (isinstance(exc, OSError) and SHORT_WRITE.search(str(exc))):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def free_space(directory: str | Path) -> str:
    """The free space of the disk holding ``directory`` (or its nearest existing parent), e.g. ``'3.2 MB'``."""
    path = Path(directory).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    return next((f"{free / size:.1f} {unit}" for size, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB")) if free >= size),
                f"{free} bytes")


def disk_full_error(directory: str | Path, what: str, fix: str = CACHE_FIX, *, cleaned: bool = True) -> DiskFullError:
    """The one-line error for ``what`` not written into ``directory`` for want of space (``cleaned``: its writer
    removed what it had written)."""
    kept = "; nothing half-written was kept" if cleaned else ""
    return DiskFullError(f"no room on the disk of {directory} ({free_space(directory)} free): {what} could not be "
                         f"written{kept}. {fix[0].upper()}{fix[1:]}.")


@contextmanager
def explain_full_disk(directory: str | Path, what: str, fix: str = CACHE_FIX) -> Iterator[None]:
    """Run the block; a write in it that runs out of space becomes :func:`disk_full_error` (others pass)."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:
        if is_disk_full(e):
            raise disk_full_error(directory, what, fix) from e
        raise


def stdout_full_error(exc: OSError) -> DiskFullError | None:
    """The one-line error for a full disk met while writing standard output (``click.echo`` of a command's
    results, redirected to a file or a device with no room), naming where it goes; ``None`` when the write that
    failed was not to standard output."""
    if exc.filename is not None or not is_disk_full(exc) or not _raised_writing_stdout(exc):
        return None
    target = _stdout_target()
    if target is not None and Path(target).is_file():
        return disk_full_error(Path(target).parent, f"the output (standard output, sent to {Path(target).name})",
                               STDOUT_FIX, cleaned=False)
    return DiskFullError(f"the output could not be written: standard output goes to {target or 'a file or device'}, "
                         f"which has no room ({exc.strerror or exc}). {STDOUT_FIX[0].upper()}{STDOUT_FIX[1:]}.")


def _raised_writing_stdout(exc: BaseException) -> bool:
    """Whether the innermost Python frame ``exc`` passed through held standard output: the stream it wrote to."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    stdout = {id(stream) for stream in (sys.stdout, sys.__stdout__) if stream is not None}
    stdout |= {id(getattr(stream, "buffer", None)) for stream in (sys.stdout, sys.__stdout__) if stream is not None}
    return any(id(value) in stdout for value in tb.tb_frame.f_locals.values())


def _stdout_target() -> str | None:
    """Where standard output goes (a file's path, ``/dev/full``), on systems that show it under /proc; else None."""
    try:
        return os.readlink(f"/proc/self/fd/{sys.stdout.fileno()}")
    except (OSError, ValueError, AttributeError):  # no /proc, or a stdout with no file descriptor (a test's runner)
        return None
