"""The bundle manifest: one schema, built by ``fit`` and ``finetune``, validated whole by ``Bundle.load``
before anything in it is resolved.

A manifest is a JSON object of sections (:data:`SECTIONS`). Each section has a check that names the
file, the field and the fix. Unknown sections are refused, so a section a tool does not know can never
change what it predicts. To add a section (e.g. ``shift``): write ``check_shift(value, where)`` and add
``"shift": Section(check_shift)`` to :data:`SECTIONS`; :func:`build` passes extra sections through.

``digest`` (sha256 of the rest of the manifest, which lists the sha256 of every other bundle file)
catches edits and corruption; it is no defence against someone who recomputes it. With
``$REVIEW_TRANSFER_SIGNING_KEY`` set, ``signature`` (HMAC-SHA256 with that key over the same bytes) is
written on save and required on load.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline import ReviewTransferError

FORMAT_VERSION = 2  # 2: digest (and signature) over the manifest; w2v-train vectors carried; 1: 0.3.x
SIGNING_KEY_ENV = "REVIEW_TRANSFER_SIGNING_KEY"
SEAL_KEYS = ("digest", "signature")
FINETUNE_HEADS = ("finetune-head", "finetune-setfit")
# the names of pipeline.heads.registry.HEADS, so that validating a manifest imports no scikit-learn (tested equal)
HEAD_NAMES = ("logreg", "linear-svm", "rbf-svm", "knn", "random-forest", "hist-gb", "mlp", "ridge", "nb", "sgd")
_HEX = re.compile(r"^[0-9a-f]+$")


class ManifestError(ReviewTransferError, ValueError):
    """A manifest does not follow the schema or its seal; the message names the file and the field."""


# ---------------------------------------------------------------------------------------------- checks
def _fail(where: str, field: str, problem: str) -> None:
    raise ManifestError(f"{where}: {field} {problem}; the manifest was edited or damaged: restore it or refit the bundle.")


def _typed(value: Any, types: type | tuple[type, ...], where: str, field: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return value
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        _fail(where, field, f"is {value!r}, not {_names(types)}")
    if not isinstance(value, types):
        _fail(where, field, f"is {type(value).__name__} {value!r:.60}, expected {_names(types)}")
    if isinstance(value, float) and not math.isfinite(value):
        _fail(where, field, f"is {value}, expected a finite number")
    return value


def _names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


def _fields(value: Any, where: str, section: str, required: Mapping[str, Callable[[Any, str, str], Any]],
            optional: Mapping[str, Callable[[Any, str, str], Any]] = {}) -> None:
    """Check a dict section: every required field present and valid, optional ones valid, no others."""
    _typed(value, dict, where, section)
    for name, check in required.items():
        if name not in value:
            _fail(where, f"{section}.{name}", "is missing")
        check(value[name], where, f"{section}.{name}")
    for name, check in optional.items():
        if name in value:
            check(value[name], where, f"{section}.{name}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        _fail(where, section, f"has unknown field(s) {unknown}")


def _str(v: Any, w: str, f: str) -> Any:
    return _typed(v, str, w, f)


def _opt_str(v: Any, w: str, f: str) -> Any:
    return _typed(v, str, w, f, optional=True)


def _number(v: Any, w: str, f: str) -> Any:
    return _typed(v, (int, float), w, f)


def _opt_number(v: Any, w: str, f: str) -> Any:
    return _typed(v, (int, float), w, f, optional=True)


def _count(v: Any, w: str, f: str) -> Any:
    if _typed(v, int, w, f) < 0:
        _fail(w, f, f"is {v}, expected a count >= 0")
    return v


def _opt_count(v: Any, w: str, f: str) -> Any:
    return v if v is None else _count(v, w, f)


def _dict(v: Any, w: str, f: str) -> Any:
    return _typed(v, dict, w, f)


def _opt_dict(v: Any, w: str, f: str) -> Any:
    return _typed(v, dict, w, f, optional=True)


def _hex(length: int) -> Callable[[Any, str, str], Any]:
    def check(v: Any, w: str, f: str) -> Any:
        if not (isinstance(v, str) and len(v) == length and _HEX.match(v)):
            _fail(w, f, f"is {v!r:.70}, expected {length} hex digits")
        return v

    return check


def check_label_names(value: Any, where: str, field: str = "label_names") -> None:
    """Two distinct non-empty strings: the names of class 0 and class 1."""
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) and v for v in value)
            and value[0] != value[1]):
        _fail(where, field, f"is {value!r:.80}, expected two distinct names (class 0, class 1)")


def check_encoder(value: Any, where: str, field: str = "encoder") -> None:
    """Spec, fingerprint and options that parse as a valid :class:`~pipeline.encoders.spec.EncoderSpec`."""
    _fields(value, where, field, {"spec": _str, "fingerprint": _hex(16)},
            {"options": _opt_dict, "base": _str, "sources": _sources})
    encoder_spec(value, where)


def _sources(v: Any, w: str, f: str) -> Any:
    """One identity per part of the encoder (a sha256 of its weights or vector file, a package version, or null)."""
    if not isinstance(v, list) or not all(s is None or (isinstance(s, str) and len(s) <= 200) for s in v):
        _fail(w, f, f"is {v!r:.80}, expected a list of identities (strings or null), one per encoder part")
    return v


def check_head(value: Any, where: str, field: str = "head") -> None:
    """A registered head name (or a fine-tuning head) with its parameters."""
    _fields(value, where, field, {"name": _str, "params": _dict},
            {"class_weight": _opt_str, "search": _opt_str, "cv_accuracy": _opt_number, "cv_sd": _opt_number,
             "fit_seconds": _number})
    if value["name"] not in HEAD_NAMES and value["name"] not in FINETUNE_HEADS:
        _fail(where, f"{field}.name", f"is {value['name']!r}, not a head this version knows "
                                      f"({', '.join([*HEAD_NAMES, *FINETUNE_HEADS])})")
    if value.get("class_weight") not in (None, "balanced"):
        _fail(where, f"{field}.class_weight", f"is {value['class_weight']!r}, expected null or 'balanced'")


def _texts(v: Any, w: str, f: str) -> Any:
    if not isinstance(v, list) or not v or not all(isinstance(t, str) for t in v):
        _fail(w, f, "expected a non-empty list of texts")
    return v


def check_prompts(value: Any, where: str, field: str = "prompts") -> None:
    """The prompts of the linear head's prompt prior (pipeline.heads.prompts): where they came from and their texts."""
    _fields(value, where, field, {"source": _str, "positive": _texts, "negative": _texts})


