"""``adapt`` end to end for one :class:`AdaptJob`: the unlabelled corpus gathered (SOURCE's pool outside its
test split, plus ``--unlabelled`` sources), sampled, the encoder adapted (:func:`pipeline.unlabelled.adapt.adapt`)
and copied out. :func:`adapt_source` is what the command calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.unlabelled.adapt import AdaptRecipe, Adapted


@dataclass(frozen=True)
class AdaptJob:
    """What ``adapt`` does: ``encoder`` trained by ``recipe`` on the pool of ``source`` (column ``text_col``,
    split by ``group_col``) and the ``unlabelled`` sources, at most ``max_texts`` of them (a seeded sample),
    on ``device`` in ``precision``, checkpointing every ``checkpoint_seconds``; the model is keyed in
    ``cache_dir`` and copied to ``out`` when given."""

    source: str
    encoder: str
    recipe: AdaptRecipe
    unlabelled: tuple[str, ...] = ()
    text_col: str = "text"
    group_col: str | None = None
    out: str | Path | None = None
    max_texts: int | None = None
    device: str = "auto"
    precision: str = "auto"
    checkpoint_seconds: float = 300.0
    cache_dir: str | Path | None = None


def adapt_source(job: AdaptJob, echo: Callable[[str], None] = print) -> tuple[Adapted, Path, int]:
    """Run ``job``; ``echo`` hears which texts it uses. Returns the adapted model, the directory to use
    (``out`` or the cache's) and how many texts it trained on."""
    import numpy as np

    from pipeline.data.dataset import load, split
    from pipeline.data.unlabelled import describe, gather, read_unlabelled
    from pipeline.unlabelled.adapt import adapt, copy_to

    ds = load(job.source, text_col=job.text_col, label_col=None, group_col=job.group_col, require_labels=False)
    pool, test = split(ds)
    unl = gather(pool, np.zeros(0, dtype=np.int64), test, read_unlabelled(job.unlabelled, text_col=job.text_col),
                 pool_rest=True)
    texts = unl.texts
    if job.max_texts is not None and len(texts) > job.max_texts:
        order = np.random.default_rng(job.recipe.seed).permutation(len(texts))[:job.max_texts]
        texts = [texts[i] for i in np.sort(order)]
    echo(describe(unl.record) + (f"; a sample of {len(texts):,} used" if len(texts) < len(unl) else ""))
    result = adapt(texts, encoder=job.encoder, recipe=job.recipe, cache_dir=job.cache_dir, device=job.device,
                   precision=job.precision, checkpoint_seconds=job.checkpoint_seconds)
    return result, (copy_to(result, job.out) if job.out else result.path), len(texts)
