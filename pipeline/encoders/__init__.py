"""Stage one encoders: a spec string names one, ``get_encoder`` builds it (see :mod:`.registry`)."""

from pipeline.encoders.base import Encoder, check_texts
from pipeline.encoders.registry import SPECS, get_encoder

__all__ = ["Encoder", "SPECS", "check_texts", "get_encoder"]
