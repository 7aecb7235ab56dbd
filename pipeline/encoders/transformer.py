"""Transformer encoders: sentence-transformers models (``st:``, ``minilm``, ``mpnet``) and plain
transformers models with ``mean`` or ``cls`` pooling (``hf:``).

Both tokenize once, cut texts longer than the max length by the encoder's long-text strategy
(:mod:`.long_text`: truncate, head-tail or overlapping windows averaged), run all model inputs of
a call in longest-first batches (sorted by word-piece count, so batches pad little) under
``torch.inference_mode`` and the autocast of the chosen precision, move each batch to the CPU as
float32, pool windows per text, and count the texts longer than the max length.
torch and friends are imported on construction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.encoders.base import Encoder, layer_span
from pipeline.encoders.device import PROBE_TEXTS, autocast, default_batch_size, resolve_device, resolve_precision
from pipeline.encoders.long_text import (Batching, LengthStats, Windowing, encode_windows, length_stats,
                                         resolve_strategy)

HF_POOLINGS = ("mean", "cls")
# Model inputs are padded to a multiple of this many tokens and batched by that width (see _width). Under
# bf16 autocast, MiniLM gave 600 RT texts encoded 50 at a time and all at once bit-identical vectors with
# it, and 224 of 600 identical without it (max difference 1.1e-3; 2-core AVX-512 CPU, 2026-12-06). Not in
# the fingerprint: the vectors stay those of the same model within bf16 rounding, so bundles and caches
# made before keep loading; rows they cached under bf16 may differ from today's by that much.
WIDTH_STEP = 16
log = logging.getLogger(__name__)


class TransformerEncoder(Encoder):
    """Common machinery; subclasses load the model in :meth:`_load` and embed a batch in :meth:`_forward`."""

    library = "transformers"
    normalize = False

    def __init__(self, spec: str, model_dir: Path, identity: str, *, device: str = "auto", precision: str = "auto",
                 max_length: int | None = None, pooling: str | None = None, batch_size: int | None = None,
                 long_text: str = "auto") -> None:
        super().__init__(spec)
        if batch_size is not None and batch_size < 1:
            raise OptionError(f"{spec}: batch size must be at least 1, got {batch_size}.")
        if max_length is not None and max_length < 2:
            raise OptionError(f"{spec}: max length must be at least 2 tokens, got {max_length}.")
        self.model_dir = model_dir
        self.identity = identity
        self.long_text = long_text
        strategy = resolve_strategy(long_text)
        self.device = resolve_device(device)
        _hide_loading_bars()
        self._load(max_length, pooling)
        self._specials = _special_tokens(self.tokenizer)
        self.windowing = Windowing(strategy, self.max_length - len(self._specials[0]) - len(self._specials[1]))
        self._noticed = False
        self.batch_size = batch_size or default_batch_size(self.device)
        self.precision = resolve_precision(self.device, precision, probe=self._probe)

    # subclasses set: self.tokenizer, self.max_length, self.dim, self.pooling
    def _load(self, max_length: int | None, pooling: str | None) -> None:
        raise NotImplementedError

    def _forward(self, features: dict[str, Any]) -> Any:
        """Sentence vectors (a tensor) of a padded batch: ``input_ids`` and ``attention_mask``."""
        raise NotImplementedError

    def fingerprint_params(self) -> dict[str, Any]:
        return {
            "model": self.identity,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "precision": self.precision,
            "library": f"{self.library}=={version(self.library)}",
            "long_text": self.windowing.params(),
        }

    def describe(self) -> str:
        return (f"{self.spec} ({self.dim}-d, {self.device}, {self.precision}, max length {self.max_length}, "
                f"long texts {self.long_text}, batch {self.batch_size})")

    def _check_max_length(self, max_length: int, limit: int | None) -> None:
        if limit is not None and max_length > limit:
            raise OptionError(f"{self.spec}: max length {max_length} exceeds the model's limit of {limit} tokens.")

    def _token_counts(self, texts: list[str]) -> np.ndarray:
        """Word pieces per text, special tokens included."""
        extra = len(self._specials[0]) + len(self._specials[1])
        return np.fromiter((len(x) + extra for x in self._content_ids(texts)), dtype=np.int64, count=len(texts))

    def _content_ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    def length_stats(self, texts: Iterable[str]) -> LengthStats:
        """How many ``texts`` exceed the max length and what share of their word pieces is seen.

        ``texts`` may be a lazy iterable (e.g. a streamed file): it is tokenized block by block.
        """
        return length_stats(texts, self._content_ids, self.windowing)

    def _probe(self, precision: str) -> np.ndarray:
        return self._vectors(self._content_ids(list(PROBE_TEXTS)), precision)

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        ids = self._content_ids(texts)
        n_long = sum(len(x) > self.windowing.window for x in ids)
        self.last_stats = {"truncated": n_long}  # texts longer than the max length, whatever the strategy
        if n_long and self.long_text == "auto" and not self._noticed:
            self._noticed = True
            log.warning("%s: %d of %d texts exceed the max length of %d word pieces; --long auto encodes them "
                        "as chunk-mean (overlapping windows, averaged)", self.spec, n_long, len(texts), self.max_length)
        return self._vectors(ids, self.precision, progress)

    def _vectors(self, ids: list[list[int]], precision: str,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors of texts given as content ids: cut into model inputs, encoded together, pooled."""
        import torch

        def forward(batch: list[list[int]]) -> np.ndarray:
            return self._forward(self._features(batch)).float().cpu().numpy()

        with torch.inference_mode(), autocast(self.device, precision):
            return encode_windows(ids, self.windowing, self.dim, forward, self.normalize,
                                  Batching(self.batch_size, width=self._width), progress)

    def _width(self, content: int) -> int:
        """The padded width of a model input of ``content`` word pieces: its length with special tokens,
        rounded up to :data:`WIDTH_STEP` (at most the max length). Inputs are batched by it, so the shapes
        an input is computed at, and so its vector, never depend on the other texts of a call (reduced
        precision rounds differently at other widths: the cache keeps the first vector it is given)."""
        length = content + len(self._specials[0]) + len(self._specials[1])
        return min(-(-length // WIDTH_STEP) * WIDTH_STEP, max(self.max_length, length))

    def _features(self, batch: list[list[int]]) -> dict[str, Any]:
        """``input_ids``/``attention_mask`` tensors of content ids, special tokens added, padded to
        :meth:`_width` of the longest."""
        import torch

        prefix, suffix = self._specials
        rows = [prefix + p + suffix for p in batch]
        width = self._width(max(map(len, batch)))
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}


class SentenceTransformerEncoder(TransformerEncoder):
    """Any sentence-transformers model; its own modules decide pooling and normalisation.

    With ``layers="A-B"`` (a mean-pooled model only) a text's vector is the mean of hidden layers A..B's
    states (layer 1 is the first transformer layer), pooled and normalised as the model pools and
    normalises its last layer's: one pass, the cost of the plain model.
    """

    library = "sentence-transformers"

    def __init__(self, spec: str, model_dir: Path, identity: str, *, layers: str | None = None,
                 **options: Any) -> None:
        self.layers = layer_span(layers) if layers else None  # "A-B", checked by the spec's option table
        super().__init__(spec, model_dir, identity, **options)

    def fingerprint_params(self) -> dict[str, Any]:
        params = super().fingerprint_params()
        if self.layers:  # unset, the fingerprint is the one caches and bundles already hold
            params["layers"] = list(self.layers)
        return params

    def _load(self, max_length: int | None, pooling: str | None) -> None:
        if pooling is not None:
            raise OptionError(
                f"{self.spec}: a sentence-transformers model brings its own pooling (1_Pooling/config.json); "
                "drop --pooling, or use hf:NAME_OR_PATH --pooling mean|cls."
            )
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(self.model_dir), device=self.device, model_kwargs=weights_kwargs(self.model_dir))
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
        if self.layers:
            self._check_layers(model)

    def _check_layers(self, model: Any) -> None:
        depth = int(getattr(model.transformers_model.config, "num_hidden_layers", 0))
        if self.pooling != "mean" or [type(m).__name__ for m in model][:2] != ["Transformer", "Pooling"]:
            raise OptionError(f"{self.spec}: layers needs a mean-pooled model (a Transformer then a mean "
                              f"Pooling module); this one pools by {self.pooling}. Drop layers.")
        if self.layers[1] > depth:
            raise OptionError(f"{self.spec}: layers {self.layers[0]}-{self.layers[1]} go past the model's "
                              f"{depth} layers; use layers within 1-{depth}.")

    def _forward(self, features: dict[str, Any]) -> Any:
        if not self.layers:
            return self._model(features)["sentence_embedding"]
        import torch

        hidden = self._model.transformers_model(input_ids=features["input_ids"],
                                                attention_mask=features["attention_mask"],
                                                output_hidden_states=True).hidden_states
        first, last = self.layers
        pooled = mean_pool(torch.stack(hidden[first:last + 1]).mean(dim=0), features["attention_mask"])
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


