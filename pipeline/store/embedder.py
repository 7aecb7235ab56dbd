"""``Embedder``: the cached stage-one encoder as a scikit-learn transformer.

``make_pipeline(Embedder("minilm"), LogisticRegression())`` fits and predicts raw texts; vectors come
from the embedding cache, so refitting heads never re-encodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from pipeline.encoders.spec import ENGLISH_ENCODER


class Embedder(TransformerMixin, BaseEstimator):
    """Texts -> float32 ``(n, dim)`` vectors of the encoder ``spec``, through the cache in ``cache_dir``.

    ``spec`` (default ``mpnet[layers=9-12]``, the English side of the commands' default: one head reads these
    vectors, while a routed spec such as ``multilingual`` wants a head per side, as ``fit`` fits them)
    may carry options (``minilm[long=truncate]``); ``precision``, ``max_length``, ``pooling``,
    ``long_text``, ``backend`` and ``quantize`` fill those it leaves unset. ``fit`` does nothing; the
    encoder and cache handle are built on the first ``transform`` and are not pickled (clones and unpickled copies rebuild them from the parameters).
    """

    def __init__(self, spec: str = ENGLISH_ENCODER, cache_dir: str | None = None, device: str = "auto",
                 precision: str = "auto", max_length: int | None = None, pooling: str | None = None,
                 batch_size: int | None = None, long_text: str = "auto", backend: str = "torch",
                 quantize: str = "none") -> None:
        self.spec = spec
        self.cache_dir = cache_dir
        self.device = device
        self.precision = precision
        self.max_length = max_length
        self.pooling = pooling
        self.batch_size = batch_size
        self.long_text = long_text
        self.backend = backend
        self.quantize = quantize

    def fit(self, X: Any, y: Any = None) -> Embedder:
        """No-op: the encoder is pretrained."""
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Vectors of the texts ``X`` (a list, 1-d array, Series or one-column frame), in order."""
        from pipeline.store.cache import EmbeddingCache

        if getattr(self, "_cache", None) is None:
            self._cache = EmbeddingCache(self.cache_dir)
        return self._cache.vectors(self.encoder_, _as_texts(X))

    @property
    def encoder_(self) -> Any:
        """The encoder, built from the parameters on first use."""
        if getattr(self, "_encoder", None) is None:
            from pipeline.encoders import get_encoder

            self._encoder = get_encoder(self.spec, device=self.device, precision=self.precision,
                                        max_length=self.max_length, pooling=self.pooling,
                                        batch_size=self.batch_size, work_dir=self.cache_dir,
                                        long_text=self.long_text, backend=self.backend,
                                        quantize=self.quantize)
        return self._encoder

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``emb0 .. emb{dim-1}``."""
        return np.array([f"emb{i}" for i in range(self.encoder_.dim)], dtype=object)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_encoder", None)
        state.pop("_cache", None)
        return state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


def _as_texts(X: Any) -> list[Any]:
    """A flat list from a list, 1-d array, Series or one-column DataFrame/2-d array."""
    if isinstance(X, str):
        raise TypeError("expected a list of texts, got a single str; wrap it in a list.")
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        if shape[1] != 1:
            raise ValueError(f"expected one column of texts, got an array of shape {shape}.")
        X = X.iloc[:, 0] if hasattr(X, "iloc") else np.asarray(X)[:, 0]
    return list(X)
