"""Levers that ``bench_indomain.py`` weighs beside the dense head: word evidence, label spreading, the prior's strength.

- :class:`Words`: NBSVM-style word features (Wang & Manning 2012): binary unigram and bigram counts over a
  vocabulary read from the training part's texts (labels unused), each scaled by its log-count ratio on the
  labelled sample, then an L2 logistic regression (:func:`nb_log_odds`).
- :func:`spread_student`: label spreading on a cosine kNN graph over the labelled sample and the pool's other
  texts, started from the prompt-prior head's probabilities, whose surest texts then train a student as
  ``fit --self-train``'s do.
- :func:`prompt_strength`: the prompt prior's ``KAPPA_MAX`` and ``KAPPA_LABELS`` set for the length of a block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from scipy import sparse

WORD_PATTERN = r"(?u)\b\w+\b|[!?]"  # words (and "n't"'s pieces) plus ! and ?, as in NBSVM's tokenisation


class Words:
    """Binary unigram and bigram counts of ``texts`` under a vocabulary read from ``vocabulary_texts``."""

    def __init__(self, vocabulary_texts: list[str], texts: list[str]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        vectorizer = CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=WORD_PATTERN)
        vectorizer.fit(vocabulary_texts)
        self.counts = vectorizer.transform(texts).tocsr().astype(np.float64)

    def ratio(self, idx: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
        """Each feature's log-count ratio ``log((p/|p|₁) / (q/|q|₁))`` on rows ``idx`` with labels ``y``."""
        W = self.counts[idx]
        p = alpha + np.asarray(W[y == 1].sum(0)).ravel()
        q = alpha + np.asarray(W[y == 0].sum(0)).ravel()
        return np.log((p / p.sum()) / (q / q.sum()))


def nb_log_odds(words: Words, idx: np.ndarray, y: np.ndarray, rows: slice, C: float = 1.0) -> np.ndarray:
    """Log-odds of positive on ``rows`` of an NB-scaled logistic regression fitted on rows ``idx``, labels ``y``."""
    from sklearn.linear_model import LogisticRegression

    R = words.counts.multiply(words.ratio(idx, y)).tocsr()
    return LogisticRegression(C=C, max_iter=3000).fit(R[idx], y).decision_function(R[rows])


def knn_graph(Z: np.ndarray, k: int) -> sparse.csr_matrix:
    """The symmetric, degree-normalised cosine kNN graph ``D^-1/2 W D^-1/2`` of unit rows ``Z`` (weights cos³)."""
    S = Z @ Z.T
    np.fill_diagonal(S, -np.inf)
    near = np.argpartition(-S, k, axis=1)[:, :k].ravel()
    rows = np.repeat(np.arange(len(Z)), k)
    W = sparse.csr_matrix((np.maximum(S[rows, near], 0) ** 3, (rows, near)), shape=(len(Z), len(Z)))
    W = W.maximum(W.T)
    d = 1 / np.sqrt(np.maximum(np.asarray(W.sum(1)).ravel(), 1e-12))
    return sparse.diags(d) @ W @ sparse.diags(d)


def spread(S: sparse.csr_matrix, start: np.ndarray, alpha: float = 0.9, iterations: int = 30) -> np.ndarray:
    """Label spreading (Zhou et al. 2004): ``F ← α S F + (1 - α) F₀`` from ``F₀ = start``."""
    F = start.copy()
    for _ in range(iterations):
        F = alpha * (S @ F) + (1 - alpha) * start
    return F


def spread_student(teacher, X_labelled: np.ndarray, y: np.ndarray, X_rest: np.ndarray, *, k: int = 10,
                   prior_weight: float = 0.5, seed: int = 0):
    """A logreg student on the labels and the surest half of ``X_rest`` as labelled by spreading over the kNN
    graph of both, from the labels (±1) and ``prior_weight`` × the teacher's ``2p - 1`` on the other texts."""
    from pipeline.heads.registry import build_head
    from pipeline.unlabelled.self_train import SelfTrainSettings, select_pseudo

    p = teacher.estimator.predict_proba(X_rest)[:, 1]
    F = spread(knn_graph(np.vstack([X_labelled, X_rest]), k), np.concatenate([2.0 * y - 1, prior_weight * (2 * p - 1)]))
    f = F[len(y):]
    sel, pseudo = select_pseudo(1 / (1 + np.exp(-3 * f / (np.std(f) + 1e-12))), SelfTrainSettings(), seed=seed)
    student = build_head("logreg", teacher.params, seed=seed, n_train=len(y) + len(sel), unit=True)
    return student.fit(np.vstack([X_labelled, X_rest[sel]]), np.concatenate([y, pseudo]))


@contextlib.contextmanager
def prompt_strength(kappa_max: float, kappa_labels: float) -> Iterator[None]:
    """The prompt prior's ``κ = min(kappa_max, kappa_labels / n)`` inside the block, its defaults after."""
    from pipeline.heads import prompts

    saved = prompts.KAPPA_MAX, prompts.KAPPA_LABELS
    prompts.KAPPA_MAX, prompts.KAPPA_LABELS = kappa_max, kappa_labels
    try:
        yield
    finally:
        prompts.KAPPA_MAX, prompts.KAPPA_LABELS = saved
