"""Retarget: carry a bundle to a new site with a few of that site's labels.

A bundle fitted on one site often ranks another site's texts well and still sits its threshold in the
wrong place (a site that is 14% positive, scored by a head that assumes the training site's 58%). With
16-64 labelled target texts, :func:`~pipeline.fit.retarget_bundle.retarget` re-fits the bundle's linear head *toward the source head*
instead of from scratch. On the rows ``x`` the head sees (L2-normalised where it normalises), with the
source head's log-odds ``s(x) = w_s · x + b_s``, it fits

    log-odds(x) = α s(x) + Δ · x + b        minimising   Σ c_i logloss(t_i, ·) + λ |Δ|² / 2

``α`` (how far to trust the source's score here) is pulled gently toward 1 (:data:`SLOPE_WEIGHT`), ``b``
(where the threshold sits) is free, and ``Δ`` (a departure from the source direction) is penalised by
``λ`` (:attr:`RetargetSettings.strength`; by default chosen from :data:`STRENGTHS` by cross-validation on the
labels, :func:`choose_strength`), so a few labels re-scale and re-centre the source head and only many labels
turn it: where the source ranks the site well the labels keep its direction, where it ranks it poorly they turn it. Classes are weighted to equal total weight (``c_i``), so the fit assumes a positive
rate of one half; the intercept is then moved to the target's positive rate (``logit π``): ``--prior``
when the user knows it; else, with unlabelled target texts, the rate read from the source's ranking of
them (:mod:`pipeline.fit.retarget_rate`) where that may be trusted; else the labelled texts' own rate,
smoothed by one text of each class. On the development targets (docs/benchmarks/retarget.md) EM on the
unlabelled texts lost to the labels' rate (on 16-64 labels the retargeted head is not calibrated well
enough for it); the ranking, which needs no calibration, beat it. The result folds into a plain logistic head, ``w = α w_s + Δ``:
``predict`` needs nothing new.

With no labels at all (:func:`fit_recentred`) only the threshold moves: to the quantile of the unlabelled
target texts' source scores that matches their positive rate, ``--prior`` or the rate read from those texts
(:func:`pipeline.fit.retarget_rate.no_label_rate`: the median of the ranking's and the source bundle's EM and
BBSE readers, or with no readers recorded the ranking's where it splits into two classes; where two heads score
the texts, their joint mixture's); it stays where that rate confirms it, and with no rate at all it refuses and
says to give ``--prior`` or a few labels.

With ``self_train`` the retargeted head labels the unlabelled target texts, and a second fit learns from
the labels and the surest pseudo-labels (:func:`pipeline.unlabelled.self_train.select_pseudo`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline import OptionError, ReviewTransferError
from pipeline.data.dataset import Dataset

STRENGTH = 0.3  # λ when too few labels of a class to choose it by cross-validation
STRENGTHS = (0.1, 0.3, 1.0, 3.0, float("inf"))  # the λ grid that cross-validation on the labels chooses from
CV_FOLDS = 4  # folds of that cross-validation (fewer when a class has fewer labels)
SLOPE_WEIGHT = 1.0  # the Gaussian pull SLOPE_WEIGHT * (α - 1)² / 2 of the slope toward the source's own scale
DRAWS = 1000  # random draws of --n-labels N texts tried for one that holds both classes
PSEUDO_WEIGHT = 0.5  # weight of a pseudo-label relative to a label in the self-trained fit
EPS = 1e-6


class RetargetError(ReviewTransferError, ValueError):
    """A bundle cannot be retargeted as asked; the message says what to change."""


@dataclass(frozen=True)
class RetargetSettings:
    """How a head is retargeted: the pull toward the source head, a known positive rate, self-training."""

    strength: float | None = None  # λ; float("inf"): no departure from the source direction (re-scale, re-centre);
    # None: chosen from STRENGTHS by cross-validation on the labels (choose_strength)
    prior: float | None = None  # the target's positive rate when known (--prior)
    self_train: Any = None  # SelfTrainSettings, or None
    seed: int = 0
    # a routed bundle: English texts also read the other side (retarget_side), or with no labels an E+O|O bundle's
    # rate is read from its two heads (False: --one-view)
    second_view: bool = True

    def __post_init__(self) -> None:
        if self.strength is not None and not self.strength > 0:
            raise OptionError(f"--strength must be positive (inf: keep the source direction), got {self.strength}.")
        if self.prior is not None and not 0 < self.prior < 1:
            raise OptionError(f"--prior must be a positive rate strictly between 0 and 1, got {self.prior}.")


@dataclass(frozen=True)
class SourceHead:
    """A linear head's log-odds on the rows it sees: ``coef · x + intercept``, ``x`` L2-normalised first
    when ``normalizes``."""

    coef: np.ndarray
    intercept: float
    normalizes: bool

    @classmethod
    def of(cls, head: Any, name: str) -> SourceHead:
        """The source log-odds of a loaded bundle's head (a :class:`~pipeline.heads.linear.LinearHead`, or a
        scikit-learn head that converts to one), with any scaler and Platt sigmoid folded in."""
        from pipeline.heads.linear import LinearHead, from_estimator

        if hasattr(head, "other_cols"):  # a routed bundle (E|O): pipeline.fit.retarget_side picks a side
            raise RetargetError("retarget adapts one head; this is a routed head (a head per language side): adapt one "
                                "side's head (pipeline.fit.retarget_side.Side).")
        linear = head if isinstance(head, LinearHead) else None
        if linear is None:
            from pipeline.bundle.bundle import head_identity

            dim = int(getattr(head, "n_features_in_", 0) or 0)
            rows = np.random.default_rng(0).standard_normal((16, dim)) if dim else None
            linear = from_estimator(head, name, head_identity(head), rows) if rows is not None else None
        if linear is None:
            raise RetargetError(f"retarget adapts linear heads (logreg, linear-svm, ridge, sgd); this bundle's head "
                                f"is {name!r}. Fit the source bundle with --head logreg.")
        a, b = linear.sigmoid
        coef = a * linear.coef / linear.scale
        intercept = a * (linear.intercept - float(linear.coef @ (linear.mean / linear.scale))) + b
        return cls(coef, float(intercept), linear.normalizes)

    def rows(self, X: np.ndarray) -> np.ndarray:
        """``X`` as the head sees it (float64; L2-normalised when it normalises)."""
        X = np.asarray(X, dtype=np.float64)
        if self.normalizes:
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            X = X / np.where(norms == 0, 1.0, norms)
        return X

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Log-odds of rows already passed through :meth:`rows`."""
        return rows @ self.coef + self.intercept

    def beside(self, other: SourceHead, unit: bool = False) -> SourceHead | None:
        """The sum of this head's and ``other``'s log-odds, on their columns side by side (this head's first);
        None where either L2-normalises its rows (the sum is then not one linear head on the joined rows), unless
        ``unit``: each head's rows are of unit length already (sentence vectors), so normalising leaves them be."""
        if (self.normalizes or other.normalizes) and not unit:
            return None
        return SourceHead(np.r_[self.coef, other.coef], self.intercept + other.intercept, False)


