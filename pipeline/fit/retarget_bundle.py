"""``review-transfer retarget``: a new bundle from a loaded one and a few labelled texts of another site.

The new bundle keeps the source's encoder (its vectors come through the same cache) and holds a plain
logistic head (:mod:`pipeline.fit.retarget`). Its manifest says what changed: the ``retarget`` section names
the source bundle (path, digest, what it was trained on), how many target labels and unlabelled texts
were used, the slope, the departure from the source direction and the positive rate with where it came
from; ``train`` is the labelled target sample; ``prior`` records the target rate the head is centred on
and an out-of-fold confusion on the target labels, so ``--adapt-prior`` works on the new site; the
domain-shift sample is of target texts, so ``predict`` warns when texts differ from *this* site.
Where target rows are held back, the summary scores both heads on them and says whether the new one is
worse than the source beyond chance (:func:`compare_held_out`), as a skewed draw of a few labels can make it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bundle.bundle import BUNDLED_ENCODER_SPEC, ENCODER_DIR, Bundle
from pipeline.data.dataset import Dataset
from pipeline.predict.metrics import mcnemar_z
from pipeline.predict.predict import BundleLoad
from pipeline.encoders.routed import layout_of, own_sides
from pipeline.fit.retarget_side import Side, widened
from pipeline.fit.retarget import (RetargetError, RetargetSettings, Retargeted, SourceHead, draw_labels,
                                   fit_recentred, fit_retargeted)

OOF_FOLDS = 5  # out-of-fold refits for the new bundle's confusion (fewer when a class has fewer labels)
WORSE_Z = 1.96  # the new head is worse than the source on held-out rows when McNemar's z exceeds this


@dataclass(frozen=True)
class TargetData:
    """The target texts a retarget learns from: labelled rows, the rows held back to score it (when the
    labels were drawn from a larger set), unlabelled texts, and how the labels were chosen."""

    labelled: Dataset
    held_out: Dataset | None = None
    unlabelled: list[str] = field(default_factory=list)
    sample: str = "given"  # "given": every row of TARGET; "drawn": --n-labels N of them; "none": no labels

    @classmethod
    def of(cls, target: Dataset | None, labels: int | None, seed: int,
           unlabelled: dict[str, list[str]] | None = None) -> TargetData:
        """All of ``target`` labelled, or ``labels`` of its rows (:func:`pipeline.fit.retarget.draw_labels`) with
        the rest held out (``labels`` 0 or no ``target``: none labelled); ``unlabelled`` texts (by source) without
        the labelled ones and repeats."""
        if target is None or labels == 0:
            labelled = Dataset([], np.zeros(0, dtype=np.int64), name=target.name if target is not None else "")
            held, sample = target, "none"
        elif labels is None or labels == len(target):
            labelled, held, sample = target, None, "given"
        else:
            idx = draw_labels(target, labels, seed)
            labelled, sample = target.subset(idx), "drawn"
            held = target.subset(np.setdiff1d(np.arange(len(target)), idx))
        seen = set(labelled.texts)
        texts = [t for t in dict.fromkeys(t for texts in (unlabelled or {}).values() for t in texts) if t not in seen]
        return cls(labelled, held, texts, sample)


def retarget(bundle: Bundle, data: TargetData, settings: RetargetSettings) -> tuple[Bundle, dict[str, Any]]:
    """An unsaved bundle: ``bundle``'s head retargeted to ``data``; and a summary (the shift check of the
    target texts against the source, the held-out scores of source and new head)."""
    from pipeline.bundle.manifest import build, metrics_section, train_section
    from pipeline.predict.metrics import evaluate
    from pipeline.predict.predict import domain_shift
    from pipeline.bundle.bundle import SAMPLE_FILE
    from pipeline.predict.shift import keep_sample

    if bundle.path is None:
        raise RetargetError("retarget takes a saved bundle (its manifest is the record of the source).")
    lab, held = data.labelled, data.held_out
    texts = lab.texts + data.unlabelled + (held.texts if held is not None else [])
    wide = widened(bundle.get_encoder()) if settings.second_view else None
    X = _embed(bundle, wide, texts)
    X_lab, X_unl = X[: len(lab)], X[len(lab): len(lab) + len(data.unlabelled)]
    X_held = X[len(lab) + len(data.unlabelled):]
    side = Side.of(bundle, X_lab if len(lab) else X_unl)  # a routed bundle: the side most target texts go to
    source = SourceHead.of(side.head, bundle.manifest["head"]["name"])
    viewed = side.second_view(source, bundle.manifest["head"]["name"], X[: len(lab) + len(data.unlabelled)]) \
        if wide is not None else None
    first = source  # the head the bundle's prior model describes
    if viewed is not None:  # English texts read the other side's encoder too; the source score is both heads'
        side, source = viewed
    y, S_lab, S_unl = lab.labels[side.rows(X_lab)], side.take(X_lab), side.take(X_unl)
    summed = None
    if len(lab):
        _check_side(side, len(y), len(lab))
        fitted = fit_retargeted(source, S_lab, y, S_unl, settings)
    else:
        from pipeline.predict.prior import PriorModel

        # the recorded prior model describes the source's (English) head's scores, not the other side's
        model = PriorModel.from_manifest(bundle.manifest) if bundle.manifest.get("prior") and side.english else None
        # a bundle fitted with English texts read by both encoders (E+O|O) has both views already: its sum's own
        # first head reads the rate with the other, as a widened E|O's does (its prior model describes the sum)
        summed = side.first_view(bundle.manifest["head"]["name"]) if viewed is None and settings.second_view else None
        fitted = fit_recentred(source, S_unl, settings, model, first if viewed is not None else summed,
                               sum_prior=summed is not None)
    if side.routed:
        two_views = wide.spec if viewed is not None else bundle.encoder_spec if summed is not None else None
        fitted.record["routed_side"] = {"adapted": side.name, "left_out_labels": len(lab) - len(y),
                                        "left_out_unlabelled": len(X_unl) - len(S_unl), "second_view": two_views}
    estimator = side.estimator(fitted.estimator(), X.shape[1])
    seen = X[: len(lab) + len(data.unlabelled)]
    # the source's shift sample holds no other-side columns for English texts: compare the target's alike
    summary: dict[str, Any] = {"domain_shift": domain_shift(bundle, seen if wide is None else
                                                            own_sides(seen, layout_of(bundle.get_encoder())))}
    metrics = None
    if held is not None and len(held):
        p_new = estimator.predict_proba(X_held)[:, 1] if side.routed else fitted.proba(X_held)
        p_source = bundle.head.predict_proba(X_held)
        metrics = evaluate(held.labels, p_new)
        summary["held_out"] = {"n": len(held), "retargeted": metrics, "source": evaluate(held.labels, p_source),
                               "rate": float(np.mean(held.labels)),
                               "versus_source": compare_held_out(held.labels, p_new, p_source[:, 1])}
    sample = keep_sample(np.vstack([X_lab, X_unl]), settings.seed)
    encoder = wide if viewed is not None else bundle.get_encoder()
    manifest = build(
        encoder=encoder,
        head={"name": "logreg", "params": {"strength": fitted.record["strength"]},
              "search": f"retargeted from {bundle.path.name} on {len(lab)} target labels and {len(X_unl)} unlabelled texts",
              "fit_seconds": fitted.record["seconds"]},
        label_names=list(lab.label_names if len(lab) else bundle.manifest["label_names"]),
        train=train_section(lab, len(lab) if data.sample == "drawn" else None, settings.seed),
        metrics=metrics_section(metrics, held),
        prior=_prior_model(source, S_lab, y, S_unl, settings, fitted).to_dict(),
        shift={"file": SAMPLE_FILE, "rows": len(sample), "of": len(X_lab) + len(X_unl)},
        retarget={"source": _source_record(bundle), "sample": data.sample, **fitted.record,
                  **({"held_out": _held_out_record(summary["held_out"])} if "held_out" in summary else {})},
    )
    manifest["encoder"] = dict(bundle.manifest["encoder"])  # the source's, as recorded (its spec may be st:encoder)
    if encoder is wide:  # the same parts and options, English texts reading both sides
        manifest["encoder"].update(spec=wide.spec, fingerprint=wide.fingerprint)
    new = Bundle(estimator, manifest, cache_dir=bundle.cache_dir, encoder=encoder, shift_sample=sample,
                 trust=bundle.trust)
    return new, summary


def _embed(bundle: Bundle, encoder: Any, texts: list[str]) -> np.ndarray:
    """``bundle.embed(texts)``, or with ``encoder`` (its widened encoder, :func:`~pipeline.fit.retarget_side.widened`)
    the same through that encoder, the source bundle left as it is."""
    if encoder is None:
        return bundle.embed(texts)
    from copy import copy

    view = copy(bundle)
    view.encoder = encoder
    return view.embed(texts)


def _check_side(side: Side, n_side: int, n: int) -> None:
    """A routed bundle's adapted side needs labels of its own: say so when fewer than two of the ``n`` are."""
    if side.routed and n_side < 2:
        raise RetargetError(f"this bundle routes texts by language (encoder E|O) and retarget adapts the side most "
                            f"target texts go to, its {side.name} side, but {n_side} of the {n} target labels are "
                            f"texts of that side. Label more of the site's texts, or retarget a bundle fitted on one "
                            "encoder alone.")