def check_train(value: Any, where: str, field: str = "train") -> None:
    _fields(value, where, field, {"source": _str, "hash": _str, "size": _count, "budget": _opt_count, "seed": _count})


def check_metrics(value: Any, where: str, field: str = "metrics") -> None:
    _fields(value, where, field, {"test": _opt_dict, "test_hash": _opt_str, "test_size": _count})


def check_prior(value: Any, where: str, field: str = "prior") -> None:
    """The training positive rate (strictly between 0 and 1) and the Platt recalibration, if any."""
    _fields(value, where, field, {"train": _number}, {"calibration": _opt_dict, "confusion": _opt_dict})
    if not 0 < value["train"] < 1:
        _fail(where, f"{field}.train", f"is {value['train']}, expected a positive rate strictly between 0 and 1")
    if value.get("calibration") is not None:
        _fields(value["calibration"], where, f"{field}.calibration", {"a": _number, "b": _number})
    if value.get("confusion") is not None:
        _fields(value["confusion"], where, f"{field}.confusion",
                {"tpr": _number, "fpr": _number, "n_pos": _count, "n_neg": _count})


def check_shift(value: Any, where: str, field: str = "shift") -> None:
    """The stored sample of training vectors for the domain-shift check (:mod:`pipeline.predict.shift`)."""
    _fields(value, where, field, {"file": _str, "rows": _count, "of": _count})


