"""The accuracy guard of exported/quantized encoders, and ``backend=auto``.

:func:`guard` encodes a seeded sample of the user's own texts with the exported encoder and with the
same model in torch fp32, and compares them text by text (cosine). The result (min, median, sample
size, speeds) is printed by the commands and stored in the export's ``meta.json``; an export whose
median cosine falls below ``min_median`` is refused with :class:`ProbeError`. A probe of the same
sample is reused from the metadata, so repeat runs need no torch. The sample is at most
:data:`PROBE_SIZE` texts and :data:`PROBE_WORDS` words (at least :data:`PROBE_MIN_TEXTS` texts), so the torch
side costs a few seconds on long reviews as on short ones; candidates probed in one call share the torch
vectors (``memo``).

:func:`pick_backend` probes every candidate (torch at its auto precision, onnx and openvino, fp32 and
int8) on the same sample and picks the fastest whose median cosine passes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline import OptionError, ReviewTransferError
from pipeline.data.words import words_of

log = logging.getLogger(__name__)

MIN_MEDIAN_COSINE = 0.99
PROBE_SIZE = 256
# the sample's words: about 106 RT snippets, 20 reviews of 100 words, 16 (PROBE_MIN_TEXTS) of 250. On 80 English
# texts of 110 words, random samples of 20 gave the verdict of all 80 every time (200 draws), for the default's
# static int8 export (median 0.9956) and for its rt-a95 recipe, which must be refused there (median 0.9890), at
# a quarter of torch's seconds of an 8,000-word sample (docs/benchmarks/speed.md, "How much the probe reads")
PROBE_WORDS = 2_000
PROBE_MIN_TEXTS = 16
CANDIDATES = (("onnx", "int8"), ("openvino", "int8"), ("onnx", "none"), ("openvino", "none"), ("torch", "none"))


class ProbeError(ReviewTransferError, ValueError):
    """An exported encoder's vectors are too far from fp32 on the user's texts."""


@dataclass(frozen=True)
class Probe:
    """Per-text cosine of an encoder to torch fp32 on a sample of texts, and both speeds on it."""

    texts: int
    sample: str  # sha256 (16 hex) of the sampled texts, so a probe of the same sample is reused
    min: float
    median: float
    texts_per_s: float
    reference_texts_per_s: float

    def line(self, name: str = "") -> str:
        """One line for people."""
        return (f"probe vs torch fp32 on {self.texts} of your texts{' (' + name + ')' if name else ''}: "
                f"cosine min {self.min:.4f}, median {self.median:.4f}; {self.texts_per_s:,.0f} vs "
                f"{self.reference_texts_per_s:,.0f} texts/s")


def sample_texts(texts: list[str], n: int = PROBE_SIZE, seed: int = 0, words: int = PROBE_WORDS) -> list[str]:
    """Up to ``n`` distinct non-empty texts of ``texts`` and about ``words`` words (:func:`words_of`; at least
    :data:`PROBE_MIN_TEXTS` texts, where there are so many), drawn with a fixed seed, in a stable order."""
    unique = sorted({t for t in texts if t.strip()})
    order = (np.arange(len(unique)) if len(unique) <= n
             else np.random.default_rng(seed).choice(len(unique), size=n, replace=False))
    total = np.cumsum([words_of(unique[i]) for i in order])
    keep = max(int(np.searchsorted(total, words, side="right")), min(PROBE_MIN_TEXTS, len(order)))
    return [unique[i] for i in sorted(order[:keep])]


def reference_encoder(encoder: Any) -> Any:
    """The same model as the exported ``encoder``, in torch fp32 on the CPU, with the same windows (or the
    reference the encoder names itself, e.g. the C engine a ported model came from)."""
    if hasattr(encoder, "reference"):
        return encoder.reference()
    from pipeline.encoders.transformer import HFEncoder, SentenceTransformerEncoder

    if encoder.hf:
        return HFEncoder(encoder.spec, encoder.model_dir, encoder.identity, device="cpu", precision="fp32",
                         max_length=encoder.max_length, pooling=encoder.pooling, long_text=encoder.long_text)
    layers = getattr(encoder, "layers", None)  # the same layer mean, by torch
    return SentenceTransformerEncoder(encoder.spec, encoder.model_dir, encoder.identity, device="cpu",
                                      precision="fp32", max_length=encoder.max_length, long_text=encoder.long_text,
                                      layers=f"{layers[0]}-{layers[1]}" if layers else None)


def probe(encoder: Any, texts: list[str], reference: Any | None = None,
          memo: dict[str, tuple[np.ndarray, float]] | None = None) -> Probe:
    """Cosine of ``encoder``'s vectors to torch fp32 on ``texts`` (a sample; see :func:`sample_texts`).

    ``memo`` (sample digest -> reference vectors and seconds) keeps the reference's vectors for the next
    candidate of the same model."""
    digest = text_digest(texts)
    if memo is not None and digest in memo:
        want, t_ref = memo[digest]
    else:
        reference = reference or reference_encoder(encoder)
        start = time.perf_counter()
        want = reference.encode(texts)
        t_ref = time.perf_counter() - start
        if memo is not None:
            memo[digest] = (want, t_ref)
    encoder.encode(texts[:8])  # warm-up: session load, first-call allocations
    start = time.perf_counter()
    got = encoder.encode(texts)
    t_enc = time.perf_counter() - start
    cos = cosines(got, want)
    return Probe(texts=len(texts), sample=digest, min=float(cos.min()), median=float(np.median(cos)),
                 texts_per_s=len(texts) / max(t_enc, 1e-9), reference_texts_per_s=len(texts) / max(t_ref, 1e-9))


def guard(encoder: Any, texts: list[str], min_median: float = MIN_MEDIAN_COSINE, *, n: int = PROBE_SIZE,
          memo: dict[str, tuple[np.ndarray, float]] | None = None) -> Probe | None:
    """Probe an exported ``encoder`` on a sample of ``texts``; ProbeError if its median cosine < ``min_median``.

    Returns ``None`` for encoders that are not exported (torch, word vectors): nothing to guard.
    A probe of the same sample on record in the export's metadata is reused; ``memo`` (see :func:`probe`)
    shares the reference's vectors between candidates of one model.
    """
    parts = getattr(encoder, "parts", None)
    if parts is not None:  # A+B: guard each exported part
        results = [guard(part, texts, min_median, n=n) for part in parts]
        return next((r for r in results if r is not None), None)
    if not hasattr(encoder, "record_probe"):
        return None
    sample = sample_texts(texts, n)
    if not sample:
        return None
    digest = text_digest(sample)
    known = encoder.probe_of(digest)
    if known:
        result = Probe(**{k: known[k] for k in Probe.__dataclass_fields__})
    else:
        log.warning("%s: checking %s %s against %s on %d of your texts", encoder.spec, encoder.backend,
                    encoder.quantize, getattr(encoder, "reference_name", "torch fp32"), len(sample))
        result = probe(encoder, sample, memo=memo)
        encoder.record_probe({**result.__dict__, "reference": getattr(encoder, "reference_name", "torch fp32")})
    if result.median < min_median:
        raise ProbeError(
            f"{encoder.spec} with backend {encoder.backend}, quantize {encoder.quantize}: median cosine "
            f"{result.median:.4f} (min {result.min:.4f}) to {getattr(encoder, 'reference_name', 'torch fp32')} on "
            f"{result.texts} of your texts is below "
            f"{min_median}; its vectors would cost accuracy. Use quantize=none, backend=torch, or lower "
            "--min-cosine if you accept it."
        )
    return result


def guarded_encoder(spec: str, texts: list[str], options: dict[str, Any],
                    min_median: float = MIN_MEDIAN_COSINE) -> tuple[Any, list[str]]:
    """The encoder of ``spec`` with ``options`` (``backend='auto'`` resolved on ``texts``), guarded on ``texts``.

    Returns it with the lines to print: what ``auto`` measured and picked, and the probe's cosines.
    """
    from pipeline.encoders import get_encoder
    from pipeline.encoders.registry import is_transformer

    lines: list[str] = []
    if options.get("backend") == "auto" and not is_transformer(spec):
        options = {**options, "backend": "torch", "quantize": "none"}  # word vectors: nothing to choose
    if options.get("backend") == "auto":
        backend, quantize, lines = pick_backend(spec, texts, options, min_median)
        options = {**options, "backend": backend, "quantize": quantize}
    encoder = get_encoder(spec, **options)
    result = guard(encoder, texts, min_median)
    if result is not None:
        lines.append(result.line())
    return encoder, lines


def pick_backend(spec: str, texts: list[str], options: dict[str, Any], min_median: float = MIN_MEDIAN_COSINE,
                 *, n: int = PROBE_SIZE) -> tuple[str, str, list[str]]:
    """``(backend, quantize, lines)``: the fastest candidate whose probe on ``texts`` keeps median >= ``min_median``.

    ``options`` are the other :func:`~pipeline.encoders.get_encoder` keywords. ``lines`` say what each
    candidate measured and what was picked. A candidate whose runtime is not installed is skipped.
    """
    from pipeline.encoders import get_encoder

    sample = sample_texts(texts, n)
    if not sample:
        raise OptionError(f"{spec}: backend auto needs texts to probe; none were given.")
    reference = get_encoder(spec, **{**options, "backend": "torch", "precision": "fp32", "device": "cpu"})
    measured: list[tuple[str, str, str, Probe]] = []
    lines: list[str] = []
    for backend, quantize in CANDIDATES:
        name = f"{backend}/{quantize}"
        try:
            enc = get_encoder(spec, **{**options, "backend": backend, "quantize": quantize})
        except ImportError as e:
            lines.append(f"  {name}: skipped ({e})")
            continue
        result = probe(enc, sample, reference)
        if backend == "torch":
            name += f" ({enc.precision})"  # its auto precision: bf16 where the CPU has fast bf16, else fp32
        elif hasattr(enc, "record_probe"):
            enc.record_probe({**result.__dict__, "reference": "torch fp32"})
        measured.append((backend, quantize, name, result))
    backend, quantize, more = choose(spec, measured, min_median)
    return backend, quantize, lines + more


def choose(spec: str, measured: list[tuple[str, str, str, Probe]],
           min_median: float = MIN_MEDIAN_COSINE) -> tuple[str, str, list[str]]:
    """``(backend, quantize, lines)`` of ``auto``'s choice among ``measured`` (backend, quantize, name, probe):
    the fastest whose median cosine to torch fp32 is >= ``min_median``; the first measured wins a tie.
    :class:`ProbeError` when none passes. ``lines`` give each one's figures and the choice."""
    lines = [f"  {name}: {p.texts_per_s:,.0f} texts/s, cosine min {p.min:.4f}, median {p.median:.4f}"
             + ("" if p.median >= min_median else f"  (refused: median < {min_median})") for _, _, name, p in measured]
    passing = [m for m in measured if m[3].median >= min_median]
    if not passing:
        raise ProbeError(f"{spec}: no backend kept median cosine >= {min_median} on your texts.\n" + "\n".join(lines))
    backend, quantize, name, best = max(passing, key=lambda m: m[3].texts_per_s)
    lines.append(f"backend auto picked {name}: the fastest ({best.texts_per_s:,.0f} texts/s on {best.texts} of your "
                 f"texts) whose median cosine to torch fp32 is >= {min_median}")
    return backend, quantize, lines


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two equally shaped matrices."""
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-12)


def text_digest(texts: list[str]) -> str:
    """16 hex characters of sha256 over the texts, NUL-separated."""
    return hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()[:16]
