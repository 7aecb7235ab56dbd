"""Model bundles: a fitted head saved safely with skops, plus a manifest that ties it to its encoder.

A bundle is a directory::

    manifest.json   format version, encoder spec + fingerprint, head name + params, label names,
                    training-data hash/size, budget, seed, test metrics, package versions, created
                    time, the sha256 of every other file, and a digest (and, with a signing key, an
                    HMAC signature) of the manifest itself; the schema is :mod:`pipeline.bundle.manifest`
    head.skops      the fitted scikit-learn head (skops format: no arbitrary pickle)
    head.npz        linear heads only: their parameters as plain arrays, so ``predict`` needs neither
                    scikit-learn nor skops (:mod:`pipeline.heads.linear`); absent in older bundles
    shift_sample.npy  a seeded sample of training vectors (float16, no texts) for the domain-shift check;
                    absent in bundles made before it (see :mod:`pipeline.predict.shift`)
    encoder/        the bundle's own encoder files: fine-tuned weights (spec "st:encoder"), or the
                    trained vectors of a ``w2v-train`` encoder (``w2v-train-N.npz``, no pickle)

Fine-tuned bundles record ``long_text: auto`` with their training window as ``max_length``: texts that
fit give the vectors the head was trained on, longer ones are read whole through windows of that
size (chunk-mean). ``Bundle.load(..., long_text=, max_length=)`` (``--long``/``--max-length`` of
``predict`` and ``evaluate``) overrides both for one run; the recorded encoder is still verified.
Fine-tuned bundles saved before this recorded ``truncate``: they keep it, with a one-line notice.

Trust model, checked in this order before anything is resolved or unpickled: the manifest is
validated against its schema and its digest (and signature, when ``$REVIEW_TRANSFER_SIGNING_KEY`` is
set); every listed file's sha256 must match and no unlisted file may be present; the encoder spec may
resolve only to a packaged model, the bundle's own ``encoder/`` or what the user names
(``encoder_path``, ``trust_encoder``; see :class:`pipeline.bundle.trust.Trust`), so loading never downloads and
never unpickles; skops rebuilds only the types on :data:`TRUSTED_TYPES` besides its defaults; and the
head's structure must be the one its manifest names. Without a signing key, the digests catch edits
and corruption but not someone who recomputes them; with one, only bundles signed with it load.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import platform
import shutil
import sys
import uuid
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import ReviewTransferError
from pipeline.bounded_json import JSONBoundsError, load_bounded
from pipeline.disk import explain_full_disk
from pipeline.encoders.base import sha256_file
from pipeline.encoders.routed import for_prediction
from pipeline.heads.linear import LINEAR_FILE, LinearHead, LinearHeadError, from_estimator, plain_skops
from pipeline.heads.routed_linear import RoutedLinearHead
from pipeline.heads.routed_linear import load as load_linear_head
from pipeline.bundle.manifest import (FORMAT_VERSION, ManifestError, check_seal, encoder_options, encoder_spec, route_version,
                                       seal, validate)
from pipeline.bundle.trust import TRUSTED_TYPES, Trust, check_trusted, current_modules
from pipeline.encoders.spec import BUNDLE_ENCODER_DIR, W2V_FILE, recorded_candidates

__all__ = ["Bundle", "BundleError", "check_out_dir", "encoder_options", "read_manifest", "verify_files"]
MANIFEST = "manifest.json"
HEAD_FILE = "head.skops"
ENCODER_DIR = BUNDLE_ENCODER_DIR
BUNDLED_ENCODER_SPEC = "st:" + ENCODER_DIR  # spec of weights stored inside the bundle
VERSIONED_PACKAGES = ("review-transfer", "scikit-learn", "numpy", "scipy", "skops")
SAMPLE_FILE = "shift_sample.npy"  # training vectors kept for the domain-shift check (pipeline.predict.shift)
OVERRIDABLE = ("long_text", "max_length")  # encoder options a user may change when predicting
BUNDLE_FIX = "free some space there, or save the bundle on a disk with room (--out DIR); an older bundle there is kept"
MAX_MANIFEST_BYTES = 4 << 20  # manifests this version writes are a few KB; prompts and metrics included
MAX_MANIFEST_DEPTH = 32  # and nest about 6 levels deep
MAX_SCHEMA_BYTES = 256 << 20  # head.skops' schema.json: 2 MB for a default random forest, nested 12-20 deep
MAX_SCHEMA_DEPTH = 64

# linear heads that earlier bundles hold behind a StandardScaler for rows not of unit length (word vectors);
# today's put a Normalizer there. Both steps are plain arithmetic, so both load.
SCALED_BEFORE = ("logreg", "linear-svm", "ridge")
SCALER_STEP = "scale:StandardScaler"
UNCALIBRATED_BEFORE = ("knn",)  # heads whose earlier bundles hold the classifier without PlattCalibrated


class BundleError(ReviewTransferError, ValueError):
    """A bundle cannot be saved or loaded; the message names the file and what to do."""


def package_versions() -> dict[str, str | None]:
    """Versions of Python and of the packages a bundle depends on (``None`` if not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass
class Bundle:
    """A fitted head over the vectors of one encoder, with its manifest.

    ``predict``/``predict_proba`` take raw texts and embed them through the embedding cache in
    ``cache_dir`` (default: :func:`pipeline.store.cache.default_cache_dir`), or straight through the encoder
    with ``use_cache=False`` (a few new texts: opening the cache costs more than it saves).
    :meth:`as_pipeline` gives a plain scikit-learn ``Pipeline`` over raw texts. ``overrides``
    (``long_text``, ``max_length``) replace the recorded encoder options when predicting. ``trust``
    says where the encoder may resolve (set by :meth:`load`; a bundle built in this process resolves
    its encoder as the user gave it).
    """

    head: Any  # what predicts: the fitted scikit-learn classifier, or a loaded bundle's LinearHead (see estimator)
    manifest: dict[str, Any]
    path: Path | None = None
    cache_dir: str | Path | None = None
    encoder: Any = field(default=None, repr=False, compare=False)  # stage-one encoder; None: resolve on use
    overrides: dict[str, Any] = field(default_factory=dict)
    shift_sample: np.ndarray | None = field(default=None, repr=False, compare=False)  # training vectors kept
    trust: Trust = field(default_factory=Trust, repr=False, compare=False)
    use_cache: bool = True
    _estimator: Any = field(default=None, init=False, repr=False, compare=False)
    _recorded: str | None = field(default=None, init=False, repr=False, compare=False)  # see encoder_spec

    # ------------------------------------------------------------------------------------ manifest
    @property
    def label_names(self) -> tuple[str, str]:
        """Names of class 0 and class 1, e.g. ``("rotten", "fresh")``."""
        return tuple(self.manifest["label_names"])

    @property
    def classes_(self) -> np.ndarray:
        """The labels :meth:`predict` returns (0 and 1), as in scikit-learn."""
        return np.array([0, 1])

    @property
    def estimator(self) -> Any:
        """The fitted scikit-learn head. A bundle loaded with its linear head (:attr:`head` a
        :class:`~pipeline.heads.linear.LinearHead`) rebuilds it from ``head.skops`` on first use, through
        the same allowlist and structure checks as :meth:`load`."""
        if not isinstance(self.head, (LinearHead, RoutedLinearHead)):
            return self.head
        if self._estimator is None:
            if self.path is None:
                raise BundleError("this bundle's scikit-learn head lives in its head.skops; load the bundle from disk.")
            self._estimator = _load_head(self.path / HEAD_FILE)
            check_head_identity(self._estimator, self.manifest["head"]["name"], self._where)
        return self._estimator

    @property
    def encoder_spec(self) -> str:
        """The encoder spec to resolve now: bundled weights become an absolute ``st:`` path, and an alias whose
        target moved since the bundle recorded it (``multilingual``, once e5 alone) the earlier target whose
        fingerprint is the recorded one (:func:`~pipeline.encoders.spec.recorded_candidates`)."""
        spec = self.manifest["encoder"]["spec"]
        if spec == BUNDLED_ENCODER_SPEC:
            if self.path is None:
                raise BundleError("this bundle keeps its encoder inside its directory; save or load it first.")
            return "st:" + str(self.path / ENCODER_DIR)
        candidates = recorded_candidates(spec)
        if len(candidates) > 1 and self._recorded is None:
            self._recorded = next((c for c in candidates if self._fingerprint_of(c) == self.manifest["encoder"]["fingerprint"]),
                                  candidates[0])
        return self._recorded or spec

    def _fingerprint_of(self, spec: str) -> str:
        """The fingerprint of the encoder ``spec`` resolves to with the recorded options (nothing is encoded)."""
        from pipeline.encoders import get_encoder

        parsed = encoder_spec({**self.manifest["encoder"], "spec": spec}, self._where)
        return get_encoder(parsed, work_dir=self.cache_dir, trust=self.trust).fingerprint

    @property
    def recorded_options(self) -> dict[str, Any]:
        """Keyword options that rebuild the encoder the head was fitted on (precision, max_length, ...)."""
        return dict(self.manifest["encoder"].get("options") or {})

    @property
    def encoder_options(self) -> dict[str, Any]:
        """Keyword options for ``get_encoder`` when predicting: the recorded ones with :attr:`overrides`
        applied (to every part of a combined encoder)."""
        options = self.recorded_options
        if not self.overrides:
            return options
        if "parts" in options:
            return {**options, "parts": [{**part, **self.overrides} for part in options["parts"]]}
        return {**options, **self.overrides}

    def get_encoder(self) -> Any:
        """The stage-one encoder, resolved from the manifest's spec and options on first use, under
        :attr:`trust`."""
        if self.encoder is None:
            self.encoder = self._build_encoder(self.overrides)
        return self.encoder

    def _build_encoder(self, overrides: dict[str, Any]) -> Any:
        """The encoder of the manifest's spec and recorded options, with ``overrides`` set on every part
        that takes them, resolved under :attr:`trust`."""
        from pipeline.encoders import get_encoder

        options = self.recorded_options
        spec = encoder_spec({**self.manifest["encoder"], "spec": self.encoder_spec}, self._where).overridden(**overrides)
        found = [options.get("source_options")] + [p.get("source_options") for p in options.get("parts", [])]
        source_options = next((o for o in found if o), None)
        return get_encoder(spec, work_dir=self.cache_dir, source_options=source_options, trust=self.trust,
                           route_version=route_version(options.get("route_version"), spec))  # routed: as fitted

    @property
    def _where(self) -> str:
        return str(self.path / MANIFEST) if self.path is not None else MANIFEST

    # ------------------------------------------------------------------------------------ predict
    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts`` from the bundle's encoder, through the embedding cache (see :attr:`use_cache`);
        a routed encoder reads each text with its own side only (:func:`~pipeline.encoders.routed.for_prediction`)."""
        encoder = for_prediction(self.get_encoder())
        if not self.use_cache:
            from pipeline.encoders.language import warn as warn_language

            warn_language(encoder, list(texts))  # as the cache does: one line when the texts are not its language
            return encoder.encode(list(texts))
        from pipeline.paths import cache_dir_or_default
        from pipeline.store.cache import EmbeddingCache

        return EmbeddingCache(cache_dir_or_default(self.cache_dir)).vectors(encoder, list(texts))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """``(n, 2)`` probabilities of class 0 and class 1 for raw ``texts``."""
        return self.head.predict_proba(self.embed(texts))

    def predict(self, texts: list[str]) -> np.ndarray:
        """0/1 labels (index into :attr:`label_names`) for raw ``texts``."""
        return self.head.predict(self.embed(texts)).astype(np.int64)

    def as_pipeline(self) -> Any:
        """A fitted scikit-learn ``Pipeline`` over raw texts: the project's ``Embedder`` + the head steps.

        It predicts exactly like the bundle, and can be cloned and refitted like any estimator.
        """
        from sklearn.pipeline import Pipeline

        from pipeline.store.embedder import Embedder

        options = {k: v for k, v in self.encoder_options.items() if k not in ("parts", "source_options")}
        embedder = Embedder(self.encoder_spec, cache_dir=self.cache_dir, **options)
        head = self.estimator
        steps = head.steps if isinstance(head, Pipeline) else [("head", head)]
        return Pipeline([("embed", embedder), *steps])

    # ------------------------------------------------------------------------------------ save
    def save(self, path: str | Path, *, encoder_dir: str | Path | None = None) -> Path:
        """Write the bundle to directory ``path`` atomically and return it.

        Files are written to a temporary sibling directory that then replaces ``path`` by rename, so
        a crash never leaves a half-written bundle at ``path`` (an old bundle there is renamed aside
        to ``.NAME.old-*`` first and removed after). A linear head is also written as plain arrays
        (``head.npz``, :mod:`pipeline.heads.linear`) when they reproduce its probabilities.
        ``encoder_dir`` copies fine-tuned encoder weights into the bundle (its spec becomes
        ``st:encoder``); the trained vectors of ``w2v-train`` encoders are copied in too. An existing
        directory at ``path`` is only replaced if it is a bundle. A swap cut short by a kill is completed
        or undone by the next save or load of ``path`` (:func:`recover_swap`).
        """
        path = Path(path)
        with _swap_lock(path):
            recover_swap(path)
            check_out_dir(path)
            with explain_full_disk(path.parent, f"the bundle {path.name}", BUNDLE_FIX):
                manifest = self._write(path, encoder_dir)
        # a bundle built here keeps the user's trust; its spec may now name its own encoder/ directory
        self.trust = Trust(bundle=path, encoder_path=self.trust.encoder_path, trust_all=not self.trust.restricted,
                           where=str(path / MANIFEST), sources=tuple(manifest["encoder"].get("sources") or ()))
        self.manifest, self.path = manifest, path
        if encoder_dir is not None:
            self.encoder = None  # now resolved from the copy inside the bundle
        return path

    def _write(self, path: Path, encoder_dir: str | Path | None) -> dict[str, Any]:
        """Write the bundle into a temporary sibling of ``path``, swap it in (:func:`_replace_dir`) and
        return its manifest; the caller holds the swap lock."""
        sio = _skops_io()
        tmp = path.parent / f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            sio.dump(self.estimator, tmp / HEAD_FILE)
            linear = self._linear_head()
            if linear is not None:
                linear.save(tmp / LINEAR_FILE)
            if self.shift_sample is not None:
                np.save(tmp / SAMPLE_FILE, self.shift_sample, allow_pickle=False)
            manifest = dict(self.manifest)
            if encoder_dir is not None:
                shutil.copytree(encoder_dir, tmp / ENCODER_DIR)
                manifest["encoder"] = {**manifest["encoder"], "spec": BUNDLED_ENCODER_SPEC}
            else:
                self._copy_trained_vectors(tmp / ENCODER_DIR)
            manifest.update(
                format_version=FORMAT_VERSION,
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                versions=package_versions(),
                files={rel: sha256_file(tmp / rel) for rel in _bundle_files(tmp)},
            )
            manifest = seal(validate(manifest, str(path / MANIFEST)))
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            _replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return manifest

    def _linear_head(self) -> LinearHead | RoutedLinearHead | None:
        """The head as a :class:`LinearHead`, checked on the kept training vectors (or random rows), or None."""
        head = self.estimator
        dim = int(getattr(head, "n_features_in_", 0))
        if self.shift_sample is not None and len(self.shift_sample):
            rows = np.asarray(self.shift_sample, dtype=np.float32)
        elif dim:
            rows = np.random.default_rng(0).standard_normal((64, dim)).astype(np.float32)
        else:
            return None
        if hasattr(head, "english_"):  # routed: a linear head per language side
            from pipeline.heads.routed_linear import from_routed

            return from_routed(head, self.manifest["head"]["name"], head_identity, rows)
        return from_estimator(head, self.manifest["head"]["name"], head_identity(head), rows)

    def _copy_trained_vectors(self, target: Path) -> None:
        """Copy the vectors of each ``w2v-train`` part into ``target``, so predicting needs no SOURCE."""
        if "w2v-train:" not in self.manifest["encoder"]["spec"]:
            return
        encoder = self.get_encoder()
        for index, part in enumerate(getattr(encoder, "parts", None) or [encoder]):
            file = getattr(getattr(part, "vectors", None), "file", None)
            if part.spec.startswith("w2v-train:") and file is not None:
                target.mkdir(exist_ok=True)
                shutil.copyfile(file, target / W2V_FILE.format(index=index))

    # ------------------------------------------------------------------------------------ load
    @classmethod
    def load(cls, path: str | Path, *, cache_dir: str | Path | None = None, verify_encoder: bool = True,
             long_text: str | None = None, max_length: int | None = None, encoder_path: str | Path | None = None,
             trust_encoder: bool = False, allow_legacy: bool = False) -> Bundle:
        """Load and check a bundle directory.

        Before the encoder is resolved, refuses (with :class:`BundleError`) a manifest that breaks the
        schema, its digest or (with a signing key set) its signature; files changed since saving; a head
        holding types outside the allowlist or not of the kind its manifest names; an encoder spec outside
        the trust policy (``encoder_path`` stands in for a model outside the bundle, ``trust_encoder``
        resolves the spec as the user's own); and, unless ``verify_encoder=False``, an encoder that now
        resolves to a different fingerprint. ``long_text`` and ``max_length``, when given, override the
        recorded encoder options for prediction (e.g. ``long_text="auto", max_length=128`` for a model
        fine-tuned at 64). A format-1 bundle (0.3.x: no digest) loads only with ``allow_legacy``.
        """
        path = Path(path)
        where = str(path / MANIFEST)
        recover_swap(path, only_if_left=True)
        manifest = read_manifest(path, allow_legacy=allow_legacy)
        verify_files(path, manifest)
        head = _load_predictor(path, manifest["head"]["name"], manifest["files"], where)
        trust = Trust(bundle=path, encoder_path=Path(encoder_path) if encoder_path else None,
                      trust_all=trust_encoder, where=where, sources=tuple(manifest["encoder"].get("sources") or ()))
        try:
            check_trusted(encoder_spec(manifest["encoder"], where), trust)
        except ReviewTransferError as e:
            raise BundleError(str(e)) from None
        _warn_version_drift(path, manifest)
        overrides = {k: v for k, v in zip(OVERRIDABLE, (long_text, max_length)) if v is not None}
        _notice_truncating_finetune(path, manifest, overrides)
        sample = _load_sample(path / SAMPLE_FILE) if SAMPLE_FILE in manifest["files"] else None
        bundle = cls(head, manifest, path, cache_dir, overrides=overrides, shift_sample=sample, trust=trust)
        if verify_encoder:
            bundle.verify_encoder()
        return bundle

    def verify_encoder(self) -> None:
        """Resolve the encoder spec now; raise :class:`BundleError` if its fingerprint changed.

        With :attr:`overrides`, the recorded encoder is built and checked; the overridden one is built on use.
        """
        saved = self.manifest["encoder"]["fingerprint"]
        now = (self._build_encoder({}) if self.overrides else self.get_encoder()).fingerprint
        if now != saved:
            from pipeline.encoders.multilingual_port import wrong_digests
            from pipeline.paths import cache_dir_or_default

            wrong = wrong_digests(cache_dir_or_default(self.cache_dir))
            raise BundleError(
                f"{self._where}: encoder {self.manifest['encoder']['spec']!r} now resolves to "
                f"fingerprint {now}, but the head was fitted on vectors of fingerprint {saved}" + (
                    f"; the cause is not the bundle: {wrong[0]}." if wrong else
                    " (different weights, pooling, max length or precision). Its predictions would be wrong: refit "
                    "the bundle with `review-transfer fit`, or restore the encoder it was fitted with.")
            )


class _BlockTorchNamespace:
    """Import finder refusing sklearn's torch array namespace (see :func:`_skops_io`)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.startswith("sklearn.externals.array_api_compat.torch"):
            raise ImportError(f"{name} skipped while skops.io builds its trusted types")


def _skops_io() -> Any:
    """``skops.io``, imported without importing torch.

    On import, skops lists its default trusted types with ``sklearn.utils.all_estimators``, whose package
    walk imports ``sklearn.externals.array_api_compat.torch`` and so torch (seconds of a cold ``predict``,
    and a GloVe or ONNX bundle never needs torch). The walk ignores packages that fail to import, so that
    one is refused while skops loads; no type it holds is one a bundle's head needs.
    """
    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    blocker = _BlockTorchNamespace()
    sys.meta_path.insert(0, blocker)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(blocker)
    return skops.io


def check_out_dir(path: str | Path) -> None:
    """Refuse, before any work, an output path that exists and is neither a bundle nor an empty directory."""
    path = Path(path)
    if path.exists() and not (path / MANIFEST).is_file() and (not path.is_dir() or any(path.iterdir())):
        raise BundleError(f"{path} exists and is not a model bundle; refusing to overwrite it. Choose another --out.")


def _load_predictor(path: Path, name: str, files: dict[str, str], where: str) -> Any:
    """What predicts for bundle ``path``: its :class:`LinearHead` when it has one and ``head.skops`` holds
    only plain types (numpy alone, no scikit-learn or skops import), else the skops head, checked."""
    _check_schema(path / HEAD_FILE)
    if LINEAR_FILE in files and plain_skops(path / HEAD_FILE):
        try:
            return load_linear_head(path / LINEAR_FILE, name)
        except LinearHeadError as e:
            raise BundleError(str(e)) from None
    head = _load_head(path / HEAD_FILE)
    check_head_identity(head, name, where)
    return head


def _check_schema(head_file: Path) -> None:
    """BundleError unless the ``schema.json`` inside skops file ``head_file`` is within bounds on size and
    nesting (skops and :func:`plain_skops` parse it whole, recursively)."""
    try:
        with zipfile.ZipFile(head_file) as z:
            size = z.getinfo("schema.json").file_size
            if size > MAX_SCHEMA_BYTES:
                raise JSONBoundsError(f"{head_file}: schema.json of {size:,} bytes, more than the {MAX_SCHEMA_BYTES:,} "
                                      "a head may hold.")
            load_bounded(z.read("schema.json"), f"{head_file}: schema.json", max_bytes=MAX_SCHEMA_BYTES,
                         max_depth=MAX_SCHEMA_DEPTH)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise BundleError(f"{head_file}: not a skops file ({type(e).__name__}: {e}); refit the model with "
                          "`review-transfer fit`.") from None
    except JSONBoundsError as e:
        raise BundleError(f"{e} The bundle is damaged or was tampered with: refit it.") from None


def _load_head(head_file: Path) -> Any:
    """The head in ``head_file``, rebuilt by skops with only the allowlisted types."""
    sio = _skops_io()
    try:
        data = current_modules(head_file)
        untrusted = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError) as e:  # not a skops file: not a zip, no schema
        raise BundleError(f"{head_file}: not a skops file ({type(e).__name__}: {e}); refit the model with "
                          "`review-transfer fit`.") from None
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise BundleError(
            f"{head_file}: holds types outside the trusted allowlist: {refused}. Loading could run "
            "untrusted code; refit the model with review-transfer if you did not make this file."
        )
    return sio.loads(data, trusted=untrusted)


def head_identity(estimator: Any) -> list[str]:
    """The structure of a head: each pipeline step's name and class (and the estimator a calibration
    wrapper holds), e.g. ``["scale:StandardScaler", "clf:PlattCalibrated(SVC)"]``."""
    steps = estimator.steps if hasattr(estimator, "steps") else [("head", estimator)]
    out = []
    for name, step in steps:
        inner = getattr(step, "estimator", None)
        out.append(f"{name}:{type(step).__name__}" + (f"({type(inner).__name__})" if inner is not None else ""))
    return out


def check_head_identity(head: Any, name: str, where: str) -> None:
    """Raise :class:`BundleError` unless ``head`` has the structure of head ``name`` (its manifest's)."""
    from pipeline.heads.registry import build_head
    from pipeline.heads.routed import RoutedClassifier

    if isinstance(head, RoutedClassifier):  # a head per language side: each must be head ``name``
        for side in (head.english_, head.other_):
            check_head_identity(side, name, where)
        return
    if name.startswith("finetune-"):
        expected = [["clf:LogisticRegression"], ["clf:MLPClassifier"]]
    else:
        expected = [head_identity(build_head(name, unit=unit)) for unit in (False, True)]  # unit: no Normalizer
        if name in SCALED_BEFORE:
            expected.append([SCALER_STEP, head_identity(build_head(name, unit=True))[-1]])
        if name in UNCALIBRATED_BEFORE:  # saved before its probabilities were Platt-calibrated
            expected += [[*e[:-1], e[-1].replace("PlattCalibrated(", "")[:-1]] for e in expected]
    found = head_identity(head)
    if found not in expected:
        raise BundleError(f"{where}: head.name is {name!r}, but head.skops holds {' -> '.join(found)}, which is "
                          "not that head. The manifest was edited: restore it or refit the bundle.")


def _no_bundle_at(path: Path) -> str:
    """What to say for a bundle path that does not exist: where it was looked for, and a bundle of a near name."""
    bundles = [p.name for p in path.parent.iterdir() if (p / MANIFEST).is_file()] if path.parent.is_dir() else []
    near = difflib.get_close_matches(path.name, bundles, n=1, cutoff=0.5)
    where = "" if path.is_absolute() else f" (looked for in {Path.cwd()})"
    return (f"{path}: no such bundle directory{where}. "
            + (f"Did you mean {path.parent / near[0]}?" if near else
               "Pass the directory `review-transfer fit` printed after 'saved'."))


def read_manifest(path: Path, *, allow_legacy: bool = False) -> dict[str, Any]:
    """The parsed manifest of bundle ``path``, validated against :mod:`pipeline.bundle.manifest`'s schema and
    seal (digest; signature when a signing key is set). It is parsed within bounds on size and nesting;
    a bundle holding a symbolic link is refused before anything is read, and a format-1 manifest (no
    digest) unless ``allow_legacy``."""
    file = path / MANIFEST
    if not path.exists():
        raise BundleError(_no_bundle_at(path))
    if path.is_dir():
        _bundle_files(path)  # refuses symbolic links
    if not file.is_file():
        inside = sorted(p.parent.name for p in path.glob(f"*/{MANIFEST}")) if path.is_dir() else []
        hint = (f"It holds the bundle(s) {', '.join(inside)}: pass one of them, e.g. {path / inside[0]}."
                if inside else "Pass a directory written by `review-transfer fit`.")
        raise BundleError(f"{path}: not a model bundle (no {MANIFEST}). {hint}")
    try:
        if file.stat().st_size > MAX_MANIFEST_BYTES:
            raise JSONBoundsError(f"{file}: {file.stat().st_size:,} bytes, more than the {MAX_MANIFEST_BYTES:,} a "
                                  "manifest may hold; it is not one this version wrote.")
        manifest = load_bounded(file.read_bytes(), str(file), max_bytes=MAX_MANIFEST_BYTES,
                                max_depth=MAX_MANIFEST_DEPTH)
    except JSONBoundsError as e:
        raise BundleError(f"{e} The bundle is corrupted or was tampered with: refit it.") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{file}: no integer format_version; this is not a review-transfer bundle manifest.")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{file}: bundle format {version} was written by a newer review-transfer; this version reads "
            f"format {FORMAT_VERSION} at most. Upgrade review-transfer (`pip install -U review-transfer`)."
        )
    try:
        validate(manifest, str(file))
        check_seal(manifest, str(file))
    except ManifestError as e:
        raise BundleError(str(e)) from None
    if version < 2 and not allow_legacy:
        raise BundleError(f"{file}: a format-1 bundle (review-transfer 0.3): its manifest has no digest, so edits "
                          "to it (label names, head weights) would go unnoticed. Refit it, or pass --allow-legacy "
                          "(allow_legacy=True) to load it if you made it and it never left your hands.")
    if version < 2:
        warnings.warn(f"{path}: saved by review-transfer 0.3: its manifest has no digest, so edits to it (e.g. "
                      "label names) go unnoticed. Refit it to protect it.", stacklevel=3)
    return manifest


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Raise :class:`BundleError` unless the bundle holds exactly the manifest's files, unchanged."""
    listed: dict[str, str] = manifest["files"]
    if HEAD_FILE not in listed:
        raise BundleError(f"{path / MANIFEST}: does not list {HEAD_FILE}; the bundle is incomplete: refit it.")
    present = set(_bundle_files(path))
    for rel, digest in sorted(listed.items()):
        if rel not in present:
            raise BundleError(f"{path / rel}: missing from the bundle; restore it or refit the bundle.")
        if sha256_file(path / rel) != digest:
            raise BundleError(
                f"{path / rel}: changed since the bundle was saved (sha256 mismatch). It may be corrupted "
                "or tampered with; restore the original or refit the bundle with `review-transfer fit`."
            )
    extra = sorted(present - set(listed))
    if extra:
        import shlex

        raise BundleError(
            f"{path}: holds files that were not saved with it: {extra[:5]}. Remove them (they would not "
            f"be checked), e.g. `rm {shlex.quote(str(path / extra[0]))}`, or refit the bundle."
        )


