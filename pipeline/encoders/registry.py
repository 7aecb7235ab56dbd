"""Specs -> encoders: :func:`get_encoder` builds the encoder an :class:`~pipeline.encoders.spec.EncoderSpec` names.

The spec table, its ``[key=value]`` options and the trust policy live in :mod:`pipeline.encoders.spec`, the one
place a spec resolves to model files. Transformer encoders take ``long`` (``auto``/``truncate``/
``head-tail``/``chunk-mean``, see :mod:`.long_text`), ``max_length``, ``precision``, ``backend``
(``torch``/``onnx``/``openvino``, see :mod:`.onnx`) and ``quantize``; word-vector encoders take
``pooling`` (``tfidf`` default, ``mean``, ``sif``) and run on the CPU in float32, always seeing the whole text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import OptionError
from pipeline.encoders.base import Encoder
from pipeline.paths import cache_dir_or_default
from pipeline.encoders.spec import SPECS, EncoderSpec, Resolution, model_files, parse_spec, word_vectors

__all__ = ["SPECS", "get_encoder", "is_transformer", "resolve_encoder"]


def is_transformer(spec: str | EncoderSpec) -> bool:
    """Whether ``spec`` (or a part of ``A+B``) names a transformer encoder, which backends apply to."""
    parsed = parse_spec(spec)
    return any(p.has_exports for p in (parsed.parts or (parsed,)))


def get_encoder(spec: str | EncoderSpec, *, device: str = "auto", batch_size: int | None = None,
                work_dir: str | Path | None = None, source_options: dict[str, Any] | None = None,
                parts: list[dict[str, Any]] | None = None, trust: Resolution | None = None,
                route_version: int | None = None, **defaults: Any) -> Encoder:
    """Build the encoder ``spec`` names (a string such as ``minilm[long=truncate]`` or a parsed spec).

    ``defaults`` (``precision``, ``max_length``, ``pooling``, ``long_text``, ``backend``, ``quantize``;
    ``None`` or a default value = not given) fill the options the spec leaves unset, as command-line
    flags do. ``work_dir`` keeps derived model files (trained Word2Vec vectors, the unpacked mpnet,
    exports; default :func:`pipeline.paths.default_cache_dir`). ``source_options`` (text_col, ...) read
    the SOURCE of ``w2v-train:SOURCE``. ``parts[i]`` sets the options of part i of ``A+B`` (as bundles
    record them). ``trust`` limits where the spec may resolve (see :class:`pipeline.bundle.trust.Trust`); it is
    checked before any file is read. ``route_version`` routes an ``E|O`` spec by that version's English check (a
    bundle's recorded one; None: the newest, :data:`pipeline.encoders.routed.ROUTE_VERSION`).
    """
    parsed = parse_spec(spec).with_defaults(**defaults)
    if parts is not None:
        parsed = parsed.with_part_options(parts)
    if trust is not None:
        trust.check(parsed)
    work = cache_dir_or_default(work_dir)
    runtime = {"device": device, "batch_size": batch_size}
    if parsed.parts:
        from pipeline.encoders.concat import ConcatEncoder
        from pipeline.encoders.routed import RoutedEncoder

        built = [_build(p, i, work, runtime, source_options, trust) for i, p in enumerate(parsed.parts)]
        if not parsed.route:
            return ConcatEncoder(str(parsed), built)
        return RoutedEncoder(str(parsed), built, parsed.route, **({"route_version": route_version} if route_version else {}))
    return _build(parsed, 0, work, runtime, source_options, trust)


def _build(spec: EncoderSpec, index: int, work: Path, runtime: dict[str, Any],
           source_options: dict[str, Any] | None, trust: Resolution | None) -> Encoder:
    """One (not combined) encoder; ``index`` is its place in a combined spec (0 alone)."""
    if spec.is_transformer:
        return _transformer(spec, work, runtime, trust)
    if spec.kind == "e5-small-multilingual":
        from pipeline.encoders.multilingual import multilingual_encoder

        return multilingual_encoder(spec, work, runtime)
    if spec.kind == "wordllama":
        from pipeline.encoders.static import WordLlamaEncoder

        return WordLlamaEncoder(str(spec), **spec.kwargs)
    from pipeline.encoders.static import StaticEncoder

    encoder = StaticEncoder(str(spec), word_vectors(spec, work, trust, source_options, index), **spec.kwargs)
    if spec.kind == "w2v-train" and source_options:
        encoder.source_options = dict(source_options)  # how SOURCE was read, for bundles to rebuild it
    return encoder


def _transformer(spec: EncoderSpec, work: Path, runtime: dict[str, Any], trust: Resolution | None) -> Encoder:
    """A transformer encoder: torch, or an ONNX/OpenVINO export (:mod:`.onnx`) for other backends."""
    from pipeline.encoders.onnx import check_backend

    options = spec.kwargs
    backend, quantize = options.pop("backend", "torch"), options.pop("quantize", "none")
    calibration = options.pop("calibration", None)  # static int8's calibration set: exports only
    check_backend(backend, quantize)
    model_dir, identity = model_files(spec, work, trust)
    if backend != "torch":
        from pipeline.encoders.onnx import ExportedEncoder, LayerMeanExport

        if runtime["device"] not in ("auto", "cpu") or options.pop("precision", "auto") not in ("auto", "fp32"):
            raise OptionError(f"{spec}: backend {backend} runs on the CPU in fp32 (or int8 with quantize=int8); "
                             "drop --device/--precision or use backend torch.")
        export = LayerMeanExport if "layers" in options else ExportedEncoder
        return export(str(spec), model_dir, identity, backend=backend, quantize=quantize, work_dir=work,
                      batch_size=runtime["batch_size"], calibration=calibration, **options)
    from pipeline.encoders.transformer import HFEncoder, SentenceTransformerEncoder

    cls = HFEncoder if spec.kind == "hf" else SentenceTransformerEncoder
    return cls(str(spec), model_dir, identity, **runtime, **options)


def resolve_encoder(encoder: Any, cache_dir: str | Path | None = None,
                    source_options: dict[str, Any] | None = None) -> Any:
    """An encoder object: a spec (a string or :class:`~pipeline.encoders.spec.EncoderSpec`) goes through
    ``get_encoder`` (``source_options`` read the SOURCE of ``w2v-train:SOURCE``); an encoder is used as is."""
    if isinstance(encoder, (str, EncoderSpec)):
        return get_encoder(encoder, work_dir=cache_dir, source_options=source_options)
    return encoder