@dataclass(frozen=True)
class Offset:
    """A fitted ``α s(x) + Δ · x + b`` on top of a :class:`SourceHead`, assuming a positive rate of one half."""

    alpha: float
    delta: np.ndarray
    bias: float

    def coef(self, source: SourceHead) -> np.ndarray:
        return self.alpha * source.coef + self.delta

    def intercept(self, source: SourceHead) -> float:
        return self.alpha * source.intercept + self.bias

    def log_odds(self, source: SourceHead, rows: np.ndarray) -> np.ndarray:
        return rows @ self.coef(source) + self.intercept(source)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return float(np.log(p / (1 - p)))


def fit_offset(source: SourceHead, rows: np.ndarray, y: np.ndarray, strength: float,
               weights: np.ndarray | None = None) -> Offset:
    """:class:`Offset` of ``source`` fitted to 0/1 labels ``y`` of ``rows`` (see the module docstring).

    Each class gets equal total weight (``weights`` scale rows within it, e.g. pseudo-labels); ``α`` is
    pulled toward 1 by :data:`SLOPE_WEIGHT`, which keeps it finite on separable labels. ``strength``
    infinite fits ``α`` and ``b`` alone.
    """
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=np.int64)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if not n_pos or not n_neg:
        raise RetargetError(f"the target labels hold {n_pos} positive and {n_neg} negative texts; label at least "
                            "one of each (a few of each is better).")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    c = np.where(y == 1, len(y) / 2 / w[y == 1].sum(), len(y) / 2 / w[y == 0].sum()) * w
    t = y.astype(np.float64)
    s = source.score(rows)
    free = np.isfinite(strength)
    d = rows.shape[1] if free else 0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        alpha, bias, delta = theta[0], theta[1], theta[2:]
        z = alpha * s + bias + (rows @ delta if free else 0.0)
        value = float(np.sum(c * (np.logaddexp(0.0, z) - t * z)))
        r = c * (_sigmoid(z) - t)
        grad = np.concatenate([[r @ s + SLOPE_WEIGHT * (alpha - 1.0), r.sum()],
                               rows.T @ r + strength * delta if free else []])
        value += 0.5 * SLOPE_WEIGHT * (alpha - 1.0) ** 2
        if free:
            value += 0.5 * strength * float(delta @ delta)
        return value, grad

    theta0 = np.zeros(2 + d)
    theta0[0] = 1.0
    found = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    theta = found.x
    return Offset(float(theta[0]), theta[2:] if free else np.zeros(rows.shape[1]), float(theta[1]))


