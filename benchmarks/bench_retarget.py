"""Benchmark ``retarget``: a bundle fitted on RT carried to other sites with 16-64 of their labels.

The source bundle is ``fit rt --budget 1000 --seed 0`` (logreg with the prompt prior, as ``fit`` makes
it; the project's default encoder, its English side where it is routed, unless ``--encoder``). Each English target of ``benchmarks/targets.py``,
and three built from them (``tweets-14``: vader-tweets
resampled to 14% positive, a low-positive-rate site; ``amazon-mild-72``: vader-amazon-mild resampled to 72%
positive, a site the source ranks poorly, ROC-AUC about 0.78; ``rt-long``: documents of
:data:`LONG_PER_DOC` same-film, same-label snippets of RT's *test* split, long film reviews), cut to a seeded
1,000 rows where larger (``--max-rows``) and to one hash half of its texts with ``--half`` (``val`` to
choose settings, ``test`` to report), is split
per seed into two seeded halves: the first is the user's own target texts, of which ``N`` are labelled
(drawn at random, redrawn until both classes are among them: :func:`pipeline.fit.retarget.draw_labels`) and
the rest are unlabelled texts; the second half is scored and never seen. For every seed (which texts
were labelled) and ``N``, the same labels go to:

- ``source``: the RT bundle as it is (``N`` = 0);
- ``unlabelled only`` (``N`` = 0): ``retarget`` with no labels and the first half as ``--unlabelled``: the
  threshold moved to the rate read from them (the median of the source's ranking's and the bundle's EM and
  BBSE), or kept where that rate agrees with the source's own calls and is not skewed; where it declines (no
  rate to read), the source bundle; the seeds where ``retarget`` warns of a weakly separating ranking are
  counted;
- ``target only``: ``fit`` on the target labels alone (logreg with the prompt prior; on fewer than two
  labels of a class, which ``fit`` refuses, the labels' commoner class for every text);
- ``retarget``: what ``retarget --labels N --unlabelled <the rest of the first half>`` does by default: the
  source head re-fitted toward itself (:mod:`pipeline.fit.retarget`) and self-trained on the unlabelled texts;
  ``--no-self-train``: the same fit on the labels alone;
- with ``--grid`` (each without self-training): fixed strengths λ (the default chooses λ by cross-validation on the labels); the true positive rate given as ``--prior``; and the rate estimated
  by EM on the unlabelled half (``rate: EM``) or the mean of that and the labels' rate (``rate: mean``)
  instead of the labels' rate alone.

Prints per target the majority rate of the scored halves and mean accuracies, then the paired gain of
``retarget`` over ``target only``, over ``source`` and over ``--no-self-train`` (mean ± SE over seeds), and on
how many seeds ``retarget``'s held-out check (:func:`pipeline.fit.retarget_bundle.compare_held_out`, the scored
half standing for the held-out rows) would warn that the new bundle is worse than the source beyond chance.

    PYTHONPATH=. python benchmarks/bench_retarget.py [--encoder mpnet[layers=9-12]] [--labels 16,32,64] [--seeds 5]
        [--targets uci-amazon,...,tweets-14,amazon-mild-72,rt-long] [--max-rows 1000] [--half test] [--grid]
        [--embed-only]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable

import numpy as np
from targets import TARGETS, half_of, load_target, resample

from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.data.dataset import Dataset
from pipeline.encoders.spec import DEFAULT_ENCODER, parse_spec
from pipeline.heads.registry import FitOptions, fit_head
from pipeline.heads.prompts import DEFAULT as PROMPTS
from pipeline.heads.prompts import encoded_direction
from pipeline.predict.prior import PriorModel, estimate_prior
from pipeline.fit.retarget import (STRENGTH, RetargetError, RetargetSettings, SourceHead, draw_labels, fit_offset,
                                   fit_recentred, fit_retargeted)
from pipeline.fit.retarget_bundle import compare_held_out
from pipeline.fit.retarget_rate import MIN_SEPARATION
from pipeline.fit.train import fit
from pipeline.unlabelled.self_train import SelfTrainSettings

ENGLISH = [name for name in TARGETS if name.startswith(("uci-", "vader-")) and not name.endswith("-mild")]
LOW_RATE = {"tweets-14": ("vader-tweets", 0.14), "amazon-mild-72": ("vader-amazon-mild", 0.72)}  # resampled targets
LONG = "rt-long"  # documents of LONG_PER_DOC snippets of RT's test split
LONG_PER_DOC = 5
WARNED = "warned"  # the seeds where retarget's held-out check would warn that it is worse than the source
Method = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (X_lab, y_lab, X_unl) -> p on the scored half


def english_encoder(spec: str = DEFAULT_ENCODER) -> str:
    """``spec``, or for a routed spec (``E|O``) its English side ``E``: the one head these benches carry to English
    sites (``retarget`` adapts a routed bundle's English side)."""
    parsed = parse_spec(spec)
    return spec if parsed.kind != "routed" else "+".join(str(parsed.parts[i]) for i in parsed.route[0])


ENCODER = english_encoder()  # the default encoder's English side


def target(name: str, max_rows: int | None = None, half: str | None = None) -> Dataset:
    """Target ``name`` (a resampled one for the names of :data:`LOW_RATE`, long documents for :data:`LONG`),
    cut to a seeded ``max_rows`` rows, then to the texts of ``half`` (``val``/``test``: :func:`targets.half_of`)."""
    if name == LONG:
        from long_reviews import concatenate

        from pipeline.data.dataset import load, split

        ds = concatenate(split(load("rt"))[1], LONG_PER_DOC, seed=0)
    elif name in LOW_RATE:
        base, rate = LOW_RATE[name]
        ds = resample(load_target(base), rate, seed=0)
    else:
        ds = load_target(name)
    if max_rows is not None and len(ds) > max_rows:
        ds = ds.subset(np.sort(np.random.default_rng(0).permutation(len(ds))[:max_rows]))
    if half is not None:
        ds = ds.subset(np.flatnonzero([half_of(t) == half for t in ds.texts]))
    return ds


def methods(source: SourceHead, u: np.ndarray, X_eval: np.ndarray, seed: int, grid: bool) -> dict[str, Method]:
    """Name -> method; each fits on the labelled (and unlabelled) vectors and returns P(positive) on ``X_eval``."""

    def target_only(X: np.ndarray, y: np.ndarray, _: np.ndarray) -> np.ndarray:
        if np.bincount(y, minlength=2).min() < 2:  # fit refuses: the labels' commoner class for every text
            return np.full(len(X_eval), float(y.mean() > 0.5))
        return fit_head("logreg", X, y, FitOptions(seed=seed, prompt_direction=u)).estimator.predict_proba(X_eval)[:, 1]

    def retarget(strength: float | None = None, self_train: bool = False) -> Method:
        settings = RetargetSettings(strength=strength, seed=seed, self_train=SelfTrainSettings() if self_train else None)
        return lambda X, y, X_unl: fit_retargeted(source, X, y, X_unl, settings).proba(X_eval)

    def em_rate(mean_with_labels: bool) -> Method:
        """The positive rate by EM on the unlabelled half instead of the labels' (or the mean of the two)."""
        def run(X: np.ndarray, y: np.ndarray, X_unl: np.ndarray) -> np.ndarray:
            offset = fit_offset(source, source.rows(X), y, STRENGTH)
            rate = estimate_prior(1 / (1 + np.exp(-offset.log_odds(source, source.rows(X_unl)))), 0.5)
            rate = (rate + (y.sum() + 1) / (len(y) + 2)) / 2 if mean_with_labels else rate
            rate = float(np.clip(rate, 0.01, 0.99))
            return 1 / (1 + np.exp(-(offset.log_odds(source, source.rows(X_eval)) + np.log(rate / (1 - rate)))))
        return run

    found = {"target only": target_only, "--no-self-train": retarget(), "retarget": retarget(self_train=True)}
    if grid:
        for strength in (0.1, STRENGTH, 1.0, float("inf")):
            found[f"λ={strength:g}"] = retarget(strength)
        found["rate: EM"], found["rate: mean"] = em_rate(False), em_rate(True)
    return found


def run_target(name: str, source: SourceHead, u: np.ndarray, vectors: Callable, args: argparse.Namespace,
               model: PriorModel | None = None) -> dict:
    """The runs of every method on target ``name`` (``model``: the source bundle's prior model, for the 0-label row)."""
    ds = target(name, args.max_rows, args.half)
    X_all, y_all = vectors(ds.texts), ds.labels
    runs: dict[tuple[int, str], list[float]] = {}
    majority = []
    for seed in range(args.seeds):
        perm = np.random.default_rng(1000 + seed).permutation(len(ds))
        own, scored = np.sort(perm[: len(ds) // 2]), np.sort(perm[len(ds) // 2:])
        X_eval, y_eval = X_all[scored], y_all[scored]
        majority.append(100 * max(y_eval.mean(), 1 - y_eval.mean()))
        acc = lambda p: 100 * float(((p >= 0.5) == y_eval).mean())  # noqa: E731
        p_source = 1 / (1 + np.exp(-source.score(source.rows(X_eval))))
        runs.setdefault((0, "source"), []).append(acc(p_source))
        try:  # no labels: the threshold moved to the rate read from the ranking of the first half's texts
            recentred = fit_recentred(source, X_all[own], RetargetSettings(seed=seed), model)
            zero, declined, kept = recentred.proba(X_eval), 0.0, float(recentred.record["threshold_kept"])
            readers = float(recentred.record["prior"]["from"] == "readers")
            ranking = recentred.record["prior"].get("ranking")
            weak = float(bool(ranking) and ranking["separation"] < MIN_SEPARATION)  # retarget warns of a weak ranking
        except RetargetError:  # it declines (and says to give --prior or labels): the source bundle stays
            zero, declined, kept, readers, weak = 1 / (1 + np.exp(-source.score(source.rows(X_eval)))), 1.0, 0.0, 0.0, 0.0
        runs.setdefault((0, "unlabelled only"), []).append(acc(zero))
        runs.setdefault((0, "declined"), []).append(declined)
        runs.setdefault((0, "kept"), []).append(kept)
        runs.setdefault((0, "readers"), []).append(readers)
        runs.setdefault((0, "weak"), []).append(weak)
        todo = methods(source, u, X_eval, seed, args.grid)
        for n in args.labels:
            lab = own[draw_labels(ds.subset(own), n, seed)]
            unl = np.setdiff1d(own, lab)
            for method, fn in todo.items():
                p = fn(X_all[lab], y_all[lab], X_all[unl])
                runs.setdefault((n, method), []).append(acc(p))
                if method == "retarget":  # would its held-out check warn (worse than the source beyond chance)?
                    runs.setdefault((n, WARNED), []).append(float(compare_held_out(y_eval, p, p_source)["worse"]))
            if args.grid:  # the positive rate known exactly (--prior), to show what the labels' rate costs
                oracle = fit_retargeted(source, X_all[lab], y_all[lab], None,
                                        RetargetSettings(prior=float(y_all.mean()), seed=seed)).proba(X_eval)
                runs.setdefault((n, "--prior true"), []).append(acc(oracle))
    return {"size": len(ds), "rate": float(y_all.mean()), "majority": float(np.mean(majority)),
            "runs": {k: np.array(v) for k, v in runs.items()}}


def paired(a: np.ndarray, b: np.ndarray) -> str:
    d = a - b
    return f"{d.mean():+5.1f}±{d.std(ddof=1) / np.sqrt(len(d)):.1f}"


def report(name: str, res: dict, args: argparse.Namespace) -> None:
    runs = res["runs"]
    names = [m for m in dict.fromkeys(k[1] for k in runs if k[0]) if m not in ("source", WARNED)]
    print(f"\n{name}: {res['size']:,} texts, {100 * res['rate']:.1f}% positive; scored halves' majority rate "
          f"{res['majority']:.1f}; source bundle {runs[(0, 'source')].mean():.1f}; unlabelled only "
          f"{runs[(0, 'unlabelled only')].mean():.1f} ({paired(runs[(0, 'unlabelled only')], runs[(0, 'source')])} over "
          f"the source; threshold kept on {int(runs[(0, 'kept')].sum())}, declined on {int(runs[(0, 'declined')].sum())}, "
          f"rate by the readers' median on {int(runs[(0, 'readers')].sum())}, a weak ranking flagged on "
          f"{int(runs[(0, 'weak')].sum())} of {len(runs[(0, 'declined')])} seeds)")
    print(f"{'labels':>6}  " + "  ".join(f"{m:>15s}" for m in names) + "  retarget-target only  retarget-source"
          "  retarget-no self-train  warned")
    for n in args.labels:
        cells = [f"{runs[(n, m)].mean():15.1f}" for m in names]
        print(f"{n:>6}  " + "  ".join(cells) + f"  {paired(runs[(n, 'retarget')], runs[(n, 'target only')]):>20s}"
              f"  {paired(runs[(n, 'retarget')], runs[(0, 'source')]):>15s}"
              f"  {paired(runs[(n, 'retarget')], runs[(n, '--no-self-train')]):>22s}"
              f"  {int(runs[(n, WARNED)].sum())}/{len(runs[(n, WARNED)])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default=ENCODER)
    parser.add_argument("--labels", default="16,32,64")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--targets", default=",".join([*ENGLISH, *LOW_RATE, LONG]))
    parser.add_argument("--half", choices=("val", "test"), default=None,
                        help="Only the texts of this hash half of each target (val: to choose; test: to report).")
    parser.add_argument("--max-rows", type=int, default=1000, help="Cut larger targets to this many seeded rows.")
    parser.add_argument("--grid", action="store_true", help="Also the other strengths and positive rates.")
    parser.add_argument("--embed-only", action="store_true", help="Only encode the targets' texts into the cache.")
    args = parser.parse_args()
    args.labels = [int(n) for n in args.labels.split(",")]

    start = time.perf_counter()
    cache_dir = default_cache_dir()
    if args.embed_only:
        from pipeline.encoders import get_encoder

        enc = get_encoder(args.encoder)
        for name in args.targets.split(","):
            EmbeddingCache(cache_dir).vectors(enc, target(name, args.max_rows, args.half).texts)
            print(f"{name}: encoded, {time.perf_counter() - start:.0f} s")
        return
    bundle = fit("rt", encoder=args.encoder, budget=1000, seed=0, cache_dir=cache_dir)
    source = SourceHead.of(bundle.head, "logreg")
    enc = bundle.get_encoder()
    u = encoded_direction(PROMPTS, enc, cache_dir)
    cache = EmbeddingCache(cache_dir)
    model = PriorModel.from_manifest(bundle.manifest)
    print(f"source: fit rt --encoder {args.encoder} --budget 1000 --seed 0 (RT test accuracy "
          f"{100 * bundle.manifest['metrics']['test']['accuracy']:.1f}); {args.seeds} seeds; accuracy in points on "
          "the scored half of each target")
    for name in args.targets.split(","):
        report(name, run_target(name, source, u, lambda texts: cache.vectors(enc, texts), args, model), args)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nwall time {time.perf_counter() - start:.0f} s; uptime: {load}")


if __name__ == "__main__":
    main()
