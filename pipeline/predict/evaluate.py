"""Evaluate a bundle on labelled data: accuracy and friends, the domain-shift check and, when asked,
the scores after adapting to the target's prior. Predicting lives in :mod:`pipeline.predict.predict`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline import OptionError
from pipeline.bundle.bundle import Bundle
from pipeline.data.dataset import DataError, Dataset, split
from pipeline.predict.metrics import evaluate
from pipeline.predict.predict import BundleLoad, positive_proba


def evaluation_set(source: str, ds: Dataset, which: str = "test") -> Dataset:
    """The rows of ``ds`` to score: for ``rt`` its test split unless ``which='all'``, else every row."""
    if which not in ("test", "all"):
        raise OptionError(f"--split must be 'test' or 'all', got {which!r}.")
    return split(ds)[1] if source == "rt" and which == "test" else ds


def score(bundle: Bundle, ds: Dataset, *, prior: float | None = None, adapt_prior: bool = False) -> dict[str, Any]:
    """:func:`pipeline.predict.metrics.evaluate` of ``bundle`` on the labelled dataset ``ds``, with the
    domain-shift check under ``"domain_shift"`` and the share of texts outside the encoder's language
    under ``"outside_language"`` (:mod:`pipeline.encoders.language`; None for a multilingual encoder), and the
    classes' names under ``"label_names"``: ``"true"``, the data's (negative, positive), and ``"predicted"``, the
    bundle's, which differ when the data are labelled in other words than the training data.

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
    names = {"true": list(ds.label_names), "predicted": list(bundle.label_names)}  # (negative, positive) of each
    if adapted is None:
        return {**evaluate(ds.labels, p), "label_names": names, "domain_shift": shift, "outside_language": outside}
    scores = evaluate(ds.labels, adapted.p_pos)
    scores["label_names"] = names
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
    """What ``evaluate`` scores: ``bundle`` on the labelled ``source`` (read with ``source_options`` before the
    model loads; for ``rt`` its test split unless ``which='all'``); with ``prior``/``adapt_prior``, also after
    class-prior adaptation."""

    bundle: BundleLoad
    source: str
    which: str = "test"
    source_options: dict[str, Any] = field(default_factory=dict)
    prior: float | None = None
    adapt_prior: bool = False


def evaluate_bundle(job: Evaluation, echo: Callable[[str], None] = lambda line: None
                    ) -> tuple[dict[str, Any], tuple[str, str]]:
    """(scores, label names): read the rows of ``job`` to score, load its bundle and :func:`score` it on them.
    The texts are validated once, by the reader, and go down once: bundle -> embedding store -> encoder; the
    scores come back up. ``echo`` gets what each label value became where values were merged or left out (as
    ``fit`` says it), so a count of scored texts below the file's rows is read with its reason."""
    from pipeline.data.dataset import load

    ds = load(job.source, **job.source_options)
    if ds.report.label_line():
        echo(f"{job.source}: label values {ds.report.label_line()}")
    data = evaluation_set(job.source, ds, job.which)
    bundle = job.bundle.load()
    return score(bundle, data, prior=job.prior, adapt_prior=job.adapt_prior), bundle.label_names
