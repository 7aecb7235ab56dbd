"""review-transfer: few-shot review sentiment by transfer learning from pretrained models."""

__version__ = "0.1.0"
