"""The bundle behind the service: loaded and verified once, through :meth:`Bundle.load` (the trust rules
of ``predict``), then asked for probabilities of batches of texts.

Rows follow ``predict``: a label name and ``p_positive`` per text, in order; an empty text gets an
empty label and ``p_positive`` null. A request's ``prior`` re-weights its probabilities from the
training rate exactly as ``predict --prior`` does. The domain-shift check that ``predict`` prints is
not run per request (a few texts cannot show a shift); run ``evaluate`` or ``predict --input`` for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.bundle.bundle import Bundle
from pipeline.bundle.manifest import signing_key
from pipeline.predict.prior import PriorModel
from pipeline.serve.config import BundleOptions

WARM_UP = "A warm-up sentence, so the first request does not pay for lazy initialisation."


@dataclass
class ServedModel:
    """A verified bundle and what requests need of it."""

    bundle: Bundle
    prior_model: PriorModel | None

    @classmethod
    def load(cls, options: BundleOptions) -> ServedModel:
        """Load and verify the bundle (BundleError if it fails any check), then warm the encoder up."""
        bundle = Bundle.load(options.path, cache_dir=options.cache_dir, long_text=options.long_text,
                             max_length=options.max_length, encoder_path=options.encoder_path,
                             trust_encoder=options.trust_encoder, allow_legacy=options.allow_legacy)
        bundle.use_cache = False  # requests bring new texts: keep the embedding cache out of the hot path
        prior = PriorModel.from_manifest(bundle.manifest) if bundle.manifest.get("prior") else None
        model = cls(bundle, prior)
        model.probabilities([WARM_UP])
        return model

    @property
    def name(self) -> str:
        return Path(self.bundle.path).name if self.bundle.path else "bundle"

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """P(positive) of non-empty ``texts``, in order: one encoder call and one head call."""
        return self.bundle.head.predict_proba(self.bundle.embed(texts))[:, 1]

    def rows(self, texts: Sequence[str], p: np.ndarray, prior: float | None) -> list[dict[str, Any]]:
        """One ``{"label", "p_positive"}`` per text; ``p`` holds the probabilities of the non-empty ones."""
        if prior is not None:
            p = self.adapt(p, prior)
        names = self.bundle.label_names
        values = iter(p)
        out = []
        for text in texts:
            if not text.strip():
                out.append({"label": "", "p_positive": None})
                continue
            q = float(next(values))
            out.append({"label": names[int(q >= 0.5)], "p_positive": round(q, 6)})
        return out

    def adapt(self, p: np.ndarray, prior: float) -> np.ndarray:
        """``p`` re-weighted to the known positive rate ``prior`` (OptionError if the bundle records none)."""
        if self.prior_model is None:
            raise OptionError(f"{self.name} records no training prior (made before class-prior support), so "
                              "'prior' cannot re-weight it; leave 'prior' out or refit the bundle.")
        return self.prior_model.adapt(p, prior).p_pos if len(p) else p

    def summary(self) -> dict[str, Any]:
        """The manifest summary of ``GET /v1/model``."""
        m = self.bundle.manifest
        encoder = m["encoder"]
        return {
            "bundle": self.name,
            "format_version": m["format_version"],
            "created": m.get("created"),
            "encoder": {"spec": encoder["spec"], "fingerprint": encoder["fingerprint"],
                        "options": encoder.get("options") or {}},
            "head": {"name": m["head"]["name"], "params": m["head"].get("params") or {}},
            "label_names": list(m["label_names"]),
            "trained_on": m["train"],
            "metrics": m["metrics"],
            "train_prior": None if self.prior_model is None else self.prior_model.train,
            "signature": signature_state(m),
            "versions": m.get("versions") or {},
        }


def signature_state(manifest: dict[str, Any]) -> dict[str, Any]:
    """How the manifest was checked at load: its digest always (format 2); its signature when a key is set."""
    signed = "signature" in manifest
    key = signing_key() is not None
    if signed and key:
        state = "signed: signature verified with $REVIEW_TRANSFER_SIGNING_KEY"
    elif signed:
        state = "signed: not verified (no $REVIEW_TRANSFER_SIGNING_KEY set here)"
    else:
        state = "unsigned: digest verified" if "digest" in manifest else "unsigned, no digest (format 1)"
    return {"signed": signed, "verified": signed and key, "digest": manifest.get("digest"), "state": state}
