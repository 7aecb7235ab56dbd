"""A routed head (:mod:`pipeline.heads.routed`) as plain arrays: two :class:`~pipeline.heads.linear.LinearHead`,
one per language side, in one ``head.npz`` (keys ``english.*`` and ``other.*``, the columns each side reads
and the flag column), so a routed bundle predicts with numpy alone too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.heads.linear import LinearHead, LinearHeadError, from_arrays, from_estimator, read_arrays

SIDES = ("english", "other")


def routed_proba(X: np.ndarray, flag: int, english: tuple[Any, Sequence[int]],
                 other: tuple[Any, Sequence[int]]) -> np.ndarray:
    """``(n, 2)`` class probabilities of the rows of ``X``: those whose column ``flag`` is 1 from the English
    ``(head, columns)``, the rest from the other side's; each head sees only its own columns."""
    X = np.asarray(X)
    on_english = X[:, flag] >= 0.5
    out = np.empty((len(X), 2), dtype=np.float64)
    for rows, (head, cols) in ((on_english, english), (~on_english, other)):
        if rows.any():
            out[rows] = head.predict_proba(X[rows][:, list(cols)])
    return out


def mostly_english(X: np.ndarray, flag: int) -> bool:
    """Whether at least half the rows of ``X`` go to the English side (their column ``flag`` is 1); True for none."""
    X = np.asarray(X)
    return not len(X) or float(np.mean(X[:, flag] >= 0.5)) >= 0.5


@dataclass(frozen=True, eq=False)
class RoutedLinearHead:
    """``english`` predicts rows whose column ``flag`` is 1 from columns ``english_cols``, ``other`` the rest."""

    english: LinearHead
    other: LinearHead
    english_cols: np.ndarray
    other_cols: np.ndarray
    flag: int

    classes_ = np.array([0, 1])

    @property
    def name(self) -> str:
        return self.english.name

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` probabilities of class 0 and class 1, each row from the head of its side."""
        return routed_proba(X, self.flag, (self.english, self.english_cols), (self.other, self.other_cols))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def save(self, path: str | Path) -> None:
        """Write both heads' arrays, the columns and the flag to ``path`` (no object arrays)."""
        arrays = {f"{side}.{k}": v for side in SIDES for k, v in getattr(self, side).arrays().items()}
        with open(path, "wb") as f:
            np.savez(f, **arrays, english_cols=self.english_cols, other_cols=self.other_cols, flag=np.int64(self.flag))

    @classmethod
    def from_arrays(cls, stored: dict[str, np.ndarray], name: str, path: Path) -> RoutedLinearHead:
        """The head :meth:`save` wrote, read from ``path`` and checked (each side must be head ``name``)."""
        heads = [from_arrays({k.partition(".")[2]: v for k, v in stored.items() if k.startswith(side + ".")}, name, path)
                 for side in SIDES]
        try:
            cols = [np.asarray(stored[k], dtype=np.int64).reshape(-1) for k in ("english_cols", "other_cols")]
            flag = int(stored["flag"])
        except (KeyError, TypeError, ValueError) as e:
            raise LinearHeadError(f"{path}: not a routed head file ({type(e).__name__}: {e}); refit the bundle.") from None
        if any(len(c) != len(h.coef) or (c < 0).any() or (c >= flag).any() for c, h in zip(cols, heads)):
            raise LinearHeadError(f"{path}: the columns do not match the heads' sizes; refit the bundle.")
        return cls(heads[0], heads[1], cols[0], cols[1], flag)


def load(path: Path, name: str) -> LinearHead | RoutedLinearHead:
    """The head in ``head.npz`` at ``path``: a :class:`RoutedLinearHead` when it holds one, else a
    :class:`~pipeline.heads.linear.LinearHead`; :class:`LinearHeadError` unless well formed and head ``name``."""
    stored = read_arrays(path)
    return RoutedLinearHead.from_arrays(stored, name, path) if "flag" in stored else from_arrays(stored, name, path)


def from_routed(estimator: Any, name: str, identity: Callable[[Any], Sequence[str]],
                X_check: np.ndarray) -> RoutedLinearHead | None:
    """The :class:`RoutedLinearHead` of a fitted :class:`~pipeline.heads.routed.RoutedClassifier` (``identity``
    names a head's steps), or None when either side is not linear or does not reproduce its probabilities on
    its columns of ``X_check``."""
    cols = [np.asarray(estimator.english_cols, dtype=np.int64), np.asarray(estimator.other_cols, dtype=np.int64)]
    heads = [from_estimator(side, name, identity(side), np.asarray(X_check)[:, c])
             for side, c in zip((estimator.english_, estimator.other_), cols)]
    if heads[0] is None or heads[1] is None:
        return None
    return RoutedLinearHead(heads[0], heads[1], cols[0], cols[1], int(estimator.flag))
