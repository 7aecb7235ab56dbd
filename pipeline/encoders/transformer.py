"""Transformer encoders: sentence-transformers models (``st:``, ``minilm``, ``mpnet``) and plain
transformers models with ``mean`` or ``cls`` pooling (``hf:``).

Both run longest-first batches (sorted by token count, so batches pad little) under
``torch.inference_mode`` and the autocast of the chosen precision, move each batch to the CPU as
float32 and count the texts cut at the max length. torch and friends are imported on construction.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.encoders.base import Encoder
from pipeline.encoders.device import PROBE_TEXTS, autocast, default_batch_size, resolve_device, resolve_precision

HF_POOLINGS = ("mean", "cls")


class TransformerEncoder(Encoder):
    """Common machinery; subclasses load the model in :meth:`_load` and embed a batch in :meth:`_forward`."""

    library = "transformers"
    normalize = False

    def __init__(self, spec: str, model_dir: Path, identity: str, *, device: str = "auto", precision: str = "auto",
                 max_length: int | None = None, pooling: str | None = None, batch_size: int | None = None) -> None:
        super().__init__(spec)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"{spec}: batch size must be at least 1, got {batch_size}.")
        if max_length is not None and max_length < 2:
            raise ValueError(f"{spec}: max length must be at least 2 tokens, got {max_length}.")
        self.model_dir = model_dir
        self.identity = identity
        self.device = resolve_device(device)
        self._load(max_length, pooling)
        self.batch_size = batch_size or default_batch_size(self.device)
        self.precision = resolve_precision(self.device, precision, probe=self._probe)

    # subclasses set: self.tokenizer, self.max_length, self.dim, self.pooling
    def _load(self, max_length: int | None, pooling: str | None) -> None:
        raise NotImplementedError

    def _forward(self, batch: list[str]) -> Any:
        raise NotImplementedError

    def fingerprint_params(self) -> dict[str, Any]:
        return {
            "model": self.identity,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "precision": self.precision,
            "library": f"{self.library}=={version(self.library)}",
        }

    def describe(self) -> str:
        return (f"{self.spec} ({self.dim}-d, {self.device}, {self.precision}, max length {self.max_length}, "
                f"batch {self.batch_size})")

    def _check_max_length(self, max_length: int, limit: int | None) -> None:
        if limit is not None and max_length > limit:
            raise ValueError(f"{self.spec}: max length {max_length} exceeds the model's limit of {limit} tokens.")

    def _token_counts(self, texts: list[str]) -> np.ndarray:
        ids = self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(texts))

    def _probe(self, precision: str) -> np.ndarray:
        return self._run(list(PROBE_TEXTS), precision, self._token_counts(list(PROBE_TEXTS)))

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        counts = self._token_counts(texts)
        self.last_stats = {"truncated": int((counts > self.max_length).sum())}
        return self._run(texts, self.precision, counts, progress)

    def _run(self, texts: list[str], precision: str, counts: np.ndarray,
             progress: Callable[[int], None] | None = None) -> np.ndarray:
        import torch

        order = np.argsort(-counts, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode(), autocast(self.device, precision):
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                emb = self._forward([texts[i] for i in idx])
                out[idx] = emb.float().cpu().numpy()
                if progress is not None:
                    progress(len(idx))
        return out


class SentenceTransformerEncoder(TransformerEncoder):
    """Any sentence-transformers model; its own modules decide pooling and normalisation."""

    library = "sentence-transformers"

    def _load(self, max_length: int | None, pooling: str | None) -> None:
        if pooling is not None:
            raise ValueError(
                f"{self.spec}: a sentence-transformers model brings its own pooling (1_Pooling/config.json); "
                "drop --pooling, or use hf:NAME_OR_PATH --pooling mean|cls."
            )
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(self.model_dir), device=self.device)
        model.eval()
        self._model = model
        self.tokenizer = model.tokenizer
        if max_length is not None:
            self._check_max_length(max_length, _model_limit(self.tokenizer, model.transformers_model))
            model.max_seq_length = max_length
        self.max_length = int(model.max_seq_length)
        self.dim = int(model.get_embedding_dimension())
        names = [type(m).__name__ for m in model]
        self.normalize = "Normalize" in names
        pool = next((m for m in model if type(m).__name__ == "Pooling"), None)
        self.pooling = getattr(pool, "pooling_mode", None) or ("model" if pool is None else "custom")

    def _forward(self, batch: list[str]) -> Any:
        from sentence_transformers.util import batch_to_device

        features = batch_to_device(self._model.preprocess(batch), self._model.device)
        return self._model(features)["sentence_embedding"]


class HFEncoder(TransformerEncoder):
    """A plain transformers model (BERT-style feature extraction) with ``mean`` or ``cls`` pooling."""

    def _load(self, max_length: int | None, pooling: str | None) -> None:
        pooling = pooling or "mean"
        if pooling not in HF_POOLINGS:
            raise ValueError(f"{self.spec}: unknown pooling {pooling!r}; use one of {', '.join(HF_POOLINGS)}.")
        from transformers import AutoModel, AutoTokenizer

        self.pooling = pooling
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self._model = AutoModel.from_pretrained(str(self.model_dir)).to(self.device).eval()
        limit = _model_limit(self.tokenizer, self._model)
        if max_length is not None:
            self._check_max_length(max_length, limit)
        self.max_length = int(max_length or limit or 512)
        self.dim = int(self._model.config.hidden_size)

    def _forward(self, batch: list[str]) -> Any:
        enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        hidden = self._model(**enc).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def _model_limit(tokenizer: Any, model: Any) -> int | None:
    """Most tokens the model takes: the tokenizer's limit when set, else the position embeddings."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 100_000:
        return limit
    config = getattr(model, "config", None)
    return getattr(config, "max_position_embeddings", None)
