"""The trust policy, in one place: where a bundle's encoder spec may resolve, and which types its
scikit-learn head may hold.

- Specs. A spec the user types may name anything. A spec read from a bundle resolves under a
  :class:`Trust` that allows only packaged models, the bundle's own ``encoder/`` directory and what the
  user names on the command line (``--encoder-path``, ``--trust-encoder``; see :func:`check_trusted`).
  Encoders ask a :class:`Trust` through :class:`pipeline.encoders.spec.Resolution`; they never decide.
- Heads. skops rebuilds only its default types and :data:`TRUSTED_TYPES`. Bundles made before the package
  took its folders name this package's types by their old modules (``pipeline.linear_svm.LinearSVM``);
  :func:`current_modules` reads those under today's names (:data:`LEGACY_MODULES`), nothing else.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.encoders.spec import BUNDLE_ENCODER_DIR, NAMED, W2V_FILE, EncoderSpec, SpecError

# Types beyond skops' defaults that the registered heads contain (see tests/test_bundle.py).
TRUSTED_TYPES = frozenset(
    {
        "pipeline.heads.calibration.PlattCalibrated",  # linear-svm, rbf-svm, ridge
        "pipeline.heads.linear_svm.LinearSVM",  # linear-svm
        "pipeline.heads.routed.RoutedClassifier",  # any head on a routed encoder (E|O): one per side
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hist-gb
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",  # mlp
        "sklearn.tree._tree.Tree",  # random-forest
    }
)

# Modules of this package that earlier bundles' heads name, and where those types live now.
LEGACY_MODULES = {
    "pipeline.calibration": "pipeline.heads.calibration",
    "pipeline.linear_svm": "pipeline.heads.linear_svm",
}


def current_modules(head_file: Path) -> bytes:
    """The bytes of the skops file ``head_file`` with :data:`LEGACY_MODULES` renamed in its schema (the
    file itself is untouched: its digest stays the one its manifest seals). Raises what reading the zip raises."""
    data = head_file.read_bytes()
    with zipfile.ZipFile(head_file) as z:
        schema = json.loads(z.read("schema.json"))
        if not _rename(schema):
            return data
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as new:
            for item in z.infolist():
                body = json.dumps(schema).encode() if item.filename == "schema.json" else z.read(item.filename)
                new.writestr(item, body)
    return out.getvalue()


def _rename(tree: object) -> bool:
    """Rename :data:`LEGACY_MODULES` in every ``__module__`` of a skops schema, in place; True if any was."""
    renamed, stack = False, [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module = item.get("__module__")
            if isinstance(module, str) and module in LEGACY_MODULES:
                item["__module__"] = LEGACY_MODULES[module]
                renamed = True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return renamed


@dataclass(frozen=True)
class Trust:
    """Where a spec may resolve. The default (``bundle=None``) is a spec the user typed: anything goes.

    For a spec read from a bundle: packaged models by name, the bundle's own ``encoder/`` directory and
    Word2Vec vectors it carries; ``encoder_path`` (``--encoder-path``) stands in for the one model or
    file the spec names outside the bundle; ``trust_all`` (``--trust-encoder``) resolves the spec as if
    the user had typed it (local paths, hub names, pickled ``.kv`` files, retraining ``w2v-train``).
    """

    bundle: Path | None = None
    encoder_path: Path | None = None
    trust_all: bool = False
    where: str = field(default="", compare=False)  # the manifest, for messages
    sources: tuple[str | None, ...] = ()  # what the bundle records each part was read from (its sha256)

    @property
    def restricted(self) -> bool:
        return self.bundle is not None and not self.trust_all

    def check(self, spec: EncoderSpec) -> None:
        """:func:`check_trusted` of ``spec`` under this trust."""
        check_trusted(spec, self)

    def own_model(self, part: EncoderSpec) -> Path | None:
        """The bundle's own model directory when ``part`` names it, else None."""
        return _bundle_model(part, self)

    def own_vectors(self, index: int) -> Path | None:
        """The trained vectors the bundle carries for its ``w2v-train`` part ``index``, if it has them."""
        if self.bundle is None:
            return None
        path = bundle_vectors(self, index)
        return path if path.is_file() else None


PICKLE_SUFFIXES = (".kv", ".model", ".pkl", ".pickle")  # gensim's own format is a pickle: loading it can run code


def is_pickle(path: str | Path) -> bool:
    """Whether ``path`` names a file gensim would unpickle (``.kv``, ``.model``, ...)."""
    return str(path).lower().endswith(PICKLE_SUFFIXES)


