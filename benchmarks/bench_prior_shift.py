"""Estimating a target site's positive rate when its texts differ from the training texts (covariate shift).

The source is the RT bundle of ``bench_retarget.py`` (``fit rt --budget 1000 --seed 0``, mpnet). Each target
(the English targets of ``benchmarks/targets.py``, ``tweets-14``, and targets resampled to 15-30% positive)
is cut to 1,000 seeded rows where larger and halved per seed, as ``bench_retarget.py`` does: of the first half
``N`` texts are labelled (drawn at random) and the rest are unlabelled; the second half is scored. Estimators of
the positive rate:

- ``labels``: the labels' own rate, smoothed by one text of each class;
- ``shipped``: what ``retarget`` uses with unlabelled texts (:func:`pipeline.fit.retarget.target_prior`: the
  guarded ranking mixture of :mod:`pipeline.fit.retarget_rate`, else the labels' rate);
- ``mix`` / ``mix+lab`` / ``mix+lab sv``: a two-Gaussian mixture on the source's log-odds of the unlabelled
  texts, started from the source threshold; ``+lab`` with the labelled texts' classes fixed, ``sv`` with one
  spread for both classes (each its own otherwise); ``sv g``: that, kept only inside the labels' Wilson 95%
  interval. It reads only the ranking's shape, not the source's calibration;
- ``EM cal+lab``: EM on the unlabelled texts with the source score re-calibrated on the labels (slope and
  bias, classes weighted equally), the labels' own classes added to the likelihood;
- with ``N`` = 0: ``EM src`` / ``BBSE src``, the bundle's guarded estimators (``evaluate --adapt-prior``, on
  the source's out-of-fold calibration), the mixtures without labels, and ``source``, its share of positive
  calls.

Prints per target the mean absolute error of each estimate against the first half's true rate, the accuracy
on the scored half of ``retarget`` centred on each estimate, and with ``st`` also self-trained on the
unlabelled texts (means over seeds); then the means over targets with the worst target.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_prior_shift.py [--labels 0,16,32,64]
        [--seeds 5] [--targets ...] [--encoder mpnet]
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
from bench_retarget import ENGLISH, LOW_RATE, target

from pipeline.fit.retarget import RetargetSettings, SourceHead, draw_labels, fit_offset, fit_retargeted, target_prior
from pipeline.fit.retarget_rate import mixture_rate
from pipeline.fit.train import fit
from pipeline.predict.prior import EPS, PriorModel, estimates
from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.unlabelled.self_train import SelfTrainSettings

RESAMPLED = {"amazon-20": ("uci-amazon", 0.20), "yelp-15": ("uci-yelp", 0.15), "imdb-30": ("uci-imdb", 0.30),
             "nyt-25": ("vader-nyt", 0.25)}
LOW_RATE.update(RESAMPLED)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def em_with_labels(p_bal: np.ndarray, y: np.ndarray) -> float:
    """Max-likelihood rate of unlabelled posteriors ``p_bal`` (at rate 1/2) plus labelled classes ``y``."""
    lo, hi = EPS, 1 - EPS
    k, n = float(np.sum(y)), len(y)
    for _ in range(60):
        q = (lo + hi) / 2
        g = np.sum((p_bal - (1 - p_bal)) / (q * p_bal + (1 - q) * (1 - p_bal))) + k / q - (n - k) / (1 - q)
        lo, hi = (q, hi) if g > 0 else (lo, q)
    return (lo + hi) / 2


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a rate of ``k`` in ``n``."""
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return mid - half, mid + half


