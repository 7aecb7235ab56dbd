"""The default `fit` reading English texts with both of its encoders, on RT's validation split and, with no target
labels, on the development targets' `val` halves.

The default encoder is routed (``E|O``: English texts through ``mpnet[layers=9-12]``, others through
multilingual-e5, a head per side fitted on the same labels, :mod:`pipeline.heads.routed`). For training it
already reads English texts with both encoders, so both heads see every RT label. Three ways to score an English
text, all from one fit per cell, paired (the samples of ``bench_indomain.py``: RT's pool cut by
``validation_split``, one balanced sample of the training part per budget and seed; RT's test split never read):

- ``one``: today's default: the English head on E's columns;
- ``concat``: ``E+O|O``, one English head on both encoders' columns side by side (prompt direction of the
  concatenated prompt vectors), the other side as before;
- ``sum``: ``E+O|O`` with both sides' heads as the default fits them, an English text scored by the sum of their
  log-odds (as ``retarget``'s second view scores the source; :func:`pipeline.heads.routed.sums`).

Each also self-trained (``st:``, ``fit --self-train``: the routed head self-trained per side on up to
``--max-unlabelled`` of the training part's other texts). Prints validation accuracy (mean ± sd over seeds),
the paired gain over ``one`` (± SE) and the head's CPU seconds per cell (``time.process_time``, vectors cached).
At ``--target-budgets`` the same heads score the development targets' ``val`` halves with no target label
(accuracy at the bundle's threshold and ROC-AUC; ``bench_retarget.target(name, 1000, "val")``). ``--speed`` times
the two encoders instead (:func:`speed`). The encoder runs as ``fit`` runs it (``backend auto``).

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_two_views.py [--budgets 16,32,128,1000,all]
        [--seeds 5] [--targets uci-amazon,...] [--target-budgets 1000] [--no-self-train]
    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_two_views.py --speed [--speed-texts 400]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from bench_indomain import paired_gain, samples
from bench_retarget import ENGLISH, LOW_RATE, target
from sklearn.metrics import roc_auc_score

from pipeline.data.dataset import load, split, validation_split
from pipeline.encoders.auto import auto_encoder
from pipeline.encoders.spec import ENGLISH_ENCODER
from pipeline.fit.retarget_side import widened
from pipeline.heads.prompts import DEFAULT as PROMPTS
from pipeline.heads.prompts import encoded_direction
from pipeline.heads.registry import FitOptions
from pipeline.heads.routed import fit_routed
from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.unlabelled.routed import self_train_routed

VIEWS = ("one", "concat", "sum")
ROUTED = f"{ENGLISH_ENCODER}|multilingual-e5"  # E|O: the routed encoder English texts read through E alone


def log_odds(routed: Any, X: np.ndarray) -> np.ndarray:
    """Log-odds of positive of each row of ``X`` under a fitted ``RoutedClassifier``."""
    p = np.clip(routed.predict_proba(X)[:, 1], 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


@contextlib.contextmanager
def one_head_on_both() -> Iterator[None]:
    """``E+O|O`` fitted as before the summed English side: one English head over both encoders' columns."""
    from pipeline.heads import routed
    from pipeline.unlabelled import routed as routed_self_train

    saved = routed.sums
    routed.sums = routed_self_train.sums = lambda *_: False
    try:
        yield
    finally:
        routed.sums = routed_self_train.sums = saved


def fitted(view: str, self_train: bool, X: np.ndarray, y: np.ndarray, X_rest: np.ndarray, layouts: dict,
           directions: dict, options: FitOptions) -> Any:
    """The fitted routed head of ``view``: ``one`` on ``E|O``, ``sum`` on ``E+O|O`` as ``fit`` fits it, ``concat``
    on ``E+O|O`` with one English head over both parts."""
    key = "one" if view == "one" else "wide"
    layout, u = layouts[key], directions[key]
    with one_head_on_both() if view == "concat" else contextlib.nullcontext():
        if self_train:
            return self_train_routed("logreg", X, y, X_rest, layout, options=FitOptions(
                groups=options.groups, seed=options.seed, prompt_direction=u))[0].estimator
        return fit_routed("logreg", X, y, layout,
                          FitOptions(groups=options.groups, seed=options.seed, prompt_direction=u)).estimator


def long_texts(texts: list[str], n: int, words: int, seed: int = 0) -> list[str]:
    """``n`` texts of at least ``words`` words, each RT snippets of ``texts`` drawn at random and joined."""
    rng, out = np.random.default_rng(seed), []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < words:
            parts.append(texts[int(rng.integers(len(texts)))])
        out.append(" ".join(parts))
    return out


