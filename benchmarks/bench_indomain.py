"""In-domain levers past the frozen mpnet head, on RT's validation split, from cached vectors only.

RT's pool is cut by :func:`pipeline.data.dataset.validation_split` (whole films) into a training part and a
validation part; RT's test split is never read. For each budget and seed one balanced sample of the training
part is drawn (as ``compare`` draws it) and every method fits on it, paired:

- ``mpnet``: logreg with the prompt prior (the default ``fit``);
- ``A+B``: logreg with the prompt prior on the concatenated vectors (the ``A+B`` encoder spec), its prompt
  direction that of the concatenated prompt vectors;
- ``ens:A,B``: one prompted logreg per encoder, their log-odds averaged (a score ensemble);
- ``st:A[:FRACTION[:ROUNDS]]``: self-training on encoder(s) ``A``: the prompted teacher labels up to
  ``--max-unlabelled`` of the training part's other texts, the student refits (``fit --self-train``; default
  fraction 0.5, one round); ``self-train`` is ``st:mpnet``;
- ``nb``: word evidence alone: NBSVM-style binary unigrams and bigrams scaled by their log-count ratios on the
  sample, then logistic regression (``indomain_levers.Words``; the vocabulary from the training part's texts);
- ``nb-ens:A[:W]``: ``A``'s prompted head's log-odds plus ``W`` (default 0.25) times ``nb``'s;
- ``ls:A``: label spreading over a kNN graph of the sample and the training part's other texts, from the prompted
  head's probabilities, then a student on the surest half (``indomain_levers.spread_student``);
- any method ``/k=MAX,LABELS``: the prompt prior's ``KAPPA_MAX`` and ``KAPPA_LABELS`` set to those values.

Prints mean accuracy on the validation part (± sd over seeds), the paired gain over ``--base`` (default
``mpnet``, ± SE), and the CPU seconds per cell (``time.process_time`` of the fit, vectors already cached; 1 BLAS
thread). ``--targets`` (e.g. ``uci-amazon-val,uci-yelp-val``, :mod:`benchmarks.targets`) scores the same heads on
those shifted sets too, one line each. Encoder names: ``mpnet`` (fp32), ``minilm``, ``glove``, ``e5``
(multilingual, with its query prefix), ``multilingual`` (the alias: e5 as `--encoder multilingual` runs it), ``layers`` (``mpnet[layers=9-12]``, torch), ``static`` (mpnet's static int8 export, what
``backend auto`` runs), ``layers-static`` (the static int8 export of ``mpnet[layers=9-12]``) and ``layers-static-a95``
(the same, calibrated by the older recipe ``rt-a95``, :mod:`pipeline.encoders.calibration`); ``static-a75`` is plain
mpnet's static export under the recipe ``rt-a75`` (its default is ``rt-a95``).

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=. python benchmarks/bench_indomain.py [--budgets 16,...,1000,all]
        [--seeds 5] [--methods mpnet,mpnet+minilm,ens:mpnet,minilm,self-train] [--base mpnet] [--targets ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.indomain_levers import Words, nb_log_odds, prompt_strength, spread_student
from benchmarks.targets import load_target
from pipeline.data.dataset import budget_indices, load, split, validation_split
from pipeline.encoders import get_encoder
from pipeline.heads.prompts import DEFAULT as PROMPTS
from pipeline.heads.prompts import KAPPA_LABELS, KAPPA_MAX, direction
from pipeline.heads.registry import FitOptions, fit_head
from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.unlabelled.self_train import SelfTrainSettings, self_train_head

SHORT = {"mpnet": "mpnet[precision=fp32]", "minilm": "minilm", "glove": "glove-6b-50d", "e5": "e5-small-multilingual",
         "layers": "mpnet[layers=9-12]", "static": "mpnet[backend=openvino,quantize=int8-static]",
         "static-a75": "mpnet[backend=openvino,quantize=int8-static,calibration=rt-a75]",
         "layers-static": "mpnet[layers=9-12,backend=openvino,quantize=int8-static]", "multilingual": "multilingual",
         "layers-static-a95": "mpnet[layers=9-12,backend=openvino,quantize=int8-static,calibration=rt-a95]"}


def vectors(cache: EmbeddingCache, names: list[str], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The concatenated vectors of ``texts`` and the unit prompt direction, under encoders ``names``."""
    parts = [get_encoder(SHORT[n]) for n in names]
    X = np.hstack([cache.vectors(e, texts) for e in parts])
    P = np.hstack([cache.vectors(e, PROMPTS.texts) for e in parts])
    return X, direction(P, len(PROMPTS.positive))