def check_files(value: Any, where: str, field: str = "files") -> None:
    _typed(value, dict, where, field)
    for rel, digest in value.items():
        if rel.startswith("/") or ".." in rel.split("/"):
            _fail(where, f"{field}[{rel!r}]", "is not a path inside the bundle")
        _hex(64)(digest, where, f"{field}[{rel!r}]")


def _versions(value: Any, where: str, field: str) -> None:
    _typed(value, dict, where, field)
    for name, v in value.items():
        _typed(v, str, where, f"{field}.{name}", optional=True)


@dataclass(frozen=True)
class Section:
    """One top-level manifest key: its check and whether every manifest has it."""

    check: Callable[[Any, str, str], Any]
    required: bool = False


SECTIONS: dict[str, Section] = {
    "format_version": Section(_count, True),
    "encoder": Section(check_encoder, True),
    "head": Section(check_head, True),
    "label_names": Section(check_label_names, True),
    "train": Section(check_train, True),
    "metrics": Section(check_metrics, True),
    "files": Section(check_files, True),
    "created": Section(_str),
    "versions": Section(_versions),
    "prior": Section(check_prior),
    "shift": Section(check_shift),
    "finetune": Section(_dict),
    "self_train": Section(_dict),  # pipeline.unlabelled.self_train: teacher, settings, pseudo-label counts
    "unlabelled": Section(_dict),  # the unlabelled corpus a self-trained bundle used
    "prompts": Section(check_prompts),  # the prompts of the head's prompt prior; the head itself is plain
    "retarget": Section(_dict),  # pipeline.fit.retarget_bundle: the source bundle, target labels, what changed
    "digest": Section(_hex(64)),
    "signature": Section(_hex(64)),
}