def compare_held_out(y: np.ndarray, p_new: np.ndarray, p_source: np.ndarray) -> dict[str, Any]:
    """The new and the source head's calls (P(positive) at 0.5) of held-out rows with 0/1 labels ``y``, paired:
    the rows only the new one gets right, those only the source gets right, and ``worse``: the source's lead
    beyond chance (McNemar's z over :data:`WORSE_Z`)."""
    new_right, source_right = (p_new >= 0.5) == (y == 1), (p_source >= 0.5) == (y == 1)
    new_only, source_only = int(np.sum(new_right & ~source_right)), int(np.sum(source_right & ~new_right))
    z = mcnemar_z(source_only, new_only)
    return {"new_only": new_only, "source_only": source_only, "z": round(float(z), 2), "worse": bool(z > WORSE_Z)}


def save(new: Bundle, source: Bundle, out: str | Path) -> Path:
    """Save ``new`` to ``out``; a source whose encoder lives inside it (fine-tuned weights) lends a copy."""
    encoder_dir = source.path / ENCODER_DIR if source.manifest["encoder"]["spec"] == BUNDLED_ENCODER_SPEC else None
    return new.save(out, encoder_dir=encoder_dir)


def _held_out_record(held: dict[str, Any]) -> dict[str, Any]:
    """The held-out comparison for the manifest: rows, their positive rate, both heads' accuracy, and the paired
    counts with ``worse`` (the new head under the source beyond chance: the summary's WARNING)."""
    return {"n": held["n"], "rate": held["rate"], "accuracy": held["retargeted"]["accuracy"],
            "source_accuracy": held["source"]["accuracy"], **held["versus_source"]}


