"""Benchmark ``retarget`` with no labels: rules for the site's positive rate, under label shift on top of covariate shift.

The source bundle is that of ``bench_retarget.py`` (``fit rt --budget 1000 --seed 0``, ``--encoder``). The sets are
the nine development targets of ``bench_retarget.py`` cut to one hash half (``--half``), and the halves of the
six packaged English sets and of ``vader-amazon-mild`` (a site the source ranks poorly) resampled
(:func:`targets.resample`, seed 7) to each positive rate of ``--rates`` (where 150 texts or more remain), so a rule
meets skewed sites it was not shaped on. Per seed a set is split in two seeded halves as in ``bench_retarget.py``:
the first half is the site's unlabelled texts, the second is scored. Rules, each a threshold on the source
log-odds (the bundle as it is where a rule gives no rate):

- ``as is``: the source bundle's threshold;
- ``ranking only``: the ranking's mixture (:func:`pipeline.fit.retarget_rate.unlabelled_rate`), kept within
  ``AGREEMENT`` of the share the source calls positive, else the quantile at that rate; no rate: as is;
- ``median``: the median of the mixture's, EM's and BBSE's rates, kept within ``AGREEMENT`` of the share;
- ``shipped``: :func:`pipeline.fit.retarget.fit_recentred` as ``retarget`` runs it (the median, and a skewed
  rate, under ``SKEWED`` or over ``1 - SKEWED``, always moves the threshold);
- ``true rate``: the quantile at the first half's true rate.

Prints per set the majority rate and the mean accuracy of each rule over the seeds, then the mean over the
nine targets and over every set, and per rule the sets under their majority rate and those more than a point
under the bundle as it is.

    PYTHONPATH=.:benchmarks python benchmarks/bench_retarget_zero.py [--encoder mpnet[layers=9-12]] [--half val]
        [--rates 0.15,0.3,0.5,0.7,0.85] [--seeds 5]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable, Iterator

import numpy as np
from bench_retarget import ENCODER, ENGLISH, LONG, LOW_RATE, target

import pipeline.fit.retarget_rate as rr
from pipeline.fit.retarget import RetargetError, RetargetSettings, SourceHead, fit_recentred
from pipeline.fit.train import fit
from pipeline.predict.prior import PriorModel
from pipeline.store.cache import EmbeddingCache, default_cache_dir

RESAMPLED = [*ENGLISH, "vader-amazon-mild"]  # the sets resampled to each rate
Rule = Callable[[np.ndarray, np.ndarray, float], float]  # (own scores, own vectors, true rate) -> threshold


def sets(names: list[str], rates: list[float], half: str, vectors: Callable) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, vectors, labels) of each target's half, then of the halves of :data:`RESAMPLED` resampled to each rate."""
    for name in names:
        ds = target(name, 1000, half)
        yield name, vectors(ds.texts), ds.labels
    for name in RESAMPLED:
        ds = target(name, 1000, half)
        X, y = vectors(ds.texts), ds.labels
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        for rate in rates:
            n = int(min(len(pos) / rate, len(neg) / (1 - rate)))
            k, rng = int(round(n * rate)), np.random.default_rng(7)
            idx = np.sort(np.r_[rng.permutation(pos)[:k], rng.permutation(neg)[:n - k]])
            if n >= 150:
                yield f"{name}@{rate:g}", X[idx], y[idx]


def rules(source: SourceHead, model: PriorModel) -> dict[str, Rule]:
    def quantile(s: np.ndarray, rate: float) -> float:
        return float(np.quantile(s, 1 - np.clip(rate, 0.02, 0.98)))

    def banded(readers: bool) -> Rule:
        """The mixture's rate (``readers``: the median of it, EM's and BBSE's), kept within AGREEMENT of the share."""
        def run(s: np.ndarray, _: np.ndarray, __: float) -> float:
            rate, mixture = rr.unlabelled_rate(s)
            if readers:
                rate = float(np.median([mixture.rate, *rr.calibrated_rates(s, model)]))
            if rate is None or abs(rate - float(np.mean(s > 0))) <= rr.AGREEMENT:
                return 0.0
            return quantile(s, rate)
        return run

    def shipped(_: np.ndarray, X: np.ndarray, __: float) -> float:
        try:
            return -(fit_recentred(source, X, RetargetSettings(), model).intercept - source.intercept)
        except RetargetError:
            return 0.0

    return {"as is": lambda *_: 0.0, "ranking only": banded(False), "median": banded(True), "shipped": shipped,
            "true rate": lambda s, _, truth: quantile(s, truth)}


