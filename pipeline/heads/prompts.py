"""Sentiment prompts: a prior for the linear heads that the encoder gives without labels.

An encoder places "I loved it." and "I hated it." apart along a direction ``u`` that already sorts
reviews by sentiment: on RT's validation split, scoring texts by it alone (no labels) is right on 69%
(MiniLM) and 79% (mpnet). A linear head fitted on a few labels is pulled toward that direction by
stretching the rows along it before the fit, ``X' = X + (γ - 1)(X·u)u``: an L2 penalty on ``X'`` makes
weight along ``u`` ``γ²`` times cheaper, which regularises the head toward the prompt direction instead
of toward zero. The stretch is linear, so the fitted coefficients fold back onto the rows as they are
(``w = w' + (γ - 1)(u·w')u``, see :func:`fold`): the saved head is the plain scikit-learn model it
always was and ``predict`` needs no prompts.

``γ² = 1 + κ / sd²``, where ``sd`` is the training rows' spread along ``u`` and ``κ = min(κ_max, c / n)``
falls with the number of labels ``n``: on a few labels the prompts carry the fit, on many the labels
do. ``κ_max`` and ``c`` were chosen on a validation split of RT's pool and on development targets
that are not RT (Amazon and Yelp review sentences), never on RT's test split; see docs/benchmarks/prompts.md.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError

POSITIVE = ("It was great.", "I loved it.", "Excellent, highly recommended.", "A wonderful experience.", "Good.")
NEGATIVE = ("It was terrible.", "I hated it.", "Awful, not recommended.", "A horrible experience.", "Bad.")
KAPPA_MAX = 0.3  # the stretch's strength κ on the fewest labels
KAPPA_LABELS = 6.0  # κ = KAPPA_LABELS / n above n = 20 labels: the prompts weigh less as labels accumulate


@dataclass(frozen=True)
class Prompts:
    """Positive and negative example texts, and where they came from (``"default"`` or a file)."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    source: str = "default"

    @property
    def texts(self) -> list[str]:
        """Every prompt, positive ones first (the order :func:`direction` expects)."""
        return [*self.positive, *self.negative]

    def record(self) -> dict[str, Any]:
        """The prompts as the manifest records them."""
        return {"source": self.source, "positive": list(self.positive), "negative": list(self.negative)}


DEFAULT = Prompts(POSITIVE, NEGATIVE)
ZERO_PROMPT = "a prompt encodes to a zero vector (no word the encoder knows)"
SAME_MEAN = "the positive and negative prompts encode to the same mean vector"


class PromptsUnreadable(OptionError):
    """The prompts give an encoder no direction: one encodes to zero, or both sides to one mean."""


def resolve_prompts(value: str | None) -> Prompts | None:
    """``--prompts``: ``default`` (or ``None``) is :data:`DEFAULT`, ``none`` switches the prior off, and
    anything else is a file read by :func:`read_prompts`."""
    if value is None or value == "default":
        return DEFAULT
    if value == "none":
        return None
    return read_prompts(value)


def read_prompts(path: str | Path) -> Prompts:
    """Prompts from a text file, one per line: ``+ text`` for a positive one, ``- text`` for a negative
    one; blank lines and lines starting with ``#`` are skipped. At least one of each is needed."""
    path = Path(path)
    if not path.is_file():
        raise OptionError(f"--prompts {path}: no such file. Give a file of '+ text' and '- text' lines, "
                          "'default' or 'none'.")
    positive: list[str] = []
    negative: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sign, text = line[0], line[1:].strip()
        if sign not in "+-" or not text:
            raise OptionError(f"{path}, line {number}: {line[:60]!r} is not a prompt; start it with '+ ' "
                              "(positive) or '- ' (negative), followed by the text.")
        (positive if sign == "+" else negative).append(text)
    if not positive or not negative:
        raise OptionError(f"{path}: has {len(positive)} positive and {len(negative)} negative prompts; "
                          "give at least one of each ('+ text' and '- text' lines).")
    return Prompts(tuple(positive), tuple(negative), str(path))


def direction(vectors: np.ndarray, n_positive: int) -> np.ndarray:
    """The unit prompt direction: the mean of the L2-normalised positive prompt vectors (the first
    ``n_positive`` rows of ``vectors``) minus that of the negative ones."""
    V = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise PromptsUnreadable(f"{ZERO_PROMPT}; reword it or use --prompts none.")
    V = V / norms
    u = V[:n_positive].mean(axis=0) - V[n_positive:].mean(axis=0)
    size = float(np.linalg.norm(u))
    if size < 1e-6:
        raise PromptsUnreadable(f"{SAME_MEAN}; make them differ, in words the encoder knows, or use --prompts none.")
    return u / size