def _source_record(bundle: Bundle) -> dict[str, Any]:
    m = bundle.manifest
    test = (m.get("metrics") or {}).get("test") or {}
    return {"bundle": str(bundle.path), "digest": m.get("digest"), "head": m["head"]["name"],
            "train": {k: m["train"][k] for k in ("source", "hash", "size")},
            "test_accuracy": test.get("accuracy"), "label_names": list(m["label_names"])}


def _prior_model(source: SourceHead, X: np.ndarray, y: np.ndarray, X_unl: np.ndarray, settings: RetargetSettings,
                 fitted: Retargeted) -> Any:
    """The new bundle's prior model: the target rate its head is centred on, and the confusion of
    out-of-fold retargets on the target labels (none when a class has fewer than two labels)."""
    from sklearn.model_selection import StratifiedKFold

    from pipeline.predict.prior import Confusion, PriorModel

    rate = fitted.record["prior"]["value"]
    k = min(OOF_FOLDS, int(np.bincount(y, minlength=2).min()))
    if k < 2:
        return PriorModel(rate)
    oof = np.zeros(len(y))
    for train, test in StratifiedKFold(k, shuffle=True, random_state=settings.seed).split(X, y):
        if min(np.bincount(y[train], minlength=2)) == 0:
            return PriorModel(rate)
        fold = fit_retargeted(source, X[train], y[train], X_unl, settings)
        oof[test] = fold.proba(X[test])
    return PriorModel(rate, confusion=Confusion.of(oof, y))


@dataclass(frozen=True)
class RetargetJob:
    """What ``retarget`` does: the bundle loaded by ``bundle`` carried to ``target`` (a labelled SOURCE read
    with ``source_options``), on ``labels`` of its rows drawn with ``settings.seed`` (None: every row) and the
    ``unlabelled`` texts of each ``--unlabelled`` source; the new bundle goes to ``out``."""

    bundle: BundleLoad
    target: str | None  # None: no labelled texts (only --unlabelled ones)
    out: str | Path
    settings: RetargetSettings
    labels: int | None = None
    unlabelled: dict[str, list[str]] = field(default_factory=dict)
    source_options: dict[str, Any] = field(default_factory=dict)


def retarget_source(job: RetargetJob) -> tuple[Bundle, dict[str, Any], Path]:
    """Run ``job``: the out directory checked, the target read once, the bundle loaded, retargeted and saved.
    Returns the new bundle, the summary of :func:`retarget` and the saved path."""
    from pipeline.bundle.bundle import check_out_dir
    from pipeline.data.dataset import load

    check_out_dir(job.out)
    if (job.target is None or job.labels == 0) and not job.unlabelled:
        raise RetargetError("with no target labels, retarget moves the bundle's threshold to the site's positive rate "
                            "among its texts: give them with --unlabelled SOURCE, or label 16-32 of them.")
    target = None if job.target is None else load(job.target, **job.source_options)
    data = TargetData.of(target, job.labels, job.settings.seed, job.unlabelled)
    source = job.bundle.load()
    new, summary = retarget(source, data, job.settings)
    return new, summary, save(new, source, job.out)
