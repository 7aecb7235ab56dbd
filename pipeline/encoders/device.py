"""Device and precision choice for transformer encoders, in one place.

``auto`` device: CUDA, else Apple MPS, else CPU. ``auto`` precision: fp16 on CUDA; on CPU, bf16
autocast when the CPU has AMX (fast bf16 matrix units) and a probe batch keeps cosine
>= :data:`PROBE_MIN_COSINE` to fp32, else fp32 (without AMX, bf16 autocast is slower than fp32);
fp32 elsewhere. The rule depends only on the machine and the model, so the resolved precision, which
enters the fingerprint, is the same on every run. torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
PROBE_MIN_COSINE = 0.999
PROBE_TEXTS = (
    "A three-hour cinema master class.",
    "The plot is thin, the jokes are stale and the ending drags on forever.",
    "I laughed, I cried, and I would gladly watch it again tomorrow.",
    "Not bad.",
    "An ambitious, sprawling mess that never quite finds its footing, though the lead performance is "
    "remarkable and the cinematography often breathtaking.",
    "Worst sequel of the decade?",
    "The cast does what it can with a script that seems to have been written over a long weekend.",
    "Quietly devastating.",
)


def resolve_device(device: str) -> str:
    """Turn ``auto|cpu|cuda|mps`` (or ``cuda:N``) into a device torch can use, or raise ValueError."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    kind = device.split(":", 1)[0]
    if kind not in DEVICES:
        raise OptionError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise OptionError("device 'cuda' asked for but torch sees no CUDA GPU; use --device cpu or auto.")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionError("device 'mps' asked for but torch sees no Apple GPU; use --device cpu or auto.")
    return device


def resolve_precision(device: str, precision: str, probe: Callable[[str], np.ndarray] | None = None) -> str:
    """Turn ``auto|fp32|fp16|bf16`` into a concrete precision for ``device``.

    ``probe(precision)`` encodes :data:`PROBE_TEXTS` at that precision; it is called only for ``auto``
    on a CPU with fast bf16, where bf16 is kept if every probe vector has cosine >= :data:`PROBE_MIN_COSINE`
    to fp32.
    """
    if precision not in PRECISIONS:
        raise OptionError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        return "fp16"
    if kind != "cpu" or probe is None or not cpu_has_fast_bf16():
        return "fp32"
    return "bf16" if min_cosine(probe("fp32"), probe("bf16")) >= PROBE_MIN_COSINE else "fp32"


FAST_BF16_FLAGS = frozenset({"amx_bf16"})


def cpu_has_fast_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether bf16 autocast runs faster than fp32 on this CPU: where it has AMX.

    Where ``cpuinfo`` exists (Linux) its flags decide. oneDNN also reports bf16 "supported" on plain
    AVX-512 CPUs, where it emulates bf16 several times slower than fp32 (mpnet: 2 vs 12 texts/s), and
    with AVX512-BF16 alone autocast still ran 1.3-1.9x slower than fp32 (MiniLM and mpnet, 1 and 2
    threads; docs/benchmarks/backends.md). Elsewhere torch's own check is used.
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = None
    if text is not None:
        flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
        return bool(flags & FAST_BF16_FLAGS)
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine similarity between two equally shaped matrices."""
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.min(num / np.maximum(den, 1e-12)))


def autocast(device: str, precision: str) -> Any:
    """A context manager running the forward pass at ``precision`` (fp32: no autocast)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return torch.autocast(device_type=device.split(":", 1)[0], dtype=dtype)


def default_batch_size(device: str) -> int:
    """Texts per forward pass. Length-sorted batches pad little, so large batches pay off even on CPU,
    where per-batch overhead dominates a small model (MiniLM: 128 beat 32 and 64 by 1.3-1.7x here)."""
    return 256 if device.startswith("cuda") else 128