def validate(manifest: Any, where: str) -> dict[str, Any]:
    """Check every section of ``manifest`` (from file ``where``); raise :class:`ManifestError` on the first
    problem, naming the field. Returns the manifest."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: not a JSON object; this is not a review-transfer bundle manifest.")
    unknown = sorted(set(manifest) - set(SECTIONS))
    if unknown:
        _fail(where, "the manifest", f"has unknown section(s) {unknown}")
    for name, section in SECTIONS.items():
        if name in manifest:
            section.check(manifest[name], where, name)
        elif section.required:
            raise ManifestError(f"{where}: lacks {name!r}; the bundle is incomplete: refit it.")
    return manifest


def encoder_spec(section: Mapping[str, Any], where: str) -> Any:
    """The :class:`~pipeline.encoders.spec.EncoderSpec` of a manifest's ``encoder`` section, with its recorded
    options (which override those in the spec string: they are the resolved values). An alias whose target moved
    reads as its newest earlier target (:func:`~pipeline.encoders.spec.recorded_candidates`)."""
    from pipeline.encoders.spec import SpecError, parse_spec, recorded_candidates

    try:
        spec = parse_spec(recorded_candidates(section["spec"])[0])
        options = dict(section.get("options") or {})
        parts = options.pop("parts", None)
        options.pop("source_options", None)  # how w2v-train read SOURCE: not an encoder option
        route_version(options.pop("route_version", None), spec)
        if parts is not None:
            if not spec.parts or not isinstance(parts, list) or len(parts) != len(spec.parts):
                raise SpecError(f"options.parts does not match the parts of {section['spec']!r}")
            return as_recorded(spec.with_part_options(parts))
        return as_recorded(spec.with_options(options))
    except (SpecError, TypeError, AttributeError) as e:
        raise ManifestError(f"{where}: encoder: {str(e).rstrip('.')} (from the bundle's manifest, not your command line); "
                            "restore the manifest or refit the bundle.") from None


def route_version(recorded: Any, spec: Any) -> int | None:
    """The route version a routed bundle was fitted under (its ``options.route_version``, else the version of the
    bundles from before it was recorded); None for any other encoder. Raises SpecError for one this code lacks."""
    from pipeline.encoders.language import CHECKS
    from pipeline.encoders.routed import UNRECORDED_VERSION
    from pipeline.encoders.spec import SpecError

    if not spec.route:
        if recorded is not None:
            raise SpecError(f"options.route_version is set, but {str(spec)!r} is not routed")
        return None
    if recorded is None:
        return UNRECORDED_VERSION
    if isinstance(recorded, bool) or recorded not in CHECKS:
        raise SpecError(f"options.route_version is {recorded!r:.20}, not one of {', '.join(map(str, CHECKS))}")
    return int(recorded)


def as_recorded(spec: Any) -> Any:
    """A bundle's :class:`~pipeline.encoders.spec.EncoderSpec` (options as recorded) with ``calibration=rt-a95``
    on each static int8 part that records no recipe: such bundles were fitted before recipes had names
    (:mod:`pipeline.encoders.calibration`)."""
    from dataclasses import replace

    from pipeline.encoders.calibration import LEGACY_RECIPE
    from pipeline.encoders.spec import OPTIONS

    if spec.parts:
        return replace(spec, parts=tuple(as_recorded(p) for p in spec.parts))
    options = spec.kwargs
    takes = any(o.kwarg == "calibration" for o in OPTIONS.get(spec.kind, {}).values())
    if takes and options.get("quantize") == "int8-static" and "calibration" not in options:
        return spec.with_options({"calibration": LEGACY_RECIPE})
    return spec


# ---------------------------------------------------------------------------------------------- build
def encoder_options(encoder: Any) -> dict[str, Any]:
    """``get_encoder`` keywords that rebuild ``encoder`` with the same fingerprint on another machine.

    Records the *resolved* precision and max length (``precision='auto'`` may resolve differently
    elsewhere), the backend, quantization and static int8 calibration of exported encoders (:mod:`pipeline.encoders.onnx`), the
    pooling where the user chooses it (sentence-transformers models bring their own) and how
    ``w2v-train:SOURCE`` read SOURCE; for a combined encoder (``A+B``), those of each part under ``parts``.
    """
    if getattr(encoder, "parts", None) is not None:
        routed = {"route_version": encoder.route_version} if getattr(encoder, "route_version", None) else {}
        return {"parts": [encoder_options(part) for part in encoder.parts], **routed}
    if hasattr(encoder, "bundle_options"):  # an encoder whose spec takes fewer keys (e.g. a ported model)
        return encoder.bundle_options()
    options = {k: getattr(encoder, k) for k in ("precision", "max_length", "long_text", "backend", "quantize", "calibration")
               if getattr(encoder, k, None) is not None}
    if getattr(encoder, "pooling", None) is not None and getattr(encoder, "library", None) != "sentence-transformers":
        options["pooling"] = encoder.pooling
    if getattr(encoder, "source_options", None):
        options["source_options"] = encoder.source_options
    return options


def encoder_sources(encoder: Any) -> list[str | None]:
    """What each part of ``encoder`` was read from, as its fingerprint names it: the sha256 of a word-vector
    file or of a model directory's files, or a package and version; None where there is no such thing.
    ``--encoder-path`` must give the same before anything is loaded (:func:`pipeline.bundle.trust.check_trusted`)."""
    found = []
    for part in getattr(encoder, "parts", None) or [encoder]:
        identity = getattr(part, "identity", None) or getattr(getattr(part, "vectors", None), "digest", None)
        found.append(identity if isinstance(identity, str) else None)
    return found


def build(*, encoder: Any, head: dict[str, Any], label_names: list[str], train: dict[str, Any],
          metrics: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A manifest (without the fields :meth:`Bundle.save` adds: files, versions, created, digest).

    ``encoder`` is the encoder object (its spec, fingerprint and rebuild options are recorded);
    ``sections`` are optional sections (``prior``, ``finetune``, ...), each known to :data:`SECTIONS`.
    """
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown manifest section(s) {unknown}; add them to pipeline.bundle.manifest.SECTIONS.")
    return {
        "encoder": {"spec": encoder.spec, "fingerprint": encoder.fingerprint, "options": encoder_options(encoder),
                    "sources": encoder_sources(encoder)},
        "head": {"class_weight": None, "search": None, "cv_accuracy": None, **head},
        "label_names": list(label_names),
        "train": train,
        "metrics": metrics,
        **{k: v for k, v in sections.items() if v is not None},
    }