def _bundle_files(root: Path) -> list[str]:
    """Paths (relative, '/'-separated) of all files under ``root`` except the manifest; BundleError on a
    symbolic link anywhere inside (it could lead out of the bundle) or anything but files and folders."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            entry = Path(folder) / name
            if entry.is_symlink():
                raise BundleError(f"{entry}: a symbolic link inside the bundle; a bundle holds only its own files. "
                                  "Replace the link with the file it points to, or refit the bundle.")
            if name in files and not entry.is_file():
                raise BundleError(f"{entry}: not a regular file; a bundle holds only files and folders. Refit it.")
        found += [(Path(folder) / f).relative_to(root).as_posix() for f in files]
    return sorted(f for f in found if f != MANIFEST)


def _load_sample(file: Path) -> np.ndarray:
    """The training sample of the shift check: a 2-d float array saved without pickle, or BundleError."""
    try:
        sample = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BundleError(f"{file}: not a readable array ({str(e).splitlines()[0][:120]}); the bundle is damaged "
                          "or was tampered with: refit it.") from None
    if not isinstance(sample, np.ndarray) or sample.ndim != 2 or sample.dtype.kind != "f":
        raise BundleError(f"{file}: expected a 2-d float array, found {getattr(sample, 'dtype', type(sample))} "
                          f"of shape {getattr(sample, 'shape', '?')}; refit the bundle.")
    return sample


TMP_MARK, OLD_MARK = ".tmp-", ".old-"  # .NAME.tmp-TOKEN: a bundle being written; .NAME.old-TOKEN: the one it replaces


def _replace_dir(tmp: Path, path: Path) -> None:
    """Move the complete bundle ``tmp`` (``.NAME.tmp-TOKEN``) to ``path``; an existing ``path`` is renamed
    aside first, to ``.NAME.old-TOKEN``, and removed after. A kill between the two renames leaves both
    asides, paired by TOKEN, for :func:`recover_swap`. The caller holds :func:`_swap_lock`."""
    old = None
    if path.exists():
        old = path.parent / f".{path.name}{OLD_MARK}{tmp.name.rpartition(TMP_MARK)[2]}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _swap_lock(path: Path) -> Any:
    """Exclusive fcntl lock on the folder holding bundle ``path`` (no lock file left behind): held while a
    bundle is written and swapped in, and while a swap is recovered, so neither sees the other half done.
    The kernel releases it when its holder is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def recover_swap(path: Path, *, only_if_left: bool = False) -> None:
    """Finish what a killed save left beside bundle ``path``, under the swap lock, as the cache treats
    its temporaries: no writer holds the lock, so whatever is there is left by a dead one.

    ``path`` missing with ``.NAME.old-T`` beside it means a kill came between the two renames: the new
    bundle ``.NAME.tmp-T`` is complete (its manifest is written last), so it is moved in; without it, the
    old bundle is put back. Then every ``.NAME.old-*`` and ``.NAME.tmp-*`` left is removed. With
    ``only_if_left`` (loading) nothing is locked or written unless such leftovers exist."""
    def leftovers() -> list[Path]:
        if not path.parent.is_dir():
            return []
        return sorted(path.parent.glob(f".{glob_escape(path.name)}{OLD_MARK}*")) + sorted(
            path.parent.glob(f".{glob_escape(path.name)}{TMP_MARK}*"))

    if only_if_left and not leftovers():
        return
    try:
        _recover(path, only_if_left, leftovers)
    except OSError as e:
        raise BundleError(f"{path}: a killed save left {', '.join(p.name for p in leftovers())} beside it, and they "
                          f"could not be put right ({e}); move the complete one into place by hand.") from None


