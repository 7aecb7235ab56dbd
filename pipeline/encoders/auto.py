"""``backend auto``, the default of every command that encodes: the fastest guarded runtime for a frozen transformer.

When a command is given neither ``--backend`` nor ``--quantize`` (and the spec names neither), a
transformer encoder runs from the first of these that works, in a fixed order, fastest first as
measured on this project's 2-core Xeon (MiniLM on 500 RT texts, ``docs/benchmarks/backends.md``:
openvino int8 95, onnx int8 57, openvino fp32 41, onnx fp32 27 texts/s, plain torch fp32 18):

==================  ==========================================================================================
``openvino int8-``  int8 weights and activations (:mod:`.calibration`), only for models whose accuracy
``static``          under it was measured, paired against fp32, within :data:`INT8_MAX_COST` points
                    (:data:`STATIC_CLEARED`); other models skip it
``openvino int8``   int8 weights only, for models whose int8 accuracy was measured, paired against fp32,
                    within :data:`INT8_MAX_COST` points (:data:`INT8_CLEARED`); other models skip int8
``onnx int8``       only when ``--quantize int8`` asks for int8 (its cost on MiniLM was 0.45 points)
``openvino fp32``   the export at f32: the same vectors as torch fp32 (cosine 1.0000)
``onnx fp32``       the same with onnxruntime, when openvino is not installed
``torch``           when no export is installed or passes the guard
==================  ==========================================================================================

A candidate is taken when its runtime is installed, its export can be made (once, cached under
``CACHE/exports/``), its probe on a sample of the command's texts keeps the median cosine to torch
fp32 at or above ``--min-cosine`` (:func:`pipeline.encoders.probe.guard`). Nothing is timed: the
choice depends on the installed runtimes, the model and the probe's cosines only, so a busy machine
makes the same choice (and the same fingerprint, and the same cache) as a quiet one. Each part of a combined
spec (``A+B``, ``E|O``) is chosen as it would be alone, so its vectors are shared with that part's own cache. The probe's
speeds are recorded for people, never used. Probes are kept in the export's ``meta.json`` by sample,
so a second run on the same texts imports no torch. Bundles record the backend that ran (``predict``
reuses the export).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.disk import DiskFullError
from pipeline.encoders.probe import MIN_MEDIAN_COSINE, ProbeError, guard
from pipeline.encoders.spec import EncoderSpec, parse_spec, split_spec

# (backend, quantize), a fixed order, fastest first as measured side by side on this project's 2-core Xeon
# (docs/benchmarks/backends.md, MiniLM on 500 RT texts: openvino int8 95, onnx int8 57, openvino fp32 41,
# onnx fp32 27 texts/s; plain SentenceTransformer fp32 18); never re-timed at run time
ORDER = (("openvino", "int8-static"), ("openvino", "int8"), ("onnx", "int8"), ("openvino", "none"), ("onnx", "none"))
INT8_MAX_COST = 0.3  # accuracy points, paired against fp32, that an int8 export may cost to be picked unasked
# (model, backend) whose int8 export was measured within INT8_MAX_COST of fp32, paired over 5 seeds:
# MiniLM openvino int8 -0.13 points at 1,000 RT labels (docs/benchmarks/backends.md); mpnet openvino int8
# +0.07 to +0.40 at 128 and 1,000 labels on RT and three shifted targets, no seed below -0.10
# (docs/benchmarks/speed.md); the multilingual port's openvino int8 -0.1 to +0.2 at 128 and 1,000 labels on RT,
# Chinese and Spanish validation data (docs/benchmarks/multilingual.md); onnx int8 cost MiniLM 0.45, so auto
# never picks it unasked
INT8_CLEARED = frozenset({("minilm", "openvino"), ("mpnet", "openvino"), ("e5-small-multilingual", "openvino")})
# models whose static int8 export (int8 weights and activations, calibrated) was measured within INT8_MAX_COST:
# mpnet -0.00 to +0.09 points on RT validation and +0.33 to +1.60 on three shifted targets' validation halves, at
# 128 and 1,000 labels, paired over 5 seeds against the fp32 export (docs/benchmarks/speed.md); for mpnet[layers=9-12]
# (the default encoder, its own export) -0.3 to +0.2 points against its torch fp32 vectors on RT validation at 16 to
# 1,000 labels, paired over 5 seeds (docs/benchmarks/indomain.md); those were exports of the calibration recipe rt-a95; the
# default recipe rt-a75 against it, paired over 5 seeds at 16 to 1,000 labels: -0.2 to +0.2 points on RT validation, -0.1
# to +0.6 on the three shifted targets' validation halves (docs/benchmarks/speed.md)
STATIC_CLEARED = frozenset({("mpnet", "openvino")})
_KEYS = re.compile(r"\[([^\[\]]*)\]\s*$")


def names_backend(spec: str | EncoderSpec) -> bool:
    """Whether the text of ``spec`` sets ``backend`` or ``quantize`` in any part (``mpnet[backend=torch]``).

    Read from the text because parsing drops the values that change nothing (``backend=torch``).
    """
    for piece in split_spec(str(spec)):
        match = _KEYS.search(piece)
        keys = {item.partition("=")[0].strip() for item in (match[1].split(",") if match else [])}
        if keys & {"backend", "quantize"}:
            return True
    return False


def wants_auto(spec: str | EncoderSpec, backend: str | None, quantize: str | None) -> bool:
    """Whether ``spec`` runs under ``auto``: a transformer, no ``--backend`` other than auto, and no
    backend or quantize in the spec itself. ``--quantize`` alone keeps auto, among that precision."""
    if backend not in (None, "auto") or names_backend(spec):
        return False
    parsed = parse_spec(spec)
    return any(p.has_exports for p in (parsed.parts or (parsed,)))


def chooses_backend(spec: str | EncoderSpec, backend: str | None, quantize: str | None) -> bool:
    """Whether a command builds ``spec`` through :func:`command_encoder` (chosen and guarded on its texts): under
    ``auto`` (:func:`wants_auto`), or with a ``--backend`` other than torch."""
    return wants_auto(spec, backend, quantize) or backend not in (None, "torch")


def candidates(spec: str | EncoderSpec, quantize: str | None = None) -> list[tuple[str, str]]:
    """The (backend, quantize) pairs auto tries for ``spec``, in order (torch, the fallback, not listed).

    ``quantize`` (``--quantize``) keeps that precision only; unasked, int8 is tried only where cleared.
    """
    parsed = parse_spec(spec)
    kinds = {p.kind for p in (parsed.parts or (parsed,)) if p.has_exports}
    if not kinds:
        return []
    out = []
    for backend, q in ORDER:
        if quantize is not None and q != quantize:
            continue
        if quantize is None and q == "int8" and not all((kind, backend) in INT8_CLEARED for kind in kinds):
            continue
        if quantize is None and q == "int8-static" and not all((kind, backend) in STATIC_CLEARED for kind in kinds):
            continue
        out.append((backend, q))
    return out


def on_gpu(device: str) -> bool:
    """Whether torch would run on a GPU (exports run on the CPU). Cheap where no NVIDIA driver is loaded."""
    if device in ("cuda", "mps"):
        return True
    gpus = Path("/proc/driver/nvidia/gpus")
    if device != "auto" or not (gpus.is_dir() and any(gpus.iterdir())):
        return False
    import torch

    return bool(torch.cuda.is_available())


def auto_encoder(spec: str | EncoderSpec, texts: Sequence[str], options: dict[str, Any], *,
                 quantize: str | None = None, min_median: float = MIN_MEDIAN_COSINE) -> tuple[Any, list[str]]:
    """``(encoder, lines)``: ``spec`` under the first candidate (:func:`candidates`) that works and passes the
    guard on ``texts``, else torch. ``options`` are the other :func:`~pipeline.encoders.get_encoder`
    keywords; ``lines`` say what was tried and what runs, for people."""
    from pipeline.encoders import get_encoder

    if parse_spec(spec).parts:  # A+B or E|O: each part chosen alone
        return _per_part(spec, texts, options, quantize=quantize, min_median=min_median)
    tried = candidates(spec, quantize)
    if not tried:  # word vectors: nothing to choose
        return get_encoder(spec, **options), []
    if on_gpu(options.get("device", "auto")):
        return get_encoder(spec, **{**options, "backend": "torch"}), [f"{spec}: backend auto runs torch on the GPU"]
    lines: list[str] = []
    memo: dict[str, Any] = {}  # the torch vectors of the probe's sample, computed once for every candidate
    for backend, q in tried:
        name = f"{backend} {'fp32' if q == 'none' else q}"
        try:
            encoder = get_encoder(spec, **{**options, "backend": backend, "quantize": q})
            result = guard(encoder, list(texts), min_median, memo=memo)
        except ProbeError as e:
            lines.append(f"  {name}: refused ({str(e).split(': ', 1)[-1].split(';')[0]})")
            continue
        except DiskFullError:  # every export would fail as this one did, and torch's vectors have no room either
            raise
        except Exception as e:  # noqa: BLE001 - a missing runtime or a model that will not export: try the next
            lines.append(f"  {name}: skipped ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            continue
        encoder.spec = str(parse_spec(spec))  # aliases resolved, no backend: bundles record it in their options
        own = getattr(encoder, "reference_name", None)  # a ported model's probe compares with its own engine
        reference, fallback = (own, own) if own else ("torch fp32", "the torch")
        probe = "" if result is None else (
            f": median cosine {result.median:.4f} (min {result.min:.4f}) to {reference} on {result.texts} of your "
            f"texts, {faster(name, reference, result.texts_per_s / result.reference_texts_per_s)} there")
        lines.append(f"{spec}: backend auto runs {name}{probe}; --backend torch gives {fallback} vectors")
        return encoder, lines
    if quantize == "int8":
        raise ProbeError(f"{spec}: no int8 export passed (--quantize int8):\n" + "\n".join(lines))
    encoder = get_encoder(spec, **{**options, "backend": "torch"})
    lines.append(f"{spec}: backend auto runs torch (no export passed)")
    return encoder, lines


def faster(name: str, reference: str, ratio: float) -> str:
    """Which of the runtime picked (``name``) and its ``reference`` ran faster on the probe, ``ratio`` being the
    picked one's speed over the reference's, in words: '1.4x faster than torch fp32' or, where the picked one
    was slower, 'torch fp32 ran 1.3x faster (auto's order is fixed, not timed)'."""
    if ratio >= 1.05:
        return f"{ratio:.1f}x faster than {reference}"
    if ratio > 1 / 1.05:
        return f"as fast as {reference}"
    return (f"{reference} ran {1 / ratio:.1f}x faster than {name} (auto picks by a fixed order measured on 500 texts, "
            "not by this timing)")


