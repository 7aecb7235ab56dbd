"""Default directories. The embedding cache and derived model files (trained Word2Vec vectors, the
unpacked mpnet) share one root, so encoders can find it without knowing the cache."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "REVIEW_TRANSFER_CACHE"


def default_cache_dir() -> Path:
    """``$REVIEW_TRANSFER_CACHE`` if set, else ``./cache``."""
    return Path(os.environ.get(ENV_VAR) or "cache")


def cache_dir_or_default(cache_dir: str | os.PathLike[str] | None) -> Path:
    """``cache_dir`` as a Path, or :func:`default_cache_dir` when it is None (or empty)."""
    return Path(cache_dir) if cache_dir else default_cache_dir()
