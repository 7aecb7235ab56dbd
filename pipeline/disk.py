"""What a write that ran out of disk space tells the user: the directory, its free space and what to do.

Every writer of the package writes under a temporary name and renames it into place, and removes the
temporary when the write fails, so a full disk leaves nothing half-written; :func:`explain_full_disk`
turns the library's own error (an ``OSError`` with ``ENOSPC``, HDF5's "errno = 28", a C++ library's
"No space left on device", numpy's short write) into one :class:`DiskFullError` line.
"""

from __future__ import annotations

import errno
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import ReviewTransferError
from pipeline.paths import ENV_VAR

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FULL_MARKS = ("No space left on device", "errno = 28", "Disk quota exceeded")
# numpy's ``tofile`` (``np.save`` of an array) reports a short write without an errno: "5000 requested and 4032 written"
SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
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