def _recover(path: Path, lock: bool, leftovers: Callable[[], list[Path]]) -> None:
    """:func:`recover_swap`'s work: complete or undo a cut swap of ``path``, then remove ``leftovers()``."""
    with contextlib.ExitStack() as stack:
        if lock:
            stack.enter_context(_swap_lock(path))
        for old in sorted(path.parent.glob(f".{glob_escape(path.name)}{OLD_MARK}*")):
            token = old.name[len(f".{path.name}{OLD_MARK}"):]
            new = path.parent / f".{path.name}{TMP_MARK}{token}"
            if not path.exists():
                done = new.is_dir() and (new / MANIFEST).is_file()
                os.replace(new if done else old, path)
                warnings.warn(f"{path}: a save was killed while swapping bundles; "
                              f"{'completed it (the new bundle is in place)' if done else 'restored the old bundle'}.",
                              stacklevel=3)
        for stale in leftovers():
            shutil.rmtree(stale, ignore_errors=True)


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped (a bundle name may hold ``[``)."""
    import glob

    return glob.escape(name)


def _notice_truncating_finetune(path: Path, manifest: dict[str, Any], overrides: dict[str, Any]) -> None:
    """One line for a fine-tuned bundle saved before long texts were read whole (it records ``truncate``)."""
    options = manifest["encoder"].get("options") or {}
    if "finetune" in manifest and options.get("long_text") == "truncate" and "long_text" not in overrides:
        warnings.warn(
            f"{path}: this fine-tuned bundle predates reading long texts whole: it still cuts texts at "
            f"{options.get('max_length')} word pieces; pass --long auto (long_text='auto') to read them "
            "through overlapping windows of that size instead.",
            stacklevel=3,
        )


def _warn_version_drift(path: Path, manifest: dict[str, Any]) -> None:
    saved = (manifest.get("versions") or {}).get("scikit-learn")
    now = package_versions()["scikit-learn"]
    if saved and saved != now:
        warnings.warn(
            f"{path}: saved with scikit-learn {saved}, loading with {now}; predictions may differ slightly.",
            stacklevel=3,
        )