def mixture(s_unl: np.ndarray, s_lab: np.ndarray | None = None, y: np.ndarray | None = None,
            shared: bool = False, iters: int = 200) -> float:
    """The positive weight of a two-Gaussian mixture on log-odds ``s_unl`` (labelled ``s_lab`` with classes
    ``y`` fixed), started from the split at 0; ``shared``: one variance for both components."""
    s_all = s_unl if s_lab is None else np.r_[s_unl, s_lab]
    r = (s_unl > 0).astype(float)
    fixed = None if y is None else y.astype(float)
    for _ in range(iters):
        resp = r if fixed is None else np.r_[r, fixed]
        w1 = max(resp.sum(), 1e-3)
        w0 = max(len(resp) - resp.sum(), 1e-3)
        m1, m0 = resp @ s_all / w1, (1 - resp) @ s_all / w0
        v1 = max(resp @ (s_all - m1) ** 2 / w1, 1e-2)
        v0 = max((1 - resp) @ (s_all - m0) ** 2 / w0, 1e-2)
        if shared:
            v1 = v0 = max((resp @ (s_all - m1) ** 2 + (1 - resp) @ (s_all - m0) ** 2) / len(resp), 1e-2)
        pi = float(np.clip(resp.mean(), 1e-3, 1 - 1e-3))
        l1 = np.log(pi) - 0.5 * np.log(v1) - (s_unl - m1) ** 2 / (2 * v1)
        l0 = np.log(1 - pi) - 0.5 * np.log(v0) - (s_unl - m0) ** 2 / (2 * v0)
        r = sigmoid(l1 - l0)
    return pi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default="0,16,32,64")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--encoder", default="mpnet")
    parser.add_argument("--targets", default=",".join([*ENGLISH, "tweets-14", *RESAMPLED]))
    args = parser.parse_args()
    labels = [int(n) for n in args.labels.split(",")]
    start = time.perf_counter()
    cache_dir = default_cache_dir()
    bundle = fit("rt", encoder=args.encoder, budget=1000, seed=0, cache_dir=cache_dir)
    source = SourceHead.of(bundle.head, "logreg")
    enc, cache = bundle.get_encoder(), EmbeddingCache(cache_dir, progress=False)
    prior_model = PriorModel.from_manifest(bundle.manifest)
    print(f"source: fit rt --encoder {args.encoder} --budget 1000 --seed 0; {args.seeds} seeds; |estimate - true rate| in "
          "points (mean over seeds), and retarget accuracy on the scored half centred on each estimate")
    overall: dict[tuple[int, str], list[float]] = {}
    for name in args.targets.split(","):
        ds = target(name, 1000)
        X = cache.vectors(enc, ds.texts)
        rows = source.rows(X)
        s = source.score(rows)
        err: dict[tuple[int, str], list[float]] = {}
        acc: dict[tuple[int, str], list[float]] = {}
        separation: dict[int, list[float]] = {}
        labels_auc: dict[int, list[float]] = {}
        for seed in range(args.seeds):
            perm = np.random.default_rng(1000 + seed).permutation(len(ds))
            own, scored = np.sort(perm[: len(ds) // 2]), np.sort(perm[len(ds) // 2:])
            truth = float(ds.labels[own].mean())
            y_eval = ds.labels[scored]
            for n in labels:
                if n == 0:
                    unl, lab = own, np.array([], dtype=int)
                    found = {e.method: e.value for e in estimates(sigmoid(s[unl]), prior_model)}
                    est = {"EM src": found["EM"], "BBSE src": found.get("BBSE", np.nan), "mix": mixture(s[unl]),
                           "mix sv": mixture(s[unl], shared=True)}
                    separation.setdefault(0, []).append(mixture_rate(s[unl], s[:0], ds.labels[:0]).separation)
                    for m, q in est.items():
                        err.setdefault((0, m), []).append(100 * abs(q - truth))
                    err.setdefault((0, "source"), []).append(100 * abs(float((s[own] > 0).mean()) - truth))
                    acc.setdefault((0, "source"), []).append(100 * float(((s[scored] > 0) == y_eval).mean()))
                    continue
                lab = own[draw_labels(ds.subset(own), n, seed)]
                unl = np.setdiff1d(own, lab)
                y = ds.labels[lab]
                separation.setdefault(n, []).append(mixture_rate(s[unl], s[lab], y).separation)
                labels_auc.setdefault(n, []).append(mixture_rate(s[unl], s[lab], y).labels_auc)
                cal = fit_offset(source, rows[lab], y, float("inf"))
                p_bal = sigmoid(cal.log_odds(source, rows[unl]))
                est = {"labels": (y.sum() + 1) / (n + 2),
                       "EM cal+lab": em_with_labels(p_bal, y),
                       "mix": mixture(s[unl]),
                       "mix+lab": mixture(s[unl], s[lab], y),
                       "mix+lab sv": mixture(s[unl], s[lab], y, shared=True)}
                lo, hi = wilson(int(y.sum()), n)
                est["mix+lab sv g"] = est["mix+lab sv"] if lo <= est["mix+lab sv"] <= hi else est["labels"]
                est["shipped"] = target_prior(y, None, (s[unl], s[lab])).value
                for m, q in est.items():
                    q = float(np.clip(q, 0.01, 0.99))
                    err.setdefault((n, m), []).append(100 * abs(q - truth))
                    p = fit_retargeted(source, X[lab], y, None, RetargetSettings(prior=q, seed=seed)).proba(X[scored])
                    acc.setdefault((n, m), []).append(100 * float(((p >= 0.5) == y_eval).mean()))
                    if m in ("labels", "shipped"):
                        p = fit_retargeted(source, X[lab], y, X[unl], RetargetSettings(
                            prior=q, seed=seed, self_train=SelfTrainSettings())).proba(X[scored])
                        acc.setdefault((n, m + " st"), []).append(100 * float(((p >= 0.5) == y_eval).mean()))
        majority = 100 * max(ds.labels.mean(), 1 - ds.labels.mean())
        sep = ", ".join(f"{np.mean(v):.2f} at {k}" for k, v in separation.items())
        auc = ", ".join(f"{np.nanmean(v):.2f} at {k}" for k, v in labels_auc.items())
        print(f"\n{name}: {len(ds)} texts, {100 * ds.labels.mean():.1f}% positive (majority {majority:.1f}); the "
              f"mixture's separation (implied ROC-AUC) {sep}; the source's ROC-AUC on the labels {auc}")
        for n in labels:
            ms = [m for (k, m) in {**err, **acc} if k == n]
            print(f"  {n:3d} labels  " + "  ".join(f"{m} err {np.mean(err[(n, m)]):4.1f}"
                                                 + (f" acc {np.mean(acc[(n, m)]):4.1f}" if (n, m) in acc else "")
                                                 if (n, m) in err else f"{m} acc {np.mean(acc[(n, m)]):4.1f}"
                                                 for m in ms), flush=True)
            for m in ms:
                overall.setdefault((n, m), []).append(np.mean(err[(n, m)]) if (n, m) in err else np.nan)
                overall.setdefault((n, m + " acc"), []).append(np.mean(acc[(n, m)]) if (n, m) in acc else np.nan)
    print("\nmean over targets (rate error in points; accuracy)")
    for (n, m), v in overall.items():
        if not np.all(np.isnan(v)):
            worst = np.nanmin(v) if m.endswith("acc") else np.nanmax(v)
            print(f"  {n:3d} labels  {m:18s} {np.nanmean(v):5.1f}  worst target {worst:5.1f}")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nwall time {time.perf_counter() - start:.0f} s; uptime: {load}")


if __name__ == "__main__":
    main()
