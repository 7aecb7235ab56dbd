"""Transformer encoders run by ONNX Runtime or OpenVINO from a one-time export (``backend=onnx|openvino``).

=========================  =================================================================================
``backend`` / ``quantize``  what runs
=========================  =================================================================================
``onnx`` / ``none``         ``torch.onnx.export`` of the model, graph-optimised offline by onnxruntime's
                            transformer optimizer (fused attention, layer norm, GELU), fp32
``onnx`` / ``int8``         the same, then onnxruntime dynamic int8 quantization (QInt8 weights, per channel)
``openvino`` / ``none``     the ONNX export converted to OpenVINO IR, run at f32 inference precision
``openvino`` / ``int8``     that IR with int8 weights (NNCF weight compression: data-free, deterministic);
                            activations stay f32, so the matrix products run in f32
``openvino`` /              that IR with int8 weights and int8 activations (NNCF static post-training
``int8-static``             quantization with SmoothQuant, scales calibrated once on RT pool texts by
                            the recipe ``calibration``, see :mod:`.calibration`): the matrix products run
                            on the CPU's int8 units
=========================  =================================================================================

The export is made once per (model, backend, quantize, runtime version) under
``<cache>/exports/<key>/`` (written to a temporary sibling and renamed into place, so a killed export
leaves nothing half-made) with ``meta.json``: what was exported, the exporting library versions and
the accuracy probes against fp32 (:mod:`.probe`). A fine-tuned bundle may carry its export in
``encoder/exports/<backend>-<quantize>/`` (``finetune --export onnx``): it is used as is. A spec with
``layers=A-B`` (:class:`LayerMeanExport`) has exports of its own (``layers`` in the key and the fingerprint),
whose graph returns the mean of hidden layers A..B's states instead of the last layer's.

Running an export needs only numpy, ``tokenizers`` and the runtime: no torch, transformers or
sentence-transformers. Tokenizing, long-text windows, length-sorted batches, pooling and
normalisation follow :class:`~pipeline.encoders.transformer.TransformerEncoder`, so the vectors differ
from the torch path only by the runtime's arithmetic (and int8 rounding), which the probe measures.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import logging
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import MissingExtraError, OptionError, ReviewTransferError
from pipeline.disk import explain_full_disk
from pipeline.encoders.background import Background
from pipeline.encoders.base import Encoder, layer_span
from pipeline.encoders.calibration import LEGACY_RECIPE, default_recipe
from pipeline.encoders.calibration import recipe as calibration_recipe
from pipeline.encoders.inputs import model_inputs
from pipeline.encoders.quiet import quiet_export
from pipeline.encoders.long_text import (Batching, LengthStats, Windowing, encode_windows, length_stats,
                                         resolve_strategy)

BACKENDS = ("torch", "onnx", "openvino")
QUANTIZE = ("none", "int8", "int8-static")
RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino"}
EXTRAS = {"onnx": "onnx", "openvino": "openvino"}
EXPORT_VERSION = 1  # bump when a change here changes what an export holds
OPSET = 17
EXPORTS_DIR = "exports"
META = "meta.json"
TOKENIZER = "tokenizer.json"
COMPILED_CACHE = ".compiled"  # openvino: the runtime's cache of compiled models, kept beside the IR
OVC = "openvino.tools.ovc"  # openvino's model converter: exports import it, running an export does not
DEFAULT_BATCH_SIZE = 64  # length-sorted; onnxruntime on 2 cores was no faster with 128
# openvino: a call of more than BULK_BATCHES batches (embed, fit, compare) runs on STREAMS streams, two batches
# at once, under the THROUGHPUT hint; smaller calls (predict, serve's micro-batches) on one LATENCY request,
# which spreads one batch over every core. The hidden states are the same bit for bit either way.
BULK_BATCHES = 4
STREAMS = 2
log = logging.getLogger(__name__)


def check_backend(backend: str, quantize: str) -> None:
    """ValueError unless ``backend``/``quantize`` name a known combination."""
    if backend not in BACKENDS:
        raise OptionError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)} (or auto).")
    if quantize not in QUANTIZE:
        raise OptionError(f"unknown quantize {quantize!r}; use one of {', '.join(QUANTIZE)}.")
    if quantize == "int8-static" and backend != "openvino":
        raise OptionError("quantize=int8-static (int8 activations, calibrated) runs on backend openvino only; "
                          "e.g. --backend openvino --quantize int8-static, or --quantize int8 for int8 weights.")
    if backend == "torch" and quantize != "none":
        raise OptionError("quantize=int8 needs backend onnx or openvino (torch's own dynamic int8 keeps cosine "
                         "only ~0.92 to fp32 on MiniLM); e.g. --backend onnx --quantize int8.")


def runtime_version(backend: str) -> str:
    """``onnxruntime==1.32.0``-style version of the runtime ``backend`` needs, or ImportError naming the extra."""
    name = RUNTIMES[backend]
    try:
        return f"{name}=={version(name)}"
    except PackageNotFoundError:
        raise MissingExtraError(f"backend={backend} needs {name}: pip install 'review-transfer[{EXTRAS[backend]}]'") from None


class ExportedEncoder(Encoder):
    """A sentence-transformers (or ``hf:`` mean/cls-pooled) model run from its ONNX/OpenVINO export.

    Construction finds or makes the export and reads its ``meta.json``; the runtime session and the
    tokenizer load on the first :meth:`encode`. ``probe_of`` finds an accuracy probe on record.
    """

    max_batch_tokens: int | None = None  # padded word pieces a batch stops at (None: batch_size alone)
    layers: tuple[int, int] | None = None  # hidden layers whose mean the graph returns (None: the last layer)
    bulk_streams: int = STREAMS  # openvino streams of a call of more than BULK_BATCHES batches (1: one request)

    def __init__(self, spec: str, model_dir: Path, identity: str, *, backend: str, quantize: str = "none",
                 work_dir: Path, batch_size: int | None = None, **options: Any) -> None:
        """``options``: the spec's ``max_length`` (int), ``pooling`` (``hf:`` models), ``long_text`` (default auto)
        and ``calibration`` (static int8's recipe, :mod:`.calibration`)."""
        unknown = set(options) - {"max_length", "pooling", "long_text", "calibration"}
        if unknown:
            raise TypeError(f"ExportedEncoder got unexpected options {sorted(unknown)}")
        max_length, pooling = options.get("max_length"), options.get("pooling")
        long_text, calibration = options.get("long_text") or "auto", options.get("calibration")
        super().__init__(spec)
        check_backend(backend, quantize)
        if backend == "torch":
            raise ValueError("ExportedEncoder runs backend onnx or openvino; torch is TransformerEncoder.")
        if batch_size is not None and batch_size < 1:
            raise OptionError(f"{spec}: batch size must be at least 1, got {batch_size}.")
        self.model_dir, self.identity, self.backend, self.quantize = Path(model_dir), identity, backend, quantize
        self.runtime = runtime_version(backend)
        hf = spec.startswith("hf:")  # a plain transformers model, mean/cls-pooled by this package
        self.library = "transformers" if hf else "sentence-transformers"  # who decides pooling (bundle options)
        self.hf = hf
        # static int8's calibration recipe (None for other exports): recorded by bundles, in the key and fingerprint
        self.calibration = (calibration or default_recipe(self.layers)) if quantize == "int8-static" else None
        self.long_text = long_text
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.export_dir = find_or_export(self, work_dir)
        self.meta = read_meta(self.export_dir)
        self.dim = int(self.meta["dim"])
        self.normalize = bool(self.meta["normalize"])
        self.pooling = _check_pooling(spec, pooling, self.meta["pooling"], hf)
        limit = int(self.meta["max_length"])
        if max_length is not None and max_length > limit:
            raise OptionError(f"{spec}: max length {max_length} exceeds the model's limit of {limit} tokens.")
        self.max_length = int(max_length or limit)
        specials = self.meta["specials"]
        self._specials = (list(specials[0]), list(specials[1]))
        self.windowing = Windowing(resolve_strategy(long_text),
                                   self.max_length - len(self._specials[0]) - len(self._specials[1]))
        self._session: Any = None
        self._loading: Background[Any] | None = None  # the one-request session, loading in a thread (preload)
        self._bulk_session: Any = None
        self._tokenizer: Any = None

    # ------------------------------------------------------------------------------------ contract
    def fingerprint_params(self) -> dict[str, Any]:
        return {
            "model": self.identity,
            "backend": self.backend,
            "quantize": self.quantize,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "runtime": self.runtime,
            "export": self.meta["versions"],
            "long_text": self.windowing.params(),
            **({"layers": list(self.layers)} if self.layers else {}),  # unset: the fingerprint stores already hold
            **({"calibration": self.calibration} if self.calibration not in (None, LEGACY_RECIPE) else {}),
        }

    def describe(self) -> str:
        return (f"{self.spec} ({self.dim}-d, {self.backend} {self.quantize}, {self.runtime}, max length "
                f"{self.max_length}, long texts {self.long_text}, batch {self.batch_size})")

    def probe_of(self, sample: str) -> dict[str, Any] | None:
        """The newest probe on record in the export's metadata on the sample of digest ``sample``, if any."""
        probes = read_meta(self.export_dir).get("probes") or []
        return next((p for p in reversed(probes) if p.get("sample") == sample), None)

    def record_probe(self, probe: dict[str, Any]) -> None:
        """Append ``probe`` to the cached export's ``meta.json``; a bundle's own export is never changed."""
        if self.export_dir.parent == self.model_dir / EXPORTS_DIR:
            return
        add_probe(self.export_dir, probe)
        self.meta = read_meta(self.export_dir)

    # ------------------------------------------------------------------------------------ encoding
    def _encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.preload(len(texts))  # the session compiles while the tokenizer loads and reads the texts
        ids = self._content_ids(texts)
        self.last_stats = {"truncated": sum(len(x) > self.windowing.window for x in ids)}
        streams = self._streams(len(ids))
        run = self._runner(streams)

        def forward(batch: list[list[int]]) -> np.ndarray:
            input_ids, mask = model_inputs(batch, self._specials, int(self.meta["pad_id"]))
            return self._pool_batch(run(input_ids, mask), mask)

        return encode_windows(ids, self.windowing, self.dim, forward, self.normalize,
                              Batching(self.batch_size, max_tokens=self.max_batch_tokens, parallel=streams), progress)

    def length_stats(self, texts: Iterable[str]) -> LengthStats:
        """How many ``texts`` exceed the max length and what share of their word pieces is seen."""
        return length_stats(texts, self._content_ids, self.windowing)

    def _content_ids(self, texts: list[str]) -> list[list[int]]:
        tok = self._load_tokenizer()
        return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]

    def _pool_batch(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Sentence vectors of one batch: mean over real tokens (or [CLS]), then unit length if the model does."""
        hidden = hidden.astype(np.float32, copy=False)
        if self.pooling == "cls":
            vec = hidden[:, 0]
        else:
            m = mask[:, :, None].astype(np.float32)
            vec = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        if self.normalize:
            vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        return vec

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.export_dir / TOKENIZER))
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        return self._tokenizer

    def preload(self, count: int = 1) -> None:
        """Start loading the session an encode of ``count`` texts runs on one request, in a background thread
        (the runtime compiles without the GIL), so the tokenizer or another part's session loads meanwhile; the
        encode waits for it. Nothing for an encode that runs on several streams, or once the session is loaded."""
        if self._streams(count) == 1 and self._session is None and self._loading is None:
            if self.backend == "openvino":
                runtime_openvino()  # imported here: an import holds the GIL, and the thread would wait for it
            self._loading = Background(lambda: self._open(1), name=f"load {self.spec}")

    def _streams(self, count: int) -> int:
        """Streams an encode of ``count`` texts runs on: :attr:`bulk_streams` for a large openvino call, else 1."""
        return self.bulk_streams if self.backend == "openvino" and count > BULK_BATCHES * self.batch_size else 1

    def _runner(self, streams: int = 1) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``run(input_ids, attention_mask) -> last hidden state`` on one request, or thread-safe over
        ``streams`` streams, loading the session on first use (or taking the one :meth:`preload` loads)."""
        if streams > 1:
            if self._bulk_session is None:
                self._bulk_session = self._open(streams)
            return self._bulk_session
        if self._session is None:
            loading, self._loading = self._loading, None
            self._session = loading.result() if loading is not None else self._open(1)
        return self._session

    def _open(self, streams: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        own = self.export_dir.parent == self.model_dir / EXPORTS_DIR  # a bundle's: never written to
        try:
            return load_session(self.export_dir, self.backend, compiled=not own, streams=streams)
        except DamagedExportError as e:
            if own:
                raise
            self._export_anew(e)
        return load_session(self.export_dir, self.backend, compiled=True, streams=streams)  # damaged again: raises

    def _export_anew(self, damage: DamagedExportError) -> None:
        """Replace the cached export the runtime could not load (cut short, emptied, a corrupt compiled blob) by a
        new one, saying so in one line, as an export folder without ``meta.json`` is."""
        log.warning("%s: %s: removed, exporting anew", self.spec, damage.what)
        remove_export(self.export_dir)
        self.export_dir = find_or_export(self, self.export_dir.parent.parent)
        self.meta = read_meta(self.export_dir)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_session"] = state["_loading"] = state["_bulk_session"] = state["_tokenizer"] = None
        return state


class LayerMeanExport(ExportedEncoder):
    """An export whose graph returns the mean of hidden layers A..B's states (``layers="A-B"``, a mean-pooled
    sentence-transformers model), pooled and normalised as the last layer's: the vectors of
    :class:`~pipeline.encoders.transformer.SentenceTransformerEncoder` with the same ``layers``. Its own export
    directory, probe and fingerprint (``layers`` in both)."""

    def __init__(self, spec: str, model_dir: Path, identity: str, *, layers: str, **options: Any) -> None:
        self.layers = layer_span(layers)  # "A-B", checked by the spec's option table
        super().__init__(spec, model_dir, identity, **options)


# ---------------------------------------------------------------------------------------------- export
def export_key(identity: str, backend: str, quantize: str, runtime: str, hf: bool,
               layers: tuple[int, int] | None = None, calibration: str | None = None) -> str:
    """Directory name of an export: hash of model identity, backend, quantize, runtime and export code (and,
    for ``int8-static``, how its calibration recipe ``calibration`` (None: the default for ``layers``) is done;
    for ``layers``, the hidden layers averaged)."""
    recipe: dict[str, Any] = {"model": identity, "backend": backend, "quantize": quantize, "runtime": runtime,
                              "export_version": EXPORT_VERSION, "hf": hf}
    if layers:  # unset, the key of the exports already made
        recipe["layers"] = list(layers)
    if quantize == "int8-static":
        recipe["calibration"] = calibration_recipe(calibration or default_recipe(layers))
    blob = json.dumps(recipe, sort_keys=True).encode()
    return f"{backend}-{quantize}-{hashlib.sha256(blob).hexdigest()[:16]}"


def bundled_export(model_dir: Path, backend: str, quantize: str) -> Path:
    """Where a model directory (a bundle's ``encoder/``) carries its own export."""
    return model_dir / EXPORTS_DIR / f"{backend}-{quantize}"


def find_or_export(encoder: ExportedEncoder, work_dir: Path, quantize: str | None = None) -> Path:
    """The export directory for ``encoder``: one the model directory carries, a cached one, or a new one.

    An onnx int8 export is quantized from the onnx fp32 export, made first if missing.
    """
    quantize = quantize or encoder.quantize
    own = bundled_export(encoder.model_dir, encoder.backend, quantize)
    if (own / META).is_file():
        return own
    recipe = encoder.calibration if quantize == "int8-static" else None
    key = export_key(encoder.identity, encoder.backend, quantize, encoder.runtime, encoder.hf, encoder.layers, recipe)
    target = Path(work_dir) / EXPORTS_DIR / key
    if not (target / META).is_file():
        base = find_or_export(encoder, work_dir, "none") if encoder.backend == "onnx" and quantize == "int8" else None
        log.warning("%s: exporting for %s %s once, into %s", encoder.spec, encoder.backend, quantize, target)
        with explain_full_disk(target.parent, f"its {encoder.backend} {quantize} export"):
            make_export(encoder.model_dir, target, backend=encoder.backend, quantize=quantize, hf=encoder.hf,
                        identity=encoder.identity, base=base, layers=encoder.layers, calibration=recipe)
        log.warning("%s: exported in %.0f s", encoder.spec, read_meta(target)["seconds"])  # make_export's timing
    return target


def export_into(model_dir: Path, backend: str = "onnx", quantize: str = "none",
                layers: tuple[int, int] | None = None) -> Path:
    """Export a sentence-transformers directory (e.g. tuned weights going into a bundle) into itself, its graph
    returning the mean of hidden ``layers`` A..B when given (see :func:`make_export`)."""
    from pipeline.encoders.base import dir_digest

    check_backend(backend, quantize)
    identity = dir_digest(model_dir)
    return make_export(model_dir, bundled_export(model_dir, backend, quantize), backend=backend, quantize=quantize,
                       hf=False, identity=identity, layers=layers)


def add_probe(export_dir: Path, probe: dict[str, Any]) -> None:
    """Append ``probe`` to the probes in an export's ``meta.json`` (the last ten are kept)."""
    meta = read_meta(export_dir)
    meta["probes"] = [*(meta.get("probes") or [])[-9:], probe]
    write_json(export_dir / META, meta)


def make_export(model_dir: Path, target: Path, *, backend: str, quantize: str, hf: bool, identity: str,
                base: Path | None = None, layers: tuple[int, int] | None = None,
                calibration: str | None = None) -> Path:
    """Export ``model_dir`` for ``backend``/``quantize`` into ``target`` (atomic rename); return ``target``.

    ``base``: an onnx fp32 export to quantize instead of exporting from torch again. ``layers`` ``(A, B)``:
    the graph's output is the mean of hidden layers A..B's states instead of the last layer's. ``calibration``:
    the recipe of an ``int8-static`` export's calibration (:mod:`.calibration`; None: its default for ``layers``).
    """
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_exports(target)
    tmp = target.parent / f"{_tmp_prefix(target)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        with quiet_export():
            if base is not None:
                for name in ("model.onnx", TOKENIZER):
                    shutil.copyfile(base / name, tmp / name)
                meta = {k: v for k, v in read_meta(base).items() if k not in ("probes", "seconds")}
            else:
                meta = _export_onnx(Path(model_dir), tmp, hf=hf, layers=layers)
            if backend == "onnx" and base is None:
                meta["versions"]["optimizer"] = _optimize(tmp, meta)
            if backend == "onnx" and quantize == "int8":
                _quantize_onnx(tmp)  # by the optimizer's onnxruntime, already in meta["versions"]
            if backend == "openvino":
                meta["versions"]["openvino"] = _to_openvino(tmp, quantize, meta, calibration or default_recipe(layers))
        meta.update(identity=identity, backend=backend, quantize=quantize, export_version=EXPORT_VERSION,
                    seconds=round(time.perf_counter() - start, 1), probes=[])
        write_json(tmp / META, meta)
        remove_unfinished_export(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / META).is_file():  # another process may have won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _tmp_prefix(target: Path) -> str:
    """How the temporaries of ``target``'s export made on this host start: ``.KEY.tmp-HOST-`` (then PID-TOKEN)."""
    return f".{target.name}.tmp-{socket.gethostname()}-"


def remove_unfinished_export(target: Path) -> None:
    """Remove ``target`` when it is a folder without ``meta.json``: no export (each is renamed into place with its
    ``meta.json``) but what a hand or a damaged copy left, which would block every later export's rename."""
    if not target.is_dir() or (target / META).is_file():
        return
    log.warning("%s: holds no %s, so it is no finished export: removed, exporting anew", target, META)
    remove_export(target)


def remove_export(target: Path) -> None:
    """Remove an export folder at once (renamed aside, then deleted), so no process sees it half-deleted."""
    aside = target.parent / f"{_tmp_prefix(target)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with contextlib.suppress(FileNotFoundError):  # another process removed it first
        os.replace(target, aside)
    shutil.rmtree(aside, ignore_errors=True)


def remove_stale_exports(target: Path) -> None:
    """Remove the temporaries of ``target``'s export that a killed process on this host left (a kill -9 mid-export
    left a 90 MB MiniLM one, mpnet's are larger); those of live processes and of other hosts (a shared cache) stay."""
    prefix = _tmp_prefix(target)
    for tmp in target.parent.glob(glob.escape(prefix) + "*"):
        pid = tmp.name[len(prefix):].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _export_onnx(model_dir: Path, out: Path, *, hf: bool, layers: tuple[int, int] | None = None) -> dict[str, Any]:
    """``torch.onnx.export`` of the transformer into ``out/model.onnx`` (inputs ids+mask, output hidden states:
    the last layer's, or with ``layers`` ``(A, B)`` the mean of layers A..B's, pooled later as the last's).

    Returns the first metadata: pooling, normalisation, max length, special tokens, (layers,) versions.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from pipeline.encoders.transformer import _hide_loading_bars, _model_limit, _special_tokens

    _hide_loading_bars()  # transformers' 'Loading weights' bar, off a terminal too
    st = _st_config(model_dir) if not hf else None
    body = model_dir / st["path"] if st else model_dir
    tokenizer = AutoTokenizer.from_pretrained(str(body))
    if not getattr(tokenizer, "is_fast", False):
        raise OptionError(f"{model_dir}: the exported backends need a fast tokenizer (tokenizer.json); use backend=torch.")
    tokenizer.backend_tokenizer.save(str(out / TOKENIZER))
    model = AutoModel.from_pretrained(str(body), attn_implementation="eager").eval()
    if layers:
        _check_layers(model_dir, st, layers, int(model.config.num_hidden_layers))
    sample = tokenizer(["a short review", "a somewhat longer review of a film"], padding=True, return_tensors="pt")
    args = (sample["input_ids"], sample["attention_mask"])
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "last_hidden_state": {0: "batch", 1: "tokens"}}

    with torch.inference_mode():
        torch.onnx.export(export_graph(model, layers), args, str(out / "model.onnx"), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    limit = st["max_length"] if st and st["max_length"] else (_model_limit(tokenizer, model) or 512)
    prefix, suffix = _special_tokens(tokenizer)
    config = model.config
    return {
        **({"layers": list(layers)} if layers else {}),
        "dim": int(config.hidden_size), "heads": int(config.num_attention_heads),
        "pooling": st["pooling"] if st else None, "normalize": bool(st and st["normalize"]),
        "max_length": int(limit), "specials": [prefix, suffix], "pad_id": int(tokenizer.pad_token_id or 0),
        "versions": {"torch": version("torch"), "transformers": version("transformers"), "onnx": version("onnx"),
                     "opset": OPSET},
    }


def export_graph(model: Any, layers: tuple[int, int] | None = None) -> Any:
    """The torch module an export traces: ``(input_ids, attention_mask) -> hidden states`` of ``model``, the last
    layer's, or with ``layers`` ``(A, B)`` the mean of layers A..B's (layer 1 is the first transformer layer)."""
    import torch

    class Body(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            if not layers:
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
            return torch.stack(hidden[layers[0]:layers[1] + 1]).mean(dim=0)  # hidden[0]: the embeddings

    return Body(model)


def _optimize(out: Path, meta: dict[str, Any]) -> str:
    """Fuse attention, layer norm and GELU with onnxruntime's offline transformer optimizer, in place."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(str(out / "model.onnx"), model_type="bert", num_heads=meta["heads"],
                           hidden_size=meta["dim"], opt_level=1)
    model.save_model_to_file(str(out / "model.onnx"))
    return f"onnxruntime=={version('onnxruntime')}"


def _quantize_onnx(out: Path) -> None:
    """Dynamic int8 (QInt8 weights per channel, activations quantized on the fly), replacing model.onnx."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the fused ops (com.microsoft domain) defeat shape inference: their outputs are float32
    quantize_dynamic(str(out / "model.onnx"), str(out / "model.int8.onnx"), weight_type=QuantType.QInt8,
                     per_channel=True, extra_options={"DefaultTensorType": TensorProto.FLOAT})
    os.replace(out / "model.int8.onnx", out / "model.onnx")


def _to_openvino(out: Path, quantize: str, meta: dict[str, Any], calibration: str) -> str:
    """Convert ``model.onnx`` to OpenVINO IR (``model.xml``/``.bin``), int8 weights for ``int8``, int8 weights
    and activations for ``int8-static`` (calibrated by recipe ``calibration``, recorded in ``meta``); drop the ONNX."""
    import openvino as ov
    from openvino.tools.ovc import convert_model  # not in ov's namespace where runtime_openvino imported ov

    model = convert_model(str(out / "model.onnx"))
    tools = f"openvino=={version('openvino')}"
    if quantize == "int8":
        import nncf

        nncf.set_log_level(logging.ERROR)  # its per-layer bit-width table
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bar, printed whole off a terminal
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        tools += f",nncf=={version('nncf')}"
    if quantize == "int8-static":
        import nncf

        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

        from pipeline.encoders.calibration import calibration_inputs, calibration_texts, smooth_quant_alpha, versions_tag

        nncf.set_log_level(logging.ERROR)
        texts, record = calibration_texts(calibration)
        items = calibration_inputs(out / TOKENIZER, meta, texts)
        # TRANSFORMER: SmoothQuant before quantizing (without it the median cosine to fp32 fell to 0.77 on mpnet;
        # at alpha 0.5, 0.83; at 0.95, 0.992 on short texts and 0.989 on long ones; at 0.75, 0.996 and 0.996);
        # MIXED: symmetric weights, asymmetric activations
        smooth = AdvancedSmoothQuantParameters(matmul=smooth_quant_alpha(calibration))
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bars
            model = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                  preset=nncf.QuantizationPreset.MIXED, subset_size=len(items),
                                  advanced_parameters=AdvancedQuantizationParameters(smooth_quant_alphas=smooth))
        meta["calibration"] = record
        tools += f",nncf=={version('nncf')},{versions_tag(record)}"
    ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)
    (out / "model.onnx").unlink()
    return tools


class DamagedExportError(ReviewTransferError):
    """An export on disk whose runtime cannot load it: its files were cut short or changed. ``what``: the export
    and the runtime's reason, without the advice."""

    def __init__(self, message: str, what: str = "") -> None:
        super().__init__(message)
        self.what = what or message


def load_session(export_dir: Path, backend: str, compiled: bool = False,
                 streams: int = 1) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function running the export: ``(input_ids, attention_mask) -> last_hidden_state``.

    ``compiled``: openvino keeps its compiled model under ``export_dir/.compiled`` (exports in the cache;
    a bundle's own export is left as it was signed). ``streams`` above 1 (openvino): compiled for
    throughput with that many streams and requests; the function is then safe to call from that many
    threads at once. :class:`DamagedExportError` where the runtime cannot load the files, saying what to do."""
    try:
        return _open_session(export_dir, backend, compiled, streams)
    except _load_errors(backend) as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        fix = ("delete that directory and run again: it is exported anew" if compiled else
               "restore the bundle's files or refit it")
        what = f"{export_dir}: the {backend} runtime cannot load this export ({reason})"
        raise DamagedExportError(f"{what}; its files are damaged: {fix}.", what) from None


def _load_errors(backend: str) -> tuple[type[Exception], ...]:
    """What the runtime of ``backend`` raises for model files it cannot read: openvino a RuntimeError,
    onnxruntime its own exceptions (not RuntimeErrors)."""
    if backend != "onnx":
        return (RuntimeError,)
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    return (RuntimeError, ort_state.Fail, ort_state.InvalidProtobuf, ort_state.InvalidGraph, ort_state.NoSuchFile)


def _open_session(export_dir: Path, backend: str, compiled: bool,
                  streams: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """:func:`load_session` without the check of what fails to load."""
    if backend == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(export_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
        return lambda ids, mask: session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    ov = runtime_openvino()
    core = ov.Core()
    if compiled:  # OpenVINO's cache of compiled models beside the IR: a later load skips compiling
        with contextlib.suppress(OSError):  # read-only: compile each time
            (export_dir / COMPILED_CACHE).mkdir(exist_ok=True)
            core.set_property({"CACHE_DIR": str(export_dir / COMPILED_CACHE)})
    hint = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(streams)} if streams > 1 else {"PERFORMANCE_HINT": "LATENCY"}
    model = core.compile_model(str(export_dir / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32", **hint})
    if streams <= 1:
        request = model.create_infer_request()
        return lambda ids, mask: request.infer({"input_ids": ids, "attention_mask": mask})[0].copy()
    import queue

    idle: queue.Queue[Any] = queue.Queue()
    for _ in range(streams):
        idle.put(model.create_infer_request())

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        request = idle.get()
        try:
            return request.infer({"input_ids": ids, "attention_mask": mask})[0].copy()
        finally:
            idle.put(request)

    return run


# ---------------------------------------------------------------------------------------------- helpers
def runtime_openvino() -> Any:
    """``openvino``, imported to run an export: without its model converter (``openvino.tools.ovc`` and its
    telemetry, about half the package's import, 0.17 s of a cold ``predict``), which only exports need; the
    package's ``convert_model`` still imports it on first use."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    sys.modules[OVC] = None  # type: ignore[assignment]  # openvino's __init__ skips the converter on ImportError
    try:
        import openvino as ov
    finally:
        del sys.modules[OVC]
    if "convert_model" not in vars(ov):
        def lazy(name: str) -> Any:
            if name != "convert_model":
                raise AttributeError(f"module 'openvino' has no attribute {name!r}")
            from openvino.tools.ovc import convert_model

            ov.convert_model = convert_model
            return convert_model

        ov.__getattr__ = lazy  # a module's __getattr__ answers names it lacks (PEP 562)
    return ov


def read_meta(export_dir: Path) -> dict[str, Any]:
    """The parsed ``meta.json`` of an export, or ValueError naming the file and the fix."""
    file = Path(export_dir) / META
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ReviewTransferError(f"{file}: unreadable export metadata ({e}); delete {export_dir} to export again.") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _st_config(model_dir: Path) -> dict[str, Any]:
    """Transformer path, pooling, normalisation and max length of a sentence-transformers directory."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        raise OptionError(f"{model_dir}: no modules.json, so not a sentence-transformers model; use hf:PATH "
                         "with --pooling mean|cls, or backend=torch.")
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise OptionError(f"{model_dir}: modules {kinds} are more than Transformer, Pooling[, Normalize]; "
                         "the exported backends run only those. Use backend=torch.")
    pooling_cfg = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    modes = [k for k, v in pooling_cfg.items() if k.startswith("pooling_mode_") and v]
    if isinstance(pooling_cfg.get("pooling_mode"), str):  # sentence-transformers 6 saves the mode's name
        modes = [pooling_cfg["pooling_mode"]]
    known = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "mean": "mean", "cls": "cls"}
    if len(modes) != 1 or modes[0] not in known:
        raise OptionError(f"{model_dir}: pooling {modes} is not one of mean or cls; use backend=torch.")
    config_file = model_dir / modules[0]["path"] / "sentence_bert_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    if config.get("do_lower_case"):
        raise OptionError(f"{model_dir}: do_lower_case in sentence_bert_config.json is not supported by the "
                         "exported backends; use backend=torch.")
    return {"path": modules[0]["path"], "pooling": known[modes[0]], "normalize": "Normalize" in kinds,
            "max_length": config.get("max_seq_length")}


def _check_layers(model_dir: Path, st: dict[str, Any] | None, layers: tuple[int, int], depth: int) -> None:
    """OptionError unless hidden layers ``layers`` of a mean-pooled sentence-transformers model can be averaged."""
    if not st or st["pooling"] != "mean":
        raise OptionError(f"{model_dir}: layers needs a mean-pooled sentence-transformers model; this one pools by "
                          f"{st['pooling'] if st else 'nothing of its own'}. Drop layers.")
    if layers[1] > depth:
        raise OptionError(f"{model_dir}: layers {layers[0]}-{layers[1]} go past the model's {depth} layers; use "
                          f"layers within 1-{depth}.")


def _check_pooling(spec: str, asked: str | None, exported: str | None, hf: bool) -> str:
    if not hf:
        if asked not in (None, exported):
            raise OptionError(f"{spec}: a sentence-transformers model brings its own pooling ({exported}); drop --pooling.")
        return str(exported)
    pooling = asked or "mean"
    if pooling not in ("mean", "cls"):
        raise OptionError(f"{spec}: unknown pooling {pooling!r}; use one of mean, cls.")
    return pooling
