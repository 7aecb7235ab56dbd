"""Plain-text tables and score summaries for the terminal: what ``fit``, ``evaluate`` and ``finetune``
print (and the benchmarks reuse). Formatting only; nothing here fits or scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.intervals import Z95

if TYPE_CHECKING:
    from pipeline.bundle.bundle import Bundle


def format_fit_table(bundles: Sequence[Bundle]) -> str:
    """Plain-text table of fitted heads: head, params, CV accuracy of the chosen point ± its sd over the
    validation folds, test accuracy, macro-F1, ROC-AUC, fit seconds."""
    header = ("head", "params", "CV accuracy ± sd", "accuracy", "macro-F1", "ROC-AUC", "fit s")
    rows = []
    for b in bundles:
        m = b.manifest["metrics"]["test"] or {}
        head = b.manifest["head"]
        params = _params(head["params"])
        rows.append((head["name"], params, _fmt_cv(head.get("cv_accuracy"), head.get("cv_sd")),
                     *(_fmt(m.get(k)) for k in ("accuracy", "macro_f1", "roc_auc")), f"{head['fit_seconds']:.1f}"))
    return format_table(header, rows)


def _params(params: dict[str, Any]) -> str:
    """``C=1.62``; a nested head's (a routed bundle's other-language head) as ``other: C=1``, not a dict."""
    return ", ".join(f"{k}: {_params(v)}" if isinstance(v, dict) else f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def _fmt_cv(mean: float | None, sd: float | None) -> str:
    """``0.715 ± 0.032``; ``-`` when nothing was searched (defaults, or a fine-tuned head)."""
    if mean is None:
        return "-"
    return f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cells(text: str) -> int:
    """Terminal cells ``text`` takes: two for a wide character (Hangul, Han, kana, fullwidth), one otherwise."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` terminal cells (on the left with ``right``)."""
    fill = " " * max(0, width - _cells(text))
    return fill + text if right else text + fill


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def under_majority_note(scores: dict[str, Any]) -> str | None:
    """A warning when ``scores``' accuracy is under its majority rate, else ``None``."""
    if scores.get("majority_rate") is None or scores["accuracy"] >= scores["majority_rate"]:
        return None
    return ("  WARNING: accuracy is under the majority rate. If the texts differ from the training texts, "
            "pass their known positive rate (--prior) or label a few and `review-transfer retarget` the bundle")


SHARE_GAP = 0.10  # the bundle's share of positive calls this far from the labels' rate (and beyond chance): say so


def share_note(scores: dict[str, Any]) -> str | None:
    """One line when the share of texts ``scores``' bundle calls positive is :data:`SHARE_GAP` or more from the
    labels' positive rate, beyond chance (the false positives against the false negatives, McNemar's z over
    1.96): its threshold does not suit the site, and a known rate or a retarget would move it. Else ``None``."""
    from pipeline.predict.metrics import mcnemar_z

    (tn, fp), (fn, tp) = scores["confusion_matrix"]
    n = tn + fp + fn + tp
    called, rate = (fp + tp) / n, (fn + tp) / n
    if abs(called - rate) < SHARE_GAP or abs(mcnemar_z(fp, fn)) <= Z95:
        return None
    adapted = (scores.get("prior") or {}).get("target")
    fix = (f"Re-weighted to a positive rate of {adapted:.2f}, it still does not suit this site: "
           if adapted is not None else f"Pass the site's rate (--prior {rate:.2f}), or ")
    return (f"WARNING the bundle calls {called:.0%} of these texts positive and their labels say {rate:.0%}, more "
            f"than chance: its threshold does not suit this site. {fix}`review-transfer retarget` the bundle with "
            "16-32 of its texts labelled at random and the rest as --unlabelled (docs/guide/retarget.md).")


def format_scores(scores: dict[str, Any], label_names: Sequence[str]) -> str:
    """Human-readable scores with a labelled confusion matrix, its rows the true classes and its columns the
    predicted ones, both named as the scored data name them (``scores["label_names"]["true"]``, where that is
    recorded), with one line under it naming the bundle's own names (``label_names``) where they differ."""
    neg, pos = (scores.get("label_names") or {}).get("true") or label_names
    (tn, fp), (fn, tp) = scores["confusion_matrix"]
    lines = [f"{k:<9} {_fmt(scores[k])}" for k in ("accuracy", "macro_f1", "roc_auc", "log_loss", "ece")]
    if "balanced_accuracy" in scores:
        lines[1:1] = [f"balanced  {_fmt(scores['balanced_accuracy'])}  (mean of the two classes' recalls)",
                      f"majority  {_fmt(scores['majority_rate'])}  (always the commoner class)"
                      + (under_majority_note(scores) or "")]
    corner = "true \\ pred"
    first = max(_cells(corner), _cells(neg), _cells(pos))
    width = max(_cells(neg), _cells(pos), 6)
    lines += [
        f"n         {scores['n']}",
        "",
        f"{_pad(corner, first)}  {_pad(neg, width, right=True)}  {_pad(pos, width, right=True)}",
        f"{_pad(neg, first)}  {tn:>{width}}  {fp:>{width}}",
        f"{_pad(pos, first)}  {fn:>{width}}  {tp:>{width}}",
    ]
    if (neg, pos) != tuple(label_names):
        lines.append(f"(the bundle's {label_names[0]!r} read as {neg!r}, its {label_names[1]!r} as {pos!r})")
    gap = share_note(scores)
    if gap:
        lines += ["", gap]
    if "prior" in scores:
        pr = scores["prior"]
        used = "not adapted" if pr["target"] is None else f"{'estimated' if pr['estimated'] else 'given'} {pr['target']:.3f}"
        lines += ["", f"positive rate: training {pr['train']:.3f}, {used}, true {pr['true']:.3f}; "
                      f"accuracy without adaptation {pr['accuracy_unadapted']:.3f}", pr["line"]]
    shift = scores.get("domain_shift")
    if shift:
        lines += ["", shift.get("line") or f"domain shift: not checked ({shift['reason']})"]
    return "\n".join(lines)
