"""Stage one encoders: a spec string names one, ``get_encoder`` builds it (see :mod:`.registry`).

Also the spec grammar (:mod:`.spec`). May import: the package root and ``data`` (never the store).
"""

from pipeline.encoders.base import Encoder, check_texts
from pipeline.encoders.registry import SPECS, get_encoder

__all__ = ["Encoder", "SPECS", "check_texts", "get_encoder"]