def _per_part(spec: str | EncoderSpec, texts: Sequence[str], options: dict[str, Any], *, quantize: str | None,
              min_median: float) -> tuple[Any, list[str]]:
    """A combined spec (``A+B``, ``E|O``) whose every part runs what :func:`auto_encoder` gives it alone, so a
    part's vectors, fingerprint and cache are those of the part alone (the default's, in ``mpnet[layers=9-12]+B``).
    A routed part that only the English side reads, on ``texts`` with too few English ones
    (:func:`~pipeline.encoders.routed.unread_parts`: mpnet, for a Korean file) takes its first candidate unprobed:
    it encodes few or none of them, and a probe on them would say nothing about the texts it does read (a command
    whose texts reach it probes it)."""
    from pipeline.encoders import get_encoder
    from pipeline.encoders.routed import unread_parts

    chosen: list[dict[str, str]] = []
    lines: list[str] = []
    parsed = parse_spec(spec)
    unread = unread_parts(parsed, texts)
    for i, part in enumerate(parsed.parts):
        first = candidates(part, quantize)[:1] if i in unread and not on_gpu(options.get("device", "auto")) else []
        if first:
            backend, q = first[0]
            chosen.append({"backend": backend, "quantize": q})
            lines.append(f"{part}: backend auto takes {backend} {'fp32' if q == 'none' else q} unprobed: too few of "
                         "these texts read as English to probe it on")
        elif part.has_exports:
            encoder, said = auto_encoder(part, texts, options, quantize=quantize, min_median=min_median)
            chosen.append({"backend": getattr(encoder, "backend", "torch"), "quantize": getattr(encoder, "quantize", "none")})
            lines += said
        else:
            chosen.append({})
    encoder = get_encoder(spec, **options, parts=chosen)
    encoder.spec = str(parse_spec(spec))
    return encoder, lines


def command_encoder(raw: str, spec: str | EncoderSpec, texts: Sequence[str], options: dict[str, Any], *,
                    backend: str | None, quantize: str | None,
                    min_median: float = MIN_MEDIAN_COSINE) -> tuple[Any, list[str]]:
    """``(encoder, lines)`` a command runs for the encoder the user typed as ``raw`` (parsed, flags filled, as
    ``spec``): :func:`auto_encoder` when :func:`wants_auto`, else ``--backend``/``--quantize`` as given, an
    exported backend guarded on ``texts`` (:func:`pipeline.encoders.probe.guarded_encoder`)."""
    from pipeline.encoders.probe import guarded_encoder

    if wants_auto(raw, backend, quantize):
        return auto_encoder(spec, texts, options, quantize=quantize, min_median=min_median)
    given = {k: v for k, v in (("backend", backend), ("quantize", quantize)) if v is not None}
    return guarded_encoder(spec, list(texts), {**options, **given}, min_median)
