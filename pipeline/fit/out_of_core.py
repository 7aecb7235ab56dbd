"""``fit --head sgd --out-of-core``: the ``sgd`` head trained chunk by chunk from the cache, saved as an
ordinary bundle.

The pool and test texts are embedded through the cache first (chunk by chunk, as ``embed`` does);
:func:`pipeline.heads.out_of_core.fit_sgd` then streams the pool's vectors ``chunk_rows`` at a time, and the test
split is scored the same way. Only a seeded sample of at most :data:`SAMPLE_ROWS` pool vectors is ever held
whole, for the bundle's prior model and domain-shift sample. What grows with the number of rows is the texts
themselves, their cache keys (64 bytes) and the cache's key index (about 140 bytes per stored row); the
vectors never are (``chunk_rows`` x dim floats at a time).

:func:`plan` decides: ``--out-of-core`` forces it; otherwise ``fit --head sgd`` switches to it by itself when
the vectors it would hold (pool and test, float32) exceed the memory budget, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.heads.out_of_core import OutOfCore

MEMORY_BUDGET = 2 << 30  # bytes of vectors an in-memory fit may hold before sgd goes out of core
SAMPLE_ROWS = 20_000  # pool rows read whole: the prior model's out-of-fold refits and the shift sample
HEAD = "sgd"


def parse_memory(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"1.5GB"`` or a byte count -> bytes; OptionError otherwise."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in units and raw[-1:] else (raw, "")
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        value = -1
    if value <= 0:
        raise OptionError(f"--memory-budget {text!r}: give a size such as 512M, 2G or 1.5GB.")
    return int(value)


def human(n: float) -> str:
    """Bytes as ``1.5 GB`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def plan(heads: list[str], rows: int, dim: int, *, forced: bool, budget: int = MEMORY_BUDGET) -> tuple[bool, str]:
    """(train out of core?, the line that says why or why not; empty when there is nothing to say).

    ``rows`` are the labelled rows fit would hold (pool and test), ``dim`` the encoder's width.
    """
    need = rows * dim * 4
    size = f"{rows:,} rows x {dim}-d = {human(need)} of vectors"
    if forced:
        if heads != [HEAD]:
            raise OptionError(f"--out-of-core trains the {HEAD} head only; pass --head {HEAD} alone "
                              f"(got {', '.join(heads) or 'the default head'}).")
        return True, f"out of core: {size}, read in chunks (memory budget {human(budget)})"
    if need <= budget:
        return False, ""
    if heads == [HEAD]:
        return True, f"out of core: {size} > memory budget {human(budget)}; reading them in chunks"
    return False, (f"warning: {size} > memory budget {human(budget)}; these heads hold them all in memory. "
                   f"--head {HEAD} trains out of core (raise the budget with --memory-budget).")


@dataclass(frozen=True)
class Switch:
    """When ``fit`` trains out of core: always (``forced``: ``--out-of-core``), or for ``--head sgd`` alone
    once the vectors it would hold exceed ``memory`` bytes (``--memory-budget``)."""

    forced: bool = False
    memory: int = MEMORY_BUDGET


def choose(heads: list[str], ds: Any, encoder: Any, switch: Switch, *, budget: int | None, self_train: bool,
           cache_dir: str | Path | None, source_options: dict[str, Any]) -> tuple[Any, bool, str]:
    """(the encoder object, whether to train out of core, the line saying so or warning; maybe empty) for
    ``fit``: :func:`plan` on the rows fit would hold (a ``budget`` of the pool, or all of ``ds``). The encoder
    is built here once (its width decides) and handed on, so the model loads once."""
    from pipeline.encoders.registry import resolve_encoder
    from pipeline.paths import cache_dir_or_default

    if switch.forced and budget is not None:
        raise OptionError("--out-of-core trains on the whole pool; drop --budget (a budget fits in memory).")
    if switch.forced and self_train:
        raise OptionError("--out-of-core does not self-train; drop --self-train.")
    enc = resolve_encoder(encoder, cache_dir_or_default(cache_dir), source_options)
    rows = len(ds) if budget is None else min(budget, len(ds))
    # only the whole pool streams: with a budget or self-training, plan can but warn
    whole_pool = switch.forced or (budget is None and not self_train)
    go, line = plan(heads if whole_pool else [], rows, enc.dim, forced=switch.forced, budget=switch.memory)
    if go and not switch.forced and getattr(enc, "parts", None) is not None:  # one store only: the default routes
        return enc, False, (f"warning: {line.split(': ', 1)[-1].split(';')[0]}, held in memory: out of core reads one "
                            f"cache store and {enc.spec} combines several (--encoder 'mpnet[layers=9-12]' streams)")
    return enc, go, line


def fit_out_of_core(data: Any, *, encoder: Any, seed: int = 0, cache_dir: str | Path | None = None,
                    class_weight: str | None = None, settings: OutOfCore = OutOfCore(),
                    on_chunk: Callable[[int], None] | None = None) -> Any:
    """An unsaved :class:`~pipeline.bundle.bundle.Bundle` of the ``sgd`` head trained out of core on the whole
    pool of ``data`` (a source or a :class:`~pipeline.data.dataset.Dataset`) and scored on its test split."""
    from pipeline.bundle.bundle import SAMPLE_FILE, Bundle
    from pipeline.bundle.manifest import build, metrics_section, train_section
    from pipeline.encoders.registry import resolve_encoder
    from pipeline.fit.train import train_test
    from pipeline.heads.out_of_core import fit_sgd
    from pipeline.heads.registry import check_class_weight
    from pipeline.predict.metrics import evaluate
    from pipeline.predict.prior import PriorModel
    from pipeline.predict.shift import keep_sample
    from pipeline.paths import cache_dir_or_default
    from pipeline.store.cache import EmbeddingCache, Store, text_keys

    check_class_weight(class_weight)
    train, test = train_test(data, None, seed)
    cache_dir = cache_dir_or_default(cache_dir)
    enc = resolve_encoder(encoder, cache_dir)
    if getattr(enc, "parts", None) is not None:
        raise OptionError(f"{enc.spec}: --out-of-core reads one cache store; use a single encoder, not a combination.")
    cache = EmbeddingCache(cache_dir)
    for texts in (train.texts, test.texts):
        cache.fill(enc, texts, scan_hits=False)
    start = time.perf_counter()
    model = fit_sgd(cache_dir, enc, train.texts, train.labels, settings=settings, class_weight=class_weight, seed=seed,
                    on_chunk=on_chunk)
    seconds = time.perf_counter() - start
    store = Store(cache_dir, enc.fingerprint)
    metrics = None
    if len(test):
        proba = np.concatenate(list(_chunked_proba(model, store, text_keys(test.texts), enc.dim, settings.chunk_rows)))
        metrics = evaluate(test.labels, proba)
    idx = np.sort(np.random.default_rng(seed).permutation(len(train))[:SAMPLE_ROWS])
    X_sample = store.read(text_keys([train.texts[i] for i in idx]), enc.dim)
    groups = None if train.groups is None else [train.groups[i] for i in idx]
    prior = PriorModel.fit(model, X_sample, train.labels[idx], groups=groups, seed=seed)
    sample = keep_sample(X_sample, seed)
    manifest = build(
        encoder=enc,
        head={"name": HEAD, "params": {**settings.record(), "epochs_run": int(model[-1].n_iter_)},
              "class_weight": class_weight,
              "search": f"out of core: {model[-1].n_iter_} passes (at most {settings.epochs}) in chunks of "
                        f"{settings.chunk_rows:,} rows, no grid search", "fit_seconds": round(seconds, 3)},
        label_names=list(train.label_names),
        train=train_section(train, None, seed),
        metrics=metrics_section(metrics, test),
        prior=prior.to_dict(),
        shift={"file": SAMPLE_FILE, "rows": len(sample), "of": len(train)},
    )
    return Bundle(model, manifest, cache_dir=cache_dir, encoder=enc, shift_sample=sample)


def _chunked_proba(model: Any, store: Any, keys: np.ndarray, dim: int, chunk_rows: int) -> Iterator[np.ndarray]:
    """P(positive) of the rows of ``keys`` in input order, read ``chunk_rows`` at a time."""
    with store.pinned(keys, dim) as (rows, _):
        for lo in range(0, len(keys), chunk_rows):
            yield model.predict_proba(rows(np.arange(lo, min(lo + chunk_rows, len(keys)))))[:, 1]
