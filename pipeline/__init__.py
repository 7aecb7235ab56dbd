"""review-transfer: few-shot review sentiment by transfer learning from pretrained models."""

__version__ = "0.3.0"


class EngineError(RuntimeError):
    """A run on an execution engine (Ray) failed; the message says what was kept and how to resume.

    The CLI shows it as one line, like bad data or a bad bundle.
    """
