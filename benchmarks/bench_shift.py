"""Domain-shift benchmark: guarded prior adaptation and the shift check of RT bundles on other sets.

Fits a bundle on a balanced budget of RT's pool per encoder and seed (the product path: `fit`'s
manifest, out-of-fold calibration and confusion, stored training sample), then scores it on RT's own
test split, that split resampled to 20% and 80% positive (label shift only), and the shifted targets
of :mod:`benchmarks.targets` (other sites, products, text kinds; `uci-yelp@20%` adds label shift to a
site shift). Per set: the two-sample AUC and warning, plain accuracy, accuracy after EM adaptation
forced on (what `--adapt-prior` did before the guard), with the guard's estimate checks alone
(EM and BBSE agree and exclude the training prior), with the whole guard (shift check first), and
in how many seeds the guard adapted.
Then times the shift check and the prior estimates on 10,000 target texts (vectors from the cache).

Run:  .venv/bin/python -m benchmarks.bench_shift [--encoder minilm --encoder glove-6b-50d] [--budget 1000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import numpy as np

RESAMPLED = (("rt-test@20%", "rt-test", 0.2), ("rt-test@80%", "rt-test", 0.8), ("uci-yelp@20%", "uci-yelp", 0.2))


def test_sets() -> dict:
    from benchmarks.targets import TARGETS, load_target, resample
    from pipeline.data.dataset import load, split

    sets = {"rt-test": split(load("rt"))[1]}
    sets.update({name: load_target(name) for name in TARGETS})
    for name, base, rate in RESAMPLED:
        sets[name] = resample(sets[base], rate, seed=0)
    return sets


def run_set(bundle, ds) -> dict:
    from pipeline.predict.prior import PriorModel, adjust
    from pipeline.predict.predict import positive_proba

    p, adapted, shift = positive_proba(bundle, ds.texts, adapt_prior=True)
    model = PriorModel.from_manifest(bundle.manifest)
    em = adapted.decision.estimates[0].value
    forced = adjust(model.calibration.apply(p), model.train, min(max(em, 1e-3), 1 - 1e-3))
    agreement = model.adapt(p, shift={**shift, "warning": False})  # the guard without its shift check
    acc = lambda q: float(((q >= 0.5) == ds.labels).mean())  # noqa: E731
    return {"auc": shift["auc"], "warning": shift["warning"], "plain": acc(p), "forced": acc(forced),
            "agreement": acc(agreement.p_pos), "guarded": acc(adapted.p_pos), "adapted": adapted.decision.adapt,
            "reason": adapted.decision.reason}


def main() -> None:
    from pipeline.store.cache import default_cache_dir
    from pipeline.data.dataset import load
    from pipeline.predict.prior import BOOTSTRAP, PriorModel, estimates
    from pipeline.predict.shift import two_sample_auc
    from pipeline.fit.train import FitPlan, iter_fit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", action="append", dest="encoders", help="encoder spec (repeatable; default minilm)")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    cache_dir = args.cache_dir or default_cache_dir()
    sets = test_sets()
    rt = load("rt")
    print(f"load: {os.getloadavg()[0]:.2f}; budget {args.budget}, seeds {args.seeds}")
    for spec in args.encoders or ["minilm"]:
        results = defaultdict(list)
        for seed in range(args.seeds):
            bundle = next(iter_fit(rt, FitPlan(budget=args.budget, seed=seed), encoder=spec, cache_dir=cache_dir))
            for name, ds in sets.items():
                results[name].append(run_set(bundle, ds))
                r = results[name][-1]
                print(f"  {spec} seed {seed} {name}: {r['reason']}", flush=True)
        print(f"\n{spec} + logreg, {args.budget} RT labels, mean over {args.seeds} seeds (accuracy %):\n")
        print("| set | texts | positive | shift AUC | warns | plain | EM forced | estimates agree | guarded | adapted |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, rs in results.items():
            ds = sets[name]
            mean = lambda k: np.mean([r[k] for r in rs])  # noqa: E731
            print(f"| {name} | {len(ds)} | {ds.labels.mean():.2f} | {mean('auc'):.2f} | "
                  f"{sum(r['warning'] for r in rs)}/{len(rs)} | {100 * mean('plain'):.1f} | {100 * mean('forced'):.1f} | "
                  f"{100 * mean('agreement'):.1f} | {100 * mean('guarded'):.1f} | {sum(r['adapted'] for r in rs)}/{len(rs)} |")
        big = [t for name in sets if name.startswith(("uci-", "vader-")) and "@" not in name for t in sets[name].texts]
        texts = big[:10_000]
        start = time.perf_counter()
        X = bundle.embed(texts)
        p = bundle.head.predict_proba(X)[:, 1]
        predict_s = time.perf_counter() - start
        shift = two_sample_auc(bundle.shift_sample, X)
        start = time.perf_counter()
        found = estimates(p, PriorModel.from_manifest(bundle.manifest))
        estimate_s = time.perf_counter() - start
        print(f"\ntiming on {len(texts):,} target texts (load {os.getloadavg()[0]:.2f}): cached vectors + head "
              f"{predict_s:.2f} s; shift check {shift.seconds:.2f} s (AUC {shift.auc:.2f}); EM + BBSE with "
              f"{BOOTSTRAP} bootstrap resamples {estimate_s:.2f} s ({', '.join(e.text() for e in found)})")


if __name__ == "__main__":
    main()