def train_section(train: Any, budget: int | None, seed: int) -> dict[str, Any]:
    """The ``train`` section for a training :class:`~pipeline.data.dataset.Dataset`."""
    return {"source": train.name, "hash": train.fingerprint(), "size": len(train), "budget": budget, "seed": seed}


def metrics_section(metrics: dict[str, Any] | None, test: Any) -> dict[str, Any]:
    """The ``metrics`` section: scores on the test split ``test`` (a Dataset or None)."""
    return {"test": metrics, "test_hash": None if test is None else test.fingerprint(),
            "test_size": 0 if test is None else len(test)}


# ---------------------------------------------------------------------------------------------- seal
def _canonical(manifest: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k not in SEAL_KEYS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signing_key() -> bytes | None:
    """The HMAC key from ``$REVIEW_TRANSFER_SIGNING_KEY``, or None when unset. Set but empty (or only
    spaces) is a ManifestError: it would otherwise switch signing off without a word."""
    key = os.environ.get(SIGNING_KEY_ENV)
    if key is None:
        return None
    if not key.strip():
        raise ManifestError(f"${SIGNING_KEY_ENV} is set but empty: set it to your key, or unset it "
                            f"(`unset {SIGNING_KEY_ENV}`) to save and load bundles without signatures.")
    return key.encode("utf-8")


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its ``digest`` and, when a signing key is set, its ``signature``."""
    body = _canonical(manifest)
    sealed = {k: v for k, v in manifest.items() if k not in SEAL_KEYS}
    sealed["digest"] = hashlib.sha256(body).hexdigest()
    key = signing_key()
    if key is not None:
        sealed["signature"] = hmac.new(key, body, hashlib.sha256).hexdigest()
    return sealed


def check_seal(manifest: Mapping[str, Any], where: str) -> None:
    """Raise :class:`ManifestError` if the manifest changed since it was sealed, or, with a signing key
    set, if it is unsigned or signed with another key. A format-1 manifest (0.3.x) has no digest: it
    passes only without a signing key."""
    body = _canonical(manifest)
    key = signing_key()
    if key is not None:
        if "signature" not in manifest:
            raise ManifestError(f"{where}: the bundle is not signed, and ${SIGNING_KEY_ENV} is set: only signed "
                                "bundles load. Refit it with the key set, or unset the key if you trust it.")
        if not hmac.compare_digest(manifest["signature"], hmac.new(key, body, hashlib.sha256).hexdigest()):
            raise ManifestError(f"{where}: the signature does not match ${SIGNING_KEY_ENV}: the bundle was "
                                "signed with another key or changed since. Refusing to load it.")
    if "digest" in manifest:
        if manifest["digest"] != hashlib.sha256(body).hexdigest():
            raise ManifestError(f"{where}: changed since the bundle was saved (digest mismatch): label names, head "
                                "or encoder may have been edited. Restore the original or refit the bundle.")
    elif manifest.get("format_version", 0) >= 2:
        raise ManifestError(f"{where}: has no digest; the manifest was edited or damaged: refit the bundle.")