def encoded_direction(prompts: Prompts, encoder: Any, cache_dir: str | Path) -> Any:
    """:func:`direction` of ``prompts`` under ``encoder``, their vectors read from (or added to) the cache;
    for a routed encoder (``E|O``) a pair, the direction of each side in its own columns. ``None``, with one
    warning, where the default English prompts give no direction (word vectors trained on reviews in another
    language know none of their words): the heads then fit without the prior, as with ``--prompts none``."""
    from pipeline.encoders.routed import layout_of
    from pipeline.store.cache import EmbeddingCache

    V = EmbeddingCache(cache_dir).vectors(encoder, prompts.texts, check_language=False)  # not the user's texts
    try:
        return directions(V, len(prompts.positive), layout_of(encoder))
    except PromptsUnreadable as error:
        if prompts.source != DEFAULT.source:
            raise
        reason = ZERO_PROMPT if str(error).startswith(ZERO_PROMPT) else SAME_MEAN
        warnings.warn(f"{encoder.spec}: under the default English prompts {reason}, so its heads fit without the "
                      "prompt prior. Give prompts in your reviews' language with --prompts FILE ('+ text' and "
                      "'- text' lines; benchmarks/prompts/ holds Korean, Chinese, Spanish and French ones), or "
                      "--prompts none.", stacklevel=2)
        return None


def directions(vectors: np.ndarray, n_positive: int, layout: Any = None) -> Any:
    """:func:`direction` of prompt ``vectors``; with a routed encoder's ``layout``, the pair of each side's."""
    if layout is None:
        return direction(vectors, n_positive)
    return tuple(direction(vectors[:, list(cols)], n_positive) for cols in (layout.english, layout.other))


def prompt_strength() -> dict[str, Any]:
    """How strongly the prompts pull a head, as a study records it: runs fitted at another strength don't mix."""
    return {"kappa_max": KAPPA_MAX, "kappa_labels": KAPPA_LABELS, "formula": f"min({KAPPA_MAX:g}, {KAPPA_LABELS:g}/n)"}


def kappa(n_labels: int) -> float:
    """The stretch's strength for ``n_labels`` training labels: ``min(KAPPA_MAX, KAPPA_LABELS / n)``."""
    return min(KAPPA_MAX, KAPPA_LABELS / max(n_labels, 1))


def stretch_factor(X: np.ndarray, u: np.ndarray, n_labels: int) -> float:
    """``γ = sqrt(1 + κ / sd²)`` for rows ``X``, whose spread along ``u`` is ``sd`` (labels unused)."""
    sd = float(np.std(X @ u))
    return float(np.sqrt(1.0 + kappa(n_labels) / max(sd, 1e-6) ** 2))


def stretch(X: np.ndarray, u: np.ndarray, gamma: float) -> np.ndarray:
    """``X`` stretched by ``gamma`` along the unit direction ``u``: ``X + (γ - 1)(X·u)u``."""
    return (X + (gamma - 1.0) * np.outer(X @ u, u)).astype(X.dtype, copy=False)


def fold(classifier: Any, u: np.ndarray, gamma: float) -> None:
    """Fold the stretch into a fitted linear ``classifier`` (one with ``coef_``, or a wrapper of one in
    ``estimator_``), in place: on unstretched rows it then decides exactly as it did on stretched ones."""
    linear = getattr(classifier, "estimator_", classifier)
    coef = np.asarray(linear.coef_, dtype=np.float64)
    folded = coef + (gamma - 1.0) * np.outer(coef @ u, u)
    linear.coef_ = folded.astype(linear.coef_.dtype).reshape(linear.coef_.shape)


def agrees(classifier: Any, u: np.ndarray) -> bool:
    """Whether a fitted linear ``classifier`` (or a wrapper of one) weighs ``u`` toward the positive class.

    The stretch makes weight along ``u`` cheap in either sign, so a sample whose labels run against the
    prompts would be pulled the wrong way harder; such a head is refitted without the prior.
    """
    linear = getattr(classifier, "estimator_", classifier)
    return float(np.asarray(linear.coef_, dtype=np.float64).ravel() @ u) > 0


def describe(gamma: float, n_labels: int) -> str:
    """The search-line note of a head fitted with the prompt prior."""
    return f"; prompt prior (κ {kappa(n_labels):.3g}, stretch ×{gamma:.2f})"