def log_odds(est, X: np.ndarray) -> np.ndarray:
    p = np.clip(est.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def samples(tr, budget: str, seeds: int, max_unlabelled: int):
    """``(n, seed, labelled indices, unlabelled indices)`` of each seed at ``budget`` (``all``: one seed) in the
    training part ``tr``: the balanced sample ``compare`` draws, and up to ``max_unlabelled`` of the other texts."""
    n = None if budget == "all" else int(budget)
    for seed in range(1 if n is None else seeds):
        idx = budget_indices(tr, n, seed)
        rest = np.setdiff1d(np.arange(len(tr)), idx)
        yield n, seed, idx, np.sort(np.random.default_rng(seed).permutation(rest)[:max_unlabelled])


def core(method: str) -> str:
    """``method`` without its ``/k=MAX,LABELS`` suffix."""
    return method.split("/")[0]


def strength(method: str) -> tuple[float, float]:
    """The prompt prior's (KAPPA_MAX, KAPPA_LABELS) for ``method``: its ``/k=MAX,LABELS`` suffix, or the defaults."""
    suffix = method.partition("/k=")[2]
    return tuple(float(v) for v in suffix.split(",")) if suffix else (KAPPA_MAX, KAPPA_LABELS)


def vector_names(method: str) -> list[str] | None:
    """The encoders whose concatenated vectors ``method`` fits on; None for ``ens:`` and ``nb`` (built per part)."""
    m = core(method)
    if m.startswith("ens:") or m == "nb":
        return None
    return (m.split(":")[1] if ":" in m else m).split("+")


@dataclass(frozen=True)
class Cell:
    """What one method sees in one (budget, seed) cell: vectors, the labelled sample and the pool's other texts."""

    V: dict[str, tuple[np.ndarray, np.ndarray]]  # encoder name -> (vectors of training part + scored texts, prompt direction)
    built: tuple[np.ndarray, np.ndarray] | None  # the method's own (concatenated) vectors and direction
    words: Any  # indomain_levers.Words over the same rows, or None
    ntr: int  # rows before the scored texts
    idx: np.ndarray  # the labelled sample (rows of the training part)
    y: np.ndarray
    groups: list
    seed: int
    rest: np.ndarray  # the training part's other texts (unlabelled), for self-training and spreading


def cell(m: str, c: Cell) -> np.ndarray:
    """0/1 predictions on the scored rows of method ``m`` (without its ``/k=`` suffix) fitted on cell ``c``."""
    scored = slice(c.ntr, None)
    if m.startswith("ens:"):
        z = 0.0
        for name in m[4:].split(","):
            X, u = c.V[name]
            z = z + log_odds(fit_head("logreg", X[c.idx], c.y,
                                      FitOptions(groups=c.groups, seed=c.seed,
                                                 prompt_direction=u)).estimator, X[scored])
        return (z > 0).astype(int)
    if m == "nb":
        return (nb_log_odds(c.words, c.idx, c.y, scored) > 0).astype(int)
    X, u = c.built
    if m.startswith("st:"):
        given = m.split(":")[2:]
        fraction, rounds = (given + ["0.5", "1"][len(given):])[:2]
        settings = SelfTrainSettings(fraction=float(fraction), rounds=int(rounds))
        st, _ = self_train_head("logreg", X[c.idx], c.y, X[c.rest], settings=settings,
                                options=FitOptions(groups=c.groups, seed=c.seed, prompt_direction=u))
        return st.estimator.predict(X[scored])
    head = fit_head("logreg", X[c.idx], c.y, FitOptions(groups=c.groups, seed=c.seed, prompt_direction=u))
    if m.startswith("ls:"):
        return spread_student(head, X[c.idx], c.y, X[c.rest], seed=c.seed).predict(X[scored])
    if m.startswith("nb-ens:"):
        weight = float(m.split(":")[2]) if m.count(":") > 1 else 0.25
        z = log_odds(head.estimator, X[scored]) + weight * nb_log_odds(c.words, c.idx, c.y, scored)
        return (z > 0).astype(int)
    return head.estimator.predict(X[scored])


def report_budget(rows: dict[tuple[str, str], list[tuple[float, float]]], budget: str, methods: list[str],
                  base_method: str) -> None:
    """One line per method at ``budget``: validation accuracy (mean ± sd over seeds), the paired gain over
    ``base_method`` (± SE) and the CPU seconds per cell; ``rows[(budget, method)]`` holds (accuracy, CPU s) per seed."""
    base = np.array([a for a, _ in rows[(budget, base_method)]])
    for m in methods:
        if (budget, m) not in rows:
            continue
        r = np.array(rows[(budget, m)])
        gain, se = paired_gain(r[:, 0], base)
        print(f"{budget:>5} {m:28s} val {r[:, 0].mean():5.1f} ± {r[:, 0].std():.1f}  vs {base_method} "
              f"{gain:+5.1f} ± {se:.1f}  cpu s/cell {r[:, 1].mean():6.2f}", flush=True)


def paired_gain(values: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """The mean of ``values - base`` (paired over seeds) and its standard error (nan for one seed)."""
    d = np.asarray(values) - np.asarray(base)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", default="16,32,64,128,256,512,1000")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", default="mpnet;mpnet+minilm;mpnet+minilm+glove;ens:mpnet,minilm;self-train")
    parser.add_argument("--max-unlabelled", type=int, default=4000, help="self-training's unlabelled texts (seeded)")
    parser.add_argument("--base", default="mpnet", help="the method gains are paired against")
    parser.add_argument("--targets", default="", help="shifted sets scored too (benchmarks.targets names)")
    args = parser.parse_args()
    t0 = time.time()
    cache = EmbeddingCache(default_cache_dir(), progress=False)
    pool, _ = split(load("rt"))
    tr, va = validation_split(pool)
    sets = {"val": va, **{name: load_target(name) for name in filter(None, args.targets.split(","))}}
    scored = [t for ds in sets.values() for t in ds.texts]  # every scored text, after the training part's
    methods = args.methods.split(";")
    need = {n for m in methods for n in re.split(r"[+,]", core(m).split(":")[1 if ":" in core(m) else 0]) if n in SHORT}
    need |= {core(args.base)} & set(SHORT)  # the base's vectors, for a base method named by its encoder
    V = {n: vectors(cache, [n], tr.texts + scored) for n in need}
    ntr = len(tr)
    print(f"RT pool: train part {ntr} texts, validation part {len(va)} ({va.labels.mean():.1%} positive); "
          f"load {os.getloadavg()[0]:.1f}; commit "
          f"{subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}")

    def concat(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if len(names) == 1:
            return V[names[0]]
        return vectors(cache, names, tr.texts + scored)

    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    methods = ["st:mpnet" if m == "self-train" else m for m in methods]
    built = {m: concat(vector_names(m)) for m in methods if vector_names(m)}
    words = Words(tr.texts, tr.texts + scored) if any(core(m).startswith("nb") for m in methods) else None
    for b in args.budgets.split(","):
        for n, seed, idx, rest in samples(tr, b, args.seeds, args.max_unlabelled):
            y, groups = tr.labels[idx], [tr.groups[i] for i in idx]
            for m in methods:
                if n is None and core(m).startswith(("st:", "ls:")):
                    continue  # on the whole training part nothing is left unlabelled
                c0 = time.process_time()
                with prompt_strength(*strength(m)):
                    pred = cell(core(m), Cell(V, built.get(m), words, ntr, idx, y, groups, seed, rest))
                cpu, start = time.process_time() - c0, 0
                for name, ds in sets.items():
                    hit = pred[start:start + len(ds)] == ds.labels
                    start += len(ds)
                    key = m if name == "val" else f"{m} @{name}"
                    rows.setdefault((b, key), []).append((100 * float(hit.mean()), cpu))
        report_budget(rows, b, methods, args.base)
        for name in list(sets)[1:]:
            report_budget(rows, b, [f"{m} @{name}" for m in methods], f"{args.base} @{name}")
    print(f"{time.time() - t0:.0f} s wall; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