class HFEncoder(TransformerEncoder):
    """A plain transformers model (BERT-style feature extraction) with ``mean`` or ``cls`` pooling."""

    def _load(self, max_length: int | None, pooling: str | None) -> None:
        pooling = pooling or "mean"
        if pooling not in HF_POOLINGS:
            raise OptionError(f"{self.spec}: unknown pooling {pooling!r}; use one of {', '.join(HF_POOLINGS)}.")
        from transformers import AutoModel, AutoTokenizer

        self.pooling = pooling
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self._model = AutoModel.from_pretrained(str(self.model_dir), **weights_kwargs(self.model_dir)).to(self.device).eval()
        limit = _model_limit(self.tokenizer, self._model)
        if max_length is not None:
            self._check_max_length(max_length, limit)
        self.max_length = int(max_length or min(filter(None, (_tokenizer_limit(self.tokenizer), limit)), default=512))
        self.dim = int(self._model.config.hidden_size)

    def _forward(self, features: dict[str, Any]) -> Any:
        hidden = self._model(**features).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        return mean_pool(hidden, features["attention_mask"])


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """The mean of each text's hidden states over its real tokens (torch tensors: batch x tokens x dim)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def weights_kwargs(model_dir: Path) -> dict[str, Any]:
    """``from_pretrained`` keywords that load only safetensors weights when the model has them (a pickled
    ``pytorch_model.bin`` beside them is then never read); others load as transformers does (torch's
    ``weights_only`` loader)."""
    return {"use_safetensors": True} if any(Path(model_dir).rglob("*.safetensors")) else {}


def _model_limit(tokenizer: Any, model: Any) -> int | None:
    """Most tokens the model takes: the rows of its learned position table when it has one, else the
    tokenizer's limit, else the config's ``max_position_embeddings``.

    The table comes first because a tokenizer saved by fine-tuning records the training window (64),
    not what the network can read. RoBERTa-style tables (an int ``padding_idx`` beside them, as in
    MPNet and XLM-R) start counting at ``padding_idx + 1``, as sentence-transformers also assumes.
    """
    import torch

    for module in model.modules():
        table = getattr(module, "position_embeddings", None)
        if isinstance(table, torch.nn.Embedding):
            offset = getattr(module, "padding_idx", None)
            return table.num_embeddings - (offset + 1 if isinstance(offset, int) else 0)
    return _tokenizer_limit(tokenizer) or getattr(getattr(model, "config", None), "max_position_embeddings", None)


def _tokenizer_limit(tokenizer: Any) -> int | None:
    """The tokenizer's ``model_max_length`` when it is set (not the huge 'unset' sentinel)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 100_000 else None


def _special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a text's word pieces (e.g. [CLS] and [SEP])."""
    probe = "review"
    inner = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(inner) + 1):
        if full[i : i + len(inner)] == inner:
            return list(full[:i]), list(full[i + len(inner):])
    raise ValueError(f"cannot find where the tokenizer {type(tokenizer).__name__} puts special tokens.")


def _hide_loading_bars() -> None:
    """transformers draws a 'Loading weights' bar at every model load; an encoder's own bar is enough."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