def choose_strength(source: SourceHead, rows: np.ndarray, y: np.ndarray) -> float:
    """The λ of :data:`STRENGTHS` whose offsets, fitted on :data:`CV_FOLDS` stratified folds of the labels, give
    the held-out labels the least class-balanced log-loss (the smaller λ on ties); :data:`STRENGTH` when a class
    has fewer than two labels."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=np.int64)
    k = min(CV_FOLDS, int(np.bincount(y, minlength=2).min()))
    if k < 2:
        return STRENGTH
    folds = list(StratifiedKFold(k, shuffle=True, random_state=0).split(rows, y))
    losses = []
    for strength in STRENGTHS:
        loss = 0.0
        for train, test in folds:
            z = fit_offset(source, rows[train], y[train], strength).log_odds(source, rows[test])
            t = y[test]
            w = np.where(t == 1, 1 / max(int(t.sum()), 1), 1 / max(int(len(t) - t.sum()), 1))
            loss += float(np.sum(w * (np.logaddexp(0.0, z) - t * z)))
        losses.append(loss)
    return STRENGTHS[int(np.argmin(losses))]


# ---------------------------------------------------------------------------------------------- prior
@dataclass(frozen=True)
class TargetPrior:
    """The target's positive rate and where it came from (``--prior``, ``labels`` or ``ranking``)."""

    value: float
    source: str
    labelled_rate: float | None  # None: no labels
    mixture: Any = None  # the ranking's RankingRate (pipeline.fit.retarget_rate), where one was fitted

    def to_dict(self) -> dict[str, Any]:
        entry = {"value": round(self.value, 4), "from": self.source,
                 "labelled_rate": None if self.labelled_rate is None else round(self.labelled_rate, 4)}
        if self.mixture is not None:
            auc = self.mixture.labels_auc
            entry["ranking"] = {"rate": round(self.mixture.rate, 4), "separation": round(self.mixture.separation, 4),
                                "labels_auc": None if np.isnan(auc) else round(auc, 4)}
        return entry


def target_prior(y: np.ndarray, known: float | None,
                 scores: tuple[np.ndarray, np.ndarray] | None = None) -> TargetPrior:
    """The positive rate to centre the head on: ``known`` if given; else, with ``scores`` (the source log-odds
    of the unlabelled and of the labelled target texts), the rate read from the source's ranking where it
    may be trusted (:func:`~pipeline.fit.retarget_rate.refined_rate`); else the labelled texts' rate smoothed
    by one text of each class (``(positives + 1) / (labels + 2)``; right for labels drawn at random)."""
    from pipeline.fit.retarget_rate import refined_rate

    y = np.asarray(y)
    labelled = float(y.mean())
    if known is not None:
        return TargetPrior(float(known), "--prior", labelled)
    smoothed = (float(y.sum()) + 1) / (len(y) + 2)
    if scores is None:
        return TargetPrior(smoothed, "labels", labelled)
    rate, mixture = refined_rate(scores[0], scores[1], y)
    if rate is None:
        return TargetPrior(smoothed, "labels", labelled, mixture)
    return TargetPrior(rate, "ranking", labelled, mixture)


