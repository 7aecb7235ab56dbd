"""review-transfer: few-shot review sentiment by transfer learning from pretrained models."""

__version__ = "0.3.0"


class ReviewTransferError(Exception):
    """Base of this package's user-facing errors: the message names what is wrong and the fix.

    The CLI shows these (and only these) as one line; any other exception is a bug and keeps its traceback.
    """


class OptionError(ReviewTransferError, ValueError):
    """An option value or combination that cannot work; the message names the option and what to give."""


class MissingExtraError(ReviewTransferError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class NotFoundError(ReviewTransferError, FileNotFoundError):
    """A file, directory or model the user named does not exist or cannot be fetched; the message says what to give."""


class EngineError(ReviewTransferError, RuntimeError):
    """A run on an execution engine (Ray) failed; the message says what was kept and how to resume."""
