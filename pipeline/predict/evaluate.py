"""Evaluate a bundle on labelled data: accuracy and friends, the domain-shift check and, when asked,
the scores after adapting to the target's prior. Predicting lives in :mod:`pipeline.predict.predict`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import OptionError
from pipeline.bundle.bundle import Bundle
from pipeline.data.dataset import DataError, Dataset, split
from pipeline.predict.metrics import evaluate
from pipeline.predict.predict import positive_proba


def evaluation_set(source: str, ds: Dataset, which: str = "test") -> Dataset:
    """The rows of ``ds`` to score: for ``rt`` its test split unless ``which='all'``, else every row."""
    if which not in ("test", "all"):
        raise OptionError(f"--split must be 'test' or 'all', got {which!r}.")
    return split(ds)[1] if source == "rt" and which == "test" else ds


def score(bundle: Bundle, ds: Dataset, *, prior: float | None = None, adapt_prior: bool = False) -> dict[str, Any]:
    """:func:`pipeline.predict.metrics.evaluate` of ``bundle`` on the labelled dataset ``ds``, with the
    domain-shift check under ``"domain_shift"`` and the share of texts outside the encoder's language
    under ``"outside_language"`` (:mod:`pipeline.encoders.language`; None for a multilingual encoder).

    With ``prior`` or ``adapt_prior`` the scores are those of the adapted probabilities (see
    :func:`pipeline.predict.predict.positive_proba`; the plain ones when adaptation was declined), and ``scores["prior"]``
    holds the training, target and true positive rates, the decision and the plain accuracy.
    """
    if ds.labels is None:
        raise DataError(f"{ds.name}: has no labels to evaluate against; pass --label-col.")
    from pipeline.encoders.language import check as language_check

    p, adapted, shift = positive_proba(bundle, ds.texts, prior=prior, adapt_prior=adapt_prior)
    found = language_check(bundle.get_encoder(), ds.texts)  # share of texts outside the encoder's language
    outside = None if found is None else found.as_dict()
    if adapted is None:
        return {**evaluate(ds.labels, p), "domain_shift": shift, "outside_language": outside}
    scores = evaluate(ds.labels, adapted.p_pos)
    scores["prior"] = {"train": adapted.train_prior, "target": adapted.prior, "estimated": adapted.estimated,
                       "true": float(ds.labels.mean()), "accuracy_unadapted": evaluate(ds.labels, p)["accuracy"],
                       "line": adapted.describe()}
    if adapted.decision is not None:
        scores["prior"]["decision"] = adapted.decision.to_dict()
    scores["domain_shift"] = shift
    scores["outside_language"] = outside
    return scores


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` scores: the bundle at ``bundle`` (loaded with ``cache_dir``, the encoder overrides
    ``long_text``/``max_length`` and the trust options ``encoder_path``/``trust_encoder``/``allow_legacy``) on the labelled
    ``data``, read and validated by the one reader before the model loads; with ``prior``/``adapt_prior``,
    also after class-prior adaptation."""

    bundle: str | Path
    data: Dataset
    cache_dir: str | Path | None = None
    long_text: str | None = None
    max_length: int | None = None
    encoder_path: str | Path | None = None
    trust_encoder: bool = False
    allow_legacy: bool = False
    prior: float | None = None
    adapt_prior: bool = False


def evaluate_bundle(job: Evaluation) -> tuple[dict[str, Any], tuple[str, str]]:
    """(scores, label names): load the bundle of ``job`` and :func:`score` it on ``job.data``. The texts
    go down once: bundle -> embedding store (checked there) -> encoder; the scores come back up."""
    bundle = Bundle.load(job.bundle, cache_dir=job.cache_dir, long_text=job.long_text, max_length=job.max_length,
                         encoder_path=job.encoder_path, trust_encoder=job.trust_encoder, allow_legacy=job.allow_legacy)
    return score(bundle, job.data, prior=job.prior, adapt_prior=job.adapt_prior), bundle.label_names