# ---------------------------------------------------------------------------------------------- the head
@dataclass
class Retargeted:
    """A retargeted head: its coefficients and intercept on the rows the source head sees, and the record."""

    coef: np.ndarray
    intercept: float
    normalizes: bool
    record: dict[str, Any] = field(default_factory=dict)

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of positive of raw vectors ``X``."""
        head = SourceHead(self.coef, self.intercept, self.normalizes)
        return head.score(head.rows(X))

    def proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of positive of raw vectors ``X``."""
        return _sigmoid(self.log_odds(X))

    def estimator(self) -> Any:
        """The head as the scikit-learn logistic head ``fit`` makes (a Normalizer in front when the source
        has one), its coefficients set to the retargeted ones."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import Normalizer

        clf = LogisticRegression()
        clf.classes_ = np.array([0, 1])
        clf.coef_ = self.coef.reshape(1, -1).copy()
        clf.intercept_ = np.array([self.intercept])
        clf.n_features_in_ = len(self.coef)
        clf.n_iter_ = np.array([0], dtype=np.int32)
        steps = [("normalize", Normalizer().fit(np.zeros((1, len(self.coef)))))] if self.normalizes else []
        return Pipeline([*steps, ("clf", clf)])


def fit_retargeted(source: SourceHead, X: np.ndarray, y: np.ndarray, X_unlabelled: np.ndarray | None,
                   settings: RetargetSettings) -> Retargeted:
    """Retarget ``source`` to labelled target vectors ``X, y`` (and unlabelled target vectors, which give
    pseudo-labels with ``settings.self_train``)."""
    start = time.perf_counter()
    rows = source.rows(X)
    unl = source.rows(X_unlabelled) if X_unlabelled is not None and len(X_unlabelled) else None
    strength = choose_strength(source, rows, y) if settings.strength is None else settings.strength
    offset = fit_offset(source, rows, y, strength)
    prior = target_prior(y, settings.prior, None if unl is None else (source.score(unl), source.score(rows)))
    record: dict[str, Any] = {}
    if settings.self_train is not None and unl is not None:
        offset, record["self_train"] = _self_train(source, rows, y, unl, offset, prior, strength, settings)
    coef, intercept = offset.coef(source), offset.intercept(source) + _logit(prior.value)
    cosine = float(coef @ source.coef / max(np.linalg.norm(coef) * np.linalg.norm(source.coef), EPS))
    record.update({
        "labels": int(len(y)), "positive": int(np.sum(y)), "unlabelled": 0 if unl is None else int(len(unl)),
        "strength": None if not np.isfinite(strength) else strength,
        "strength_from": "given" if settings.strength is not None else "cross-validation",
        "slope": round(offset.alpha, 4), "departure": round(float(np.linalg.norm(offset.delta)
                                                                  / max(np.linalg.norm(coef), EPS)), 4),
        "cosine_to_source": round(cosine, 4), "prior": prior.to_dict(),
        "seconds": round(time.perf_counter() - start, 3),
    })
    return Retargeted(coef, float(intercept), source.normalizes, record)


def fit_recentred(source: SourceHead, X_unlabelled: np.ndarray, settings: RetargetSettings,
                  prior_model: Any = None, first: SourceHead | None = None, *, sum_prior: bool = False) -> Retargeted:
    """With no target labels: ``source`` with its threshold moved to the quantile of the unlabelled target
    texts' scores that calls ``settings.prior`` of them positive, or else the rate read from them
    (:func:`~pipeline.fit.retarget_rate.no_label_rate`: the median of their ranking's and the readers of
    ``prior_model``, the source bundle's :class:`~pipeline.predict.prior.PriorModel`, or with none the ranking's
    where it may be trusted), unless that rate confirms the source's threshold. With ``first`` (``source`` is the
    sum of two heads, ``first`` reading the leading columns: :meth:`SourceHead.beside`), the rate is read from both
    heads' scores together, ``prior_model`` describing ``first``'s, or with ``sum_prior`` the sum's (a bundle fitted
    with the sum as its English head, ``E+O|O``: where the two heads' scores do not separate, the one-head rule then
    reads the sum). A RetargetError says what to do when there is no rate."""
    from pipeline.fit.retarget_rate import MIN_UNLABELLED, calibrated_rates, no_label_rate

    start = time.perf_counter()
    rows = source.rows(X_unlabelled) if X_unlabelled is not None else np.zeros((0, len(source.coef)))
    s = source.score(rows)
    if len(s) < MIN_UNLABELLED:
        raise RetargetError(f"with no target labels, retarget reads the site's positive rate from the bundle's ranking "
                            f"of its texts: give at least {MIN_UNLABELLED} with --unlabelled (here {len(s)}), or "
                            "label 16-32 of them.")
    share, calibrated, kept = float(np.mean(s > 0)), None, False
    if settings.prior is None:
        own = s if first is None else first.score(first.rows(X_unlabelled[:, :len(first.coef)]))
        views = None if first is None else np.c_[own, s - own]
        read = s if sum_prior else own  # the scores prior_model describes
        found = no_label_rate(read, calibrated_rates(read, prior_model), views)
        if found.rate is None:
            raise RetargetError(_no_rate(found.mixture, len(s), found.calibrated))
        prior, calibrated, kept = TargetPrior(found.rate, found.source, None, found.mixture), found.calibrated, found.kept
        share = found.share
    else:
        prior = TargetPrior(settings.prior, "--prior", None)
    shift = 0.0 if kept else -float(np.quantile(s, 1 - prior.value))
    record = {"labels": 0, "positive": 0, "unlabelled": int(len(s)), "strength": None, "strength_from": None,
              "slope": 1.0, "departure": 0.0, "cosine_to_source": 1.0, "threshold_shift": round(shift, 4),
              "source_share": round(share, 4), "threshold_kept": kept,
              "calibrated": None if calibrated is None else {"em": round(calibrated[0], 4),
                                                             "bbse": round(calibrated[1], 4)},
              "prior": prior.to_dict(), "seconds": round(time.perf_counter() - start, 3)}
    return Retargeted(source.coef.copy(), source.intercept + shift, source.normalizes, record)


def _no_rate(mixture: Any, n: int, calibrated: tuple[float, float] | None) -> str:
    """The one-line refusal when no rate can be read from ``n`` texts whose mixture is ``mixture`` (and whose
    EM and BBSE rates are ``calibrated``, where the bundle records them)."""
    from pipeline.fit.retarget_rate import MIN_SEPARATION_UNLABELLED

    fix = ("give --prior RATE if you know it, or label 16-32 of them (`review-transfer suggest`) and retarget "
           "with those.")
    if calibrated is not None:
        return (f"the rates read from the bundle's scores of these {n:,} texts (ranking {mixture.rate:.0%}, EM "
                f"{calibrated[0]:.0%}, BBSE {calibrated[1]:.0%}) put almost all of them in one class: " + fix)
    why = (f"do not split into two classes (separation {mixture.separation:.2f})"
           if mixture.separation < MIN_SEPARATION_UNLABELLED else
           f"split off only a sliver of {mixture.rate:.0%} in one tail, not a class")
    return (f"the bundle's scores of these {n:,} texts {why}, and the bundle records no out-of-fold confusion to "
            "read the rate by instead: " + fix)


def _self_train(source: SourceHead, rows: np.ndarray, y: np.ndarray, unl: np.ndarray, offset: Offset,
                prior: TargetPrior, strength: float, settings: RetargetSettings) -> tuple[Offset, dict[str, Any]]:
    """One or more rounds: the current head (centred on the target rate) pseudo-labels the unlabelled rows,
    and the offset is refitted on the labels plus the surest pseudo-labels (each weighing :data:`PSEUDO_WEIGHT`)."""
    from pipeline.unlabelled.self_train import select_pseudo

    rounds = []
    for _ in range(settings.self_train.rounds):
        p = _sigmoid(offset.log_odds(source, unl) + _logit(prior.value))
        idx, y_pseudo = select_pseudo(p, settings.self_train, seed=settings.seed)
        rounds.append({"pseudo_labels": int(len(idx)), "positive": int(y_pseudo.sum())})
        if not len(idx):
            break
        weights = np.r_[np.ones(len(y)), np.full(len(idx), PSEUDO_WEIGHT)]
        offset = fit_offset(source, np.vstack([rows, unl[idx]]), np.r_[y, y_pseudo], strength, weights)
    return offset, {"fraction": settings.self_train.fraction, "rounds_run": rounds,
                           "pseudo_weight": PSEUDO_WEIGHT}


def draw_labels(ds: Dataset, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` rows of ``ds`` drawn at random (seeded), redrawn until both classes are among them:
    what labelling ``n`` texts picked at random gives, without a draw of one class only."""
    if ds.labels is None:
        raise RetargetError(f"{ds.name or 'TARGET'}: has no labels; retarget needs labelled target texts.")
    if n > len(ds) or n < 2:
        raise RetargetError(f"--n-labels {n}: {ds.name or 'TARGET'} has {len(ds)} labelled texts; ask for 2 to {len(ds)}.")
    if ds.labels.min() == ds.labels.max():
        raise RetargetError(f"{ds.name or 'TARGET'}: all its labels are one class; it needs texts of both.")
    rng = np.random.default_rng(seed)
    for _ in range(DRAWS):
        idx = np.sort(rng.permutation(len(ds))[:n])
        if 0 < ds.labels[idx].sum() < n:
            return idx
    raise RetargetError(f"--n-labels {n}: {DRAWS} random draws of {n} texts of {ds.name or 'TARGET'} all held one "
                        "class only; ask for more labels.")