def check_trusted(spec: EncoderSpec, trust: Trust) -> None:
    """Raise :class:`SpecError` if ``spec`` (every part) may not resolve under ``trust``; touches no
    network and runs no code. ``--encoder-path`` is hashed here, before anything loads it: it must have
    the sha256 the bundle records for the part it stands in for, and must not be a pickle."""
    if not trust.restricted:
        return
    parts = spec.parts or (spec,)
    outside = [i for i, p in enumerate(parts) if _outside_bundle(p, i, trust)]
    if len(outside) > 1 and trust.encoder_path is not None:
        raise SpecError(f"{trust.where}: the encoder has {len(outside)} parts outside the bundle "
                        f"({', '.join(parts[i].name for i in outside)}); --encoder-path stands in for one. "
                        "Pass --trust-encoder if you made this bundle.")
    for index in outside:
        if trust.encoder_path is None:
            raise SpecError(_refusal(parts[index], trust))
        _check_encoder_path(parts[index], index, trust)


def _check_encoder_path(part: EncoderSpec, index: int, trust: Trust) -> None:
    """SpecError unless ``--encoder-path`` is no pickle and hashes to what the bundle records for ``part``."""
    from pipeline.encoders.base import dir_digest, sha256_file

    given = Path(trust.encoder_path or "")
    where = f"{trust.where or 'bundle'}: --encoder-path {given}"
    if is_pickle(given) or is_pickle(part.arg):
        raise SpecError(f"{where}: {part.name!r} is a pickle (gensim .kv/.model); loading one can run code, so a "
                        "bundle never loads it. Refit the bundle on the vectors saved in word2vec format "
                        "(KeyedVectors.save_word2vec_format, binary or text).")
    recorded = trust.sources[index] if index < len(trust.sources) else None
    if recorded is None:
        raise SpecError(f"{where}: the bundle records no sha256 of the {part.kind} files it was fitted on (it "
                        "was saved before they were recorded), so the file cannot be checked before it loads. "
                        "Refit the bundle, or pass --trust-encoder if you made it.")
    if part.kind in ("w2v", "glove") and not given.is_file():
        raise SpecError(f"{where}: not a file; {part.name!r} is a word-vector file: give that file.")
    if part.kind in ("st", "hf") and not given.is_dir():
        raise SpecError(f"{where}: not a directory; {part.name!r} is a model directory: give that directory.")
    found = sha256_file(given) if given.is_file() else dir_digest(given)
    if found != recorded:
        raise SpecError(f"{where}: sha256 {found[:16]}... is not that of the {part.kind} files the bundle was "
                        f"fitted on ({recorded[:16]}...); nothing was loaded. Give the file or directory it was "
                        "fitted with.")


def _outside_bundle(part: EncoderSpec, index: int, trust: Trust) -> bool:
    """Whether ``part`` (number ``index`` of its spec) names something beyond packaged models and the
    bundle's own files."""
    if part.kind in NAMED:
        return False
    if _bundle_model(part, trust) is not None:
        return False
    if part.kind == "w2v-train":
        return not bundle_vectors(trust, index).is_file()
    return True


def _bundle_model(part: EncoderSpec, trust: Trust) -> Path | None:
    """The bundle's own model directory when ``part`` names it (``st:encoder`` or its path), else None."""
    if trust.bundle is None or part.kind != "st":
        return None
    own = trust.bundle / BUNDLE_ENCODER_DIR
    if part.arg == BUNDLE_ENCODER_DIR or Path(part.arg).expanduser().resolve() == own.resolve():
        return own
    return None


def _refusal(part: EncoderSpec, trust: Trust) -> str:
    if part.kind == "w2v-train":
        what = (f"Word2Vec trained on {part.arg!r}, but the bundle does not carry the trained vectors "
                f"({BUNDLE_ENCODER_DIR}/{W2V_FILE.format(index=0)}; bundles from 0.3 do not). Refit it with "
                "`review-transfer fit`, or pass --trust-encoder to retrain from that SOURCE.")
    elif part.kind in ("st", "hf") and not Path(part.arg).expanduser().is_absolute() and part.arg.count("/") == 1 \
            and not part.arg.startswith("."):
        what = (f"the hub model {part.arg!r}: bundles never download. Pass --encoder-path DIR with a local "
                "copy, or --trust-encoder if you made this bundle.")
    elif is_pickle(part.arg):
        what = (f"{part.arg!r}, a pickle outside the bundle (gensim .kv): loading it can run code, so a bundle "
                "never loads one. Refit the bundle on vectors saved in word2vec format "
                "(KeyedVectors.save_word2vec_format).")
    else:
        what = (f"{part.arg!r}, outside the bundle. Pass --encoder-path PATH to use that model or file (its sha256 "
                "must match the one the bundle records), or --trust-encoder if you made this bundle.")
    return f"{trust.where or 'bundle'}: refusing encoder {part.name!r}: it names {what}"


def bundle_vectors(trust: Trust, index: int = 0) -> Path:
    """Where a bundle keeps the trained vectors of its ``w2v-train`` part number ``index`` (0 alone)."""
    return Path(trust.bundle or ".") / BUNDLE_ENCODER_DIR / W2V_FILE.format(index=index)
