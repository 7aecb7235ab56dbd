"""Stage one encoders: a spec string names one, ``get_encoder`` builds it (see :mod:`.registry`).

Also the spec grammar (:mod:`.spec`). May import: the package root and ``data`` (never the store).
``Encoder``, ``check_texts``, ``SPECS`` and ``get_encoder`` are imported from here on first use, so that
reading a spec (the command line's ``--help``) imports no numpy.
"""

from typing import Any

__all__ = ["Encoder", "SPECS", "check_texts", "get_encoder"]


def __getattr__(name: str) -> Any:
    if name in ("Encoder", "check_texts"):
        from pipeline.encoders import base

        return getattr(base, name)
    if name in ("SPECS", "get_encoder"):
        from pipeline.encoders import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'pipeline.encoders' has no attribute {name!r}")