def arguments(doc: str, rates: str) -> argparse.Namespace:
    """``--encoder``, ``--half``, ``--rates`` (default ``rates``) and ``--seeds`` of a script described by ``doc``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--encoder", default=ENCODER)
    parser.add_argument("--half", choices=("val", "test"), default="val")
    parser.add_argument("--rates", default=rates)
    parser.add_argument("--seeds", type=int, default=5)
    return parser.parse_args()


def source_bundle(encoder: str) -> tuple[SourceHead, PriorModel, Callable]:
    """The source head and prior model of ``fit rt --budget 1000 --seed 0`` with ``encoder``, and its cached vectors
    of a list of texts."""
    cache_dir = default_cache_dir()
    bundle = fit("rt", encoder=encoder, budget=1000, seed=0, cache_dir=cache_dir)
    enc, cache = bundle.get_encoder(), EmbeddingCache(cache_dir)
    return (SourceHead.of(bundle.head, "logreg"), PriorModel.from_manifest(bundle.manifest),
            lambda texts: cache.vectors(enc, texts))


def main() -> None:
    args, start = arguments(__doc__, "0.15,0.3,0.5,0.7,0.85"), time.perf_counter()
    source, model, vectors = source_bundle(args.encoder)
    todo = rules(source, model)
    names = [*ENGLISH, *LOW_RATE, LONG]
    table: dict[str, dict[str, float]] = {}
    for name, X, y in sets(names, [float(r) for r in args.rates.split(",")], args.half, vectors):
        s_all, accs = source.score(source.rows(X)), {r: [] for r in todo}
        for seed in range(args.seeds):
            perm = np.random.default_rng(1000 + seed).permutation(len(y))
            own, scored = np.sort(perm[: len(y) // 2]), np.sort(perm[len(y) // 2:])
            for rule, fn in todo.items():
                t = fn(s_all[own], X[own], float(y[own].mean()))
                accs[rule].append(100 * float(np.mean((s_all[scored] > t) == y[scored])))
        table[name] = {"majority": 100 * max(y.mean(), 1 - y.mean())} | {r: float(np.mean(a)) for r, a in accs.items()}
    cols = ["majority", *todo]
    print(f"{'set':20s}" + "".join(f"{c:>13s}" for c in cols))
    for name, row in table.items():
        print(f"{name:20s}" + "".join(f"{row[c]:13.1f}" for c in cols))
    for label, keys in (("mean, the nine", names), ("mean, every set", list(table))):
        print(f"{label:20s}" + "".join(f"{np.mean([table[k][c] for k in keys]):13.2f}" for c in cols))
    tally(table, list(todo), args, start)


def tally(table: dict[str, dict[str, float]], rules: list[str], args: argparse.Namespace, start: float) -> None:
    """Print, per rule, the sets under their majority rate and those more than a point under the bundle ``as is``;
    then the run's size, wall time and load."""
    for rule in rules:
        under = [k for k, row in table.items() if row[rule] < row["majority"] - 0.05]
        worse = [k for k, row in table.items() if row[rule] < row["as is"] - 1.0]
        print(f"{rule}: under the majority rate on {len(under)} {under}; over a point under the bundle as is on "
              f"{len(worse)} {worse}")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n{len(table)} sets, {args.seeds} seeds, {args.half} halves; wall time {time.perf_counter() - start:.0f} s; "
          f"uptime: {load}")


if __name__ == "__main__":
    main()
