"""The out-of-core ``sgd`` head: trained chunk by chunk from the cache, as good as an in-memory logistic regression."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.store.cache import CacheError, EmbeddingCache
from pipeline.encoders import get_encoder
from pipeline.heads.out_of_core import OutOfCore, fit_sgd


@pytest.fixture(scope="module")
def cached(rt_split, tmp_path_factory):
    """GloVe vectors of the RT pool and test split in a fresh cache."""
    pool, test = rt_split
    enc = get_encoder("glove-6b-50d")
    cache_dir = tmp_path_factory.mktemp("ooc")
    cache = EmbeddingCache(cache_dir)
    return cache_dir, enc, pool, test, cache.vectors(enc, pool.texts), cache.vectors(enc, test.texts)


def test_sgd_over_chunks_matches_in_memory_logistic_regression(cached):
    cache_dir, enc, pool, test, X_pool, X_test = cached
    sizes: list[int] = []
    model = fit_sgd(cache_dir, enc, pool.texts, pool.labels, settings=OutOfCore(epochs=3, chunk_rows=1000),
                    on_chunk=sizes.append)
    assert max(sizes) <= 1000 and sum(sizes) == 3 * len(pool)  # never more than a chunk in memory
    accuracy = (model.predict(X_test) == test.labels).mean()
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(X_pool, pool.labels)
    assert accuracy > (reference.predict(X_test) == test.labels).mean() - 0.03
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1)

    again = fit_sgd(cache_dir, enc, pool.texts, pool.labels, settings=OutOfCore(epochs=3, chunk_rows=1000))
    np.testing.assert_array_equal(again[-1].coef_, model[-1].coef_)  # seeded: same chunks, same order


def test_sgd_refuses_one_class_and_uncached_texts(cached):
    cache_dir, enc, pool, *_ = cached
    with pytest.raises(ValueError, match="both classes"):
        fit_sgd(cache_dir, enc, pool.texts[:50], np.ones(50, dtype=np.int64))
    with pytest.raises(CacheError, match="1 requested rows are not in the cache"):
        fit_sgd(cache_dir, enc, [*pool.texts[:50], "never embedded"], np.arange(51) % 2)
