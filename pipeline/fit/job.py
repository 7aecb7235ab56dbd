"""``fit`` end to end for one :class:`FitJob`: the encoder chosen and guarded on the source, heads fitted
(in memory, or ``sgd`` out of core), bundles saved. :func:`fit_source` is what the command calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bundle.bundle import Bundle
from pipeline.encoders.probe import MIN_MEDIAN_COSINE
from pipeline.encoders.spec import EncoderOptions
from pipeline.fit.out_of_core import Switch
from pipeline.fit.train import FitPlan


@dataclass(frozen=True)
class FitJob:
    """What ``fit`` does: ``plan`` on ``source`` (read with ``source_options``) with the one encoder of
    ``encoder`` (its flags and cache directory), a transformer under ``backend``/``quantize`` (None: auto)
    guarded at ``min_cosine`` on the source's texts; ``switch`` says when ``sgd`` trains out of core, and
    ``unlabelled`` holds the texts of each ``--unlabelled`` source for self-training. Bundles go under ``out``."""

    source: str
    encoder: EncoderOptions
    plan: FitPlan = FitPlan()
    out: str | Path = "models"
    backend: str | None = None
    quantize: str | None = None
    min_cosine: float = MIN_MEDIAN_COSINE
    switch: Switch = Switch()
    source_options: dict[str, Any] = field(default_factory=dict)
    unlabelled: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class Fitted:
    """What :func:`fit_source` made: the saved ``bundles`` (one per head) and the encoder ``spec`` they use."""

    bundles: list[Bundle]
    spec: str


def fit_source(job: FitJob, echo: Callable[[str], None] = print) -> Fitted:
    """Fit and save the bundles of ``job``, saying what it does through ``echo`` (label values merged, the
    backend chosen, out of core or not, each bundle saved). The spec and the heads are checked, and an empty
    signing key refused, before the source is read."""
    from pipeline.bundle.manifest import signing_key
    from pipeline.data.dataset import check_budgets, load
    from pipeline.encoders.auto import chooses_backend, command_encoder
    from pipeline.encoders.routed import other_side_alone
    from pipeline.fit.out_of_core import choose, fit_out_of_core
    from pipeline.fit.train import bundle_name, iter_fit
    from pipeline.heads.registry import get_head
    from pipeline.paths import cache_dir_or_default

    raw, cache_dir, opts, plan = job.encoder.specs[0], job.encoder.cache_dir, job.source_options, job.plan
    spec = job.encoder.parsed()[0]  # backend and quantize: below, guarded on the source
    signing_key()  # an empty key fails before the work, not at the save
    for name in plan.heads:  # an unknown head fails before the encoder is exported and probed
        get_head(name)
    ds = load(job.source, **opts)
    if ds.report.label_line():  # values merged into a class (--positive) or renamed
        echo(f"{job.source}: label values {ds.report.label_line()}")
    if ds.labels is not None:  # before the encoder is exported and probed
        check_budgets(ds, [plan.budget])
    spec, line = other_side_alone(spec, ds.texts)  # a routed spec on texts with no English: before it is probed
    if line:
        echo(f"fit: {line}")
    encoder: Any = spec
    if chooses_backend(raw, job.backend, job.quantize):  # recorded in bundles
        options = {"work_dir": cache_dir_or_default(cache_dir), "source_options": opts}
        encoder, lines = command_encoder(raw, spec, ds.texts, options, backend=job.backend, quantize=job.quantize,
                                         min_median=job.min_cosine)
        for line in lines:
            echo(line)
    encoder, streamed, line = choose(list(plan.heads), ds, encoder, job.switch, budget=plan.budget,
                                     self_train=plan.self_train is not None, cache_dir=cache_dir, source_options=opts)
    if line:
        echo(f"fit: {line}")
    bundles = [fit_out_of_core(ds, encoder=encoder, seed=plan.seed, cache_dir=cache_dir,
                               class_weight=plan.class_weight)] if streamed else \
        iter_fit(ds, plan, encoder=encoder, cache_dir=cache_dir, source_options=opts, unlabelled=job.unlabelled)
    saved = []
    for bundle in bundles:
        path = bundle.save(Path(job.out) / bundle_name(bundle))
        echo(f"saved {bundle.manifest['head']['name']}: {path}")
        saved.append(bundle)
    return Fitted(saved, str(spec))
