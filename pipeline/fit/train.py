"""Stage two end to end: split, sample a budget, embed once through the cache, fit heads, score, bundle.

``fit("rt", encoder="minilm", head="logreg")`` returns a :class:`~pipeline.bundle.bundle.Bundle`;
:func:`iter_fit` fits several heads on one set of vectors (each text is encoded at most once,
and not at all when the cache already holds it). Evaluating a bundle lives in :mod:`pipeline.predict.evaluate`,
predicting in :mod:`pipeline.predict.predict`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.bundle.bundle import SAMPLE_FILE, Bundle
from pipeline.data.dataset import DataError, Dataset, load, sample_budget, split
from pipeline.heads.registry import DEFAULT_HEAD, FitOptions, check_class_weight, get_head
from pipeline.heads.routed import fit_any
from pipeline.bundle.manifest import build, metrics_section, train_section
from pipeline.predict.metrics import evaluate
from pipeline.predict.prior import PriorModel
from pipeline.heads.prompts import DEFAULT as DEFAULT_PROMPTS
from pipeline.heads.prompts import Prompts, encoded_direction
from pipeline.predict.shift import keep_sample
from pipeline.encoders.registry import resolve_encoder
from pipeline.encoders.routed import for_prediction, layout_of
from pipeline.encoders.spec import DEFAULT_ENCODER



def train_test(data: str | Dataset, budget: int | None, seed: int) -> tuple[Dataset, Dataset]:
    """(training set, test set): the leak-free split of ``data``, with a balanced budget of its pool."""
    ds = load(data) if isinstance(data, str) else data
    if ds.labels is None:
        raise DataError(f"{ds.name or 'data'}: has no labels to train on; pass --label-col (and --positive).")
    pool, test = split(ds)
    return sample_budget(pool, budget, seed), test


@dataclass(frozen=True)
class FitPlan:
    """What ``fit`` trains: ``heads`` on the pool (or a balanced ``budget`` of it, sampled with ``seed``),
    with ``class_weight``, CV folds in ``n_jobs`` processes, optionally self-trained (``self_train``: a
    :class:`~pipeline.unlabelled.self_train.SelfTrainSettings`) and with the prompt prior of ``prompts``
    (:mod:`pipeline.heads.prompts`; ``None``: off)."""

    heads: Sequence[str] = (DEFAULT_HEAD,)
    budget: int | None = None
    seed: int = 0
    class_weight: str | None = None
    n_jobs: int | None = None
    self_train: Any = None
    prompts: Prompts | None = DEFAULT_PROMPTS


def iter_fit(
    data: str | Dataset,
    plan: FitPlan = FitPlan(),
    *,
    encoder: Any = DEFAULT_ENCODER,
    cache_dir: str | Path | None = None,
    source_options: dict[str, Any] | None = None,
    unlabelled: dict[str, list[str]] | None = None,
) -> Iterator[Bundle]:
    """Fit each head of ``plan`` on the same vectors and yield an unsaved :class:`Bundle` per head.

    ``data`` is a source string (see :func:`pipeline.data.dataset.load`) or a loaded :class:`Dataset`;
    ``encoder`` a spec string or an encoder object (``spec``, ``fingerprint``, ``encode``). The
    training and test texts are embedded before any head is fitted, so the heads add no encoding; the
    test texts as a bundle predicts them (a routed encoder reads each with its own side only). Each bundle's manifest holds its test-split metrics. ``source_options``
    (text_col, ...) read the SOURCE of a ``w2v-train:SOURCE`` encoder. With ``plan.self_train`` each head is
    self-trained on the pool texts outside the budget (labels dropped) plus the ``unlabelled`` texts (by
    source); the manifest records it under ``self_train`` and ``unlabelled``. ``plan.prompts`` are encoded
    through the cache and give the linear heads their prompt prior; the manifest records them.
    """
    from pipeline.paths import cache_dir_or_default
    from pipeline.store.cache import EmbeddingCache

    heads, seed, class_weight, prompts = list(dict.fromkeys(plan.heads)), plan.seed, plan.class_weight, plan.prompts
    _check_fit_options(heads, class_weight, plan.self_train, unlabelled)
    train, test, unl = _fit_sets(data, plan.budget, seed, plan.self_train, unlabelled)
    cache_dir = cache_dir_or_default(cache_dir)
    enc = resolve_encoder(encoder, cache_dir, source_options)
    cache = EmbeddingCache(cache_dir)
    vectors = cache.vectors(enc, train.texts + (unl.texts if unl else []))
    X_test = cache.vectors(for_prediction(enc), test.texts)  # scored as a bundle predicts: each text its own side
    u = encoded_direction(prompts, enc, cache_dir) if prompts is not None else None
    X_train = vectors[: len(train)]
    layout = layout_of(enc)  # a routed encoder: a head per language side
    for name in heads:
        prompted = u is not None and get_head(name).prompted
        extra: dict[str, Any] = {"prompts": prompts.record()} if prompted else {}
        if unl is not None:
            from pipeline.unlabelled.routed import self_train_any

            options = FitOptions(groups=train.groups, class_weight=class_weight, seed=seed, n_jobs=plan.n_jobs,
                                 prompt_direction=u if prompted else None)
            fitted, record = self_train_any(name, X_train, train.labels, vectors[len(train):], layout,
                                            settings=plan.self_train, options=options)
            extra.update({"self_train": record, "unlabelled": unl.record})
        else:
            fitted = fit_any(name, X_train, train.labels, layout,
                             FitOptions(groups=train.groups, class_weight=class_weight, seed=seed, n_jobs=plan.n_jobs,
                                        prompt_direction=u if prompted else None))
        yield _bundle(name, fitted, enc, (train, test), (X_train, X_test), plan, cache_dir=cache_dir, extra=extra)


def _check_fit_options(heads: Sequence[str], class_weight: str | None, self_train: Any,
                       unlabelled: dict[str, list[str]] | None) -> None:
    """Fail on a head typo, a bad class weight or unlabelled texts without self-training, before any encoding."""
    for name in heads:
        get_head(name)
    check_class_weight(class_weight)
    if self_train is None and unlabelled:
        raise OptionError("unlabelled texts are used by self-training: add --self-train (or use them with "
                         "`review-transfer adapt`).")


def _fit_sets(data: str | Dataset, budget: int | None, seed: int, self_train: Any,
              unlabelled: dict[str, list[str]] | None) -> tuple[Dataset, Dataset, Any]:
    """(training set, test set, unlabelled set or None): the latter only for self-training."""
    if self_train is None:
        return (*train_test(data, budget, seed), None)
    from pipeline.data.unlabelled import for_budget

    return for_budget(load(data) if isinstance(data, str) else data, budget, seed, unlabelled)


def _bundle(name: str, fitted: Any, enc: Any, sets: tuple[Dataset, Dataset], vectors: tuple[np.ndarray, np.ndarray],
            plan: FitPlan, *, cache_dir: str | Path, extra: dict[str, Any]) -> Bundle:
    """An unsaved bundle of a head fitted on ``sets`` = (train, test) with their ``vectors``: test metrics, the
    prior model (for --prior/--adapt-prior) and the training sample of the domain-shift check go into its manifest."""
    (train, test), (X_train, X_test), seed = sets, vectors, plan.seed
    metrics = evaluate(test.labels, fitted.estimator.predict_proba(X_test)) if len(test) else None
    prior = PriorModel.fit(fitted.estimator, X_train, train.labels, groups=train.groups, seed=seed)
    sample = keep_sample(X_train, seed)
    manifest = build(
        encoder=enc,
        head={"name": name, "params": fitted.params,
              "class_weight": plan.class_weight, "search": fitted.search, "cv_accuracy": fitted.cv_accuracy,
              "cv_sd": fitted.cv_sd, "fit_seconds": round(fitted.fit_seconds, 3)},
        label_names=list(train.label_names),
        train=train_section(train, plan.budget, seed),
        metrics=metrics_section(metrics, test),
        prior=prior.to_dict(),
        shift={"file": SAMPLE_FILE, "rows": len(sample), "of": len(train)},
        **extra,
    )
    return Bundle(fitted.estimator, manifest, cache_dir=cache_dir, encoder=enc, shift_sample=sample)


def fit(
    source_or_dataset: str | Dataset,
    encoder: Any = DEFAULT_ENCODER,
    head: str = DEFAULT_HEAD,
    budget: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
    class_weight: str | None = None,
    *,
    n_jobs: int | None = None,
    prompts: Prompts | None = DEFAULT_PROMPTS,
) -> Bundle:
    """Fit one head on the pool of ``source_or_dataset`` (or a balanced ``budget`` of it), score it on
    the test split, and return the :class:`Bundle` — saved to directory ``out`` when given. ``prompts``
    give a linear head its prompt prior (:mod:`pipeline.heads.prompts`; ``None``: off)."""
    bundle = next(
        iter_fit(
            source_or_dataset,
            FitPlan(heads=[head], budget=budget, seed=seed, class_weight=class_weight, n_jobs=n_jobs, prompts=prompts),
            encoder=encoder, cache_dir=cache_dir,
        )
    )
    if out is not None:
        bundle.save(out)
    return bundle


def bundle_name(bundle: Bundle) -> str:
    """Default directory name of a bundle: ``<source>-<encoder>-<head>-b<budget>-s<seed>``."""
    train = bundle.manifest["train"]
    source = train["source"]
    source = Path(source).stem if Path(source).suffix else source
    spec = bundle.manifest["encoder"]["spec"]
    kind, _, arg = spec.partition(":")
    encoder = _alias_of(spec) or (f"{kind}_{Path(arg).name}" if arg else kind)  # st:/models/tuned -> st_tuned
    if "|" in encoder:  # mpnet|multilingual: not to be taken for mpnet+multilingual
        encoder = "routed_" + encoder
    budget = "all" if train["budget"] is None else train["budget"]
    parts = [source, encoder, bundle.manifest["head"]["name"], f"b{budget}", f"s{train['seed']}"]
    return "-".join(_slug(p) for p in parts)


def _alias_of(spec: str) -> str | None:
    """The alias (``multilingual``, ``multilingual-e5``) whose spec ``spec`` is, so the default's bundles are named
    by the word a user knows rather than its 57-character routed spec; None for any other spec."""
    from pipeline.encoders.spec import ALIASES, ROUTED_ALIASES, parse_spec

    return next((alias for alias in (*ROUTED_ALIASES, *ALIASES) if str(parse_spec(alias)) == spec), None)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_.-") or "x"