def speed(enc: Any, texts: list[str], n: int, rounds: int) -> None:
    """Texts/s (wall and per CPU s) of the default's English part and of e5 (each as backend auto runs it, loaded
    and warmed first) on the same ``n`` RT texts and ``n`` 100-word texts, uncached, ``rounds`` rounds alternating
    the order; then e5's time over the English part's (what reading English texts with both adds)."""
    parts = {"English part": enc.parts[0], "e5": enc.parts[1]}
    for label, sample in (("RT snippets", texts[:n]), ("100-word texts", long_texts(texts, n, 100))):
        words = np.median([len(t.split()) for t in sample])
        for part in parts.values():
            part.encode(sample[:64])  # warm: the session loads
        spent = {name: [0.0, 0.0] for name in parts}
        for r in range(rounds):
            for name in list(parts) if r % 2 == 0 else list(parts)[::-1]:
                t0, c0 = time.time(), time.process_time()
                parts[name].encode(sample)
                spent[name][0] += time.time() - t0
                spent[name][1] += time.process_time() - c0
        for name, (wall, cpu) in spent.items():
            print(f"{label} (median {words:.0f} words) {name:12s} {parts[name].spec}: {rounds * len(sample) / wall:6.1f} "
                  f"texts/s wall, {rounds * len(sample) / cpu:6.1f} per CPU s", flush=True)
        (w0, c0), (w1, c1) = spent.values()
        print(f"{label}: e5 / English part time: wall {w1 / w0:.2f}x, CPU {c1 / c0:.2f}x; both / English part alone: "
              f"wall {(w0 + w1) / w0:.2f}x; load {os.getloadavg()[0]:.1f}", flush=True)


def report(rows: dict, budget: str, methods: list[str], what: str) -> None:
    """One line per method: accuracy mean ± sd, paired gain over the first method ± SE, and the other figures."""
    base = np.array([r[0] for r in rows[methods[0]]])
    for m in methods:
        r = np.array(rows[m])
        gain, se = paired_gain(r[:, 0], base)
        extra = f"cpu s/cell {r[:, 1].mean():5.2f}" if what == "RT val" else f"AUC {r[:, 1].mean():.3f}"
        print(f"{budget:>5} {what:16s} {m:10s} acc {r[:, 0].mean():5.1f} ± {r[:, 0].std():.1f}  vs {methods[0]} "
              f"{gain:+5.1f} ± {se:.1f}  {extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", default="16,32,128,1000,all")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-unlabelled", type=int, default=4000)
    parser.add_argument("--targets", default=",".join([*ENGLISH, *LOW_RATE]))
    parser.add_argument("--target-budgets", default="1000")
    parser.add_argument("--no-self-train", action="store_true")
    parser.add_argument("--speed", action="store_true", help="only time the two encoders side by side")
    parser.add_argument("--speed-texts", type=int, default=400, help="texts per length for --speed")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --speed, alternating the order")
    args = parser.parse_args()
    t0, cache_dir = time.time(), default_cache_dir()
    cache = EmbeddingCache(cache_dir, progress=False)
    tr, va = validation_split(split(load("rt"))[0])
    sets = {"RT val": va, **{name: target(name, 1000, "val") for name in filter(None, args.targets.split(","))}}
    enc = auto_encoder(ROUTED, tr.texts, {"work_dir": cache_dir})[0]  # as `fit` runs it: backend auto
    if args.speed:
        speed(enc, va.texts, args.speed_texts, args.rounds)
        return
    wide = widened(enc)
    layouts = {"one": enc.layout(), "wide": wide.layout()}
    directions = {"one": encoded_direction(PROMPTS, enc, cache_dir), "wide": encoded_direction(PROMPTS, wide, cache_dir)}
    scored = [t for ds in sets.values() for t in ds.texts]
    V = cache.vectors(enc, tr.texts + scored)  # English texts read both encoders (training's reading)
    ntr = len(tr)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"{enc.spec}: RT train part {ntr}, validation part {len(va)}; targets "
          + ", ".join(f"{n} {len(ds)}" for n, ds in list(sets.items())[1:])
          + f"; load {os.getloadavg()[0]:.1f}; commit {commit}", flush=True)
    modes = [False] if args.no_self_train else [False, True]
    for b in args.budgets.split(","):
        rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for n, seed, idx, rest in samples(tr, b, args.seeds, args.max_unlabelled):
            y, options = tr.labels[idx], FitOptions(groups=[tr.groups[i] for i in idx], seed=seed)
            for self_train in modes:
                if self_train and n is None:
                    continue
                for view in VIEWS:
                    c0 = time.process_time()
                    head = fitted(view, self_train, V[idx], y, V[rest], layouts, directions, options)
                    cpu = time.process_time() - c0
                    z, start = log_odds(head, V[ntr:]), 0
                    name = ("st:" if self_train else "") + view
                    for what, ds in sets.items():
                        part = z[start:start + len(ds)]
                        start += len(ds)
                        acc = 100 * float(np.mean((part > 0) == ds.labels))
                        second = cpu if what == "RT val" else roc_auc_score(ds.labels, part)
                        rows.setdefault((what, name), []).append((acc, second))
        names = [("st:" if s else "") + v for s in modes for v in VIEWS]
        for what in sets:
            if what != "RT val" and b not in args.target_budgets.split(","):
                continue
            for group in (names[:3], names[3:]):
                present = [m for m in group if (what, m) in rows]
                if present:
                    report({m: rows[(what, m)] for m in present}, b, present, what)
    print(f"{time.time() - t0:.0f} s wall; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
