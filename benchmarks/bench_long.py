"""Long-text benchmark: encode cost and accuracy of truncate, head-tail and chunk-mean on long reviews.

Long reviews are real RT snippets of one movie and one label joined into documents
(:func:`benchmarks.long_reviews.concatenate`). Scaled down to run in minutes on a CPU: documents of
10 snippets (~250 word pieces) at a max length of 64 overflow the window about 4x, like a
1,000-word-piece review at MiniLM's 256.

Default mode, frozen encoder: for each strategy, encode seconds (no cache; the tokenizer and model are
loaded before timing), the ratio to truncate, and logistic-regression accuracy on the documents
(mean ± sd over seeds, train/test split by movie).

``--finetune``: MiniLM fine-tuned (method ``head``, window 64) on ``--budget`` RT snippets of the pool,
scored with its own head on documents built from the held-out test movies only, read by each strategy
through windows of each ``--windows`` size; frozen MiniLM + logreg fitted on the same snippets for
reference. ``--train-docs N`` adds the study of training on long texts: N pool documents fine-tuned
cut at the window (as ``finetune`` does), cut into all their windows (each a labelled example), or
whole at ``--doc-length`` word pieces, each read with chunk-mean.

Run:  .venv/bin/python benchmarks/bench_long.py [--docs 300] [--per-doc 10] [--max-length 64] [--seeds 5]
      .venv/bin/python benchmarks/bench_long.py --finetune [--budget 1000] [--seeds 2] [--windows 64,128,256]
                       [--compositions 3] [--train-docs 400]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np

STRATEGIES = ("truncate", "head-tail", "chunk-mean")


def accuracy(X: np.ndarray, y: np.ndarray, groups: list[str], seeds: int) -> np.ndarray:
    """Held-out accuracy of logistic regression for each seed of a 70/30 split by group."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupShuffleSplit

    scores = []
    for seed in range(seeds):
        train, test = next(GroupShuffleSplit(1, test_size=0.3, random_state=seed).split(X, y, groups))
        scores.append(LogisticRegression(C=1.0, max_iter=2000).fit(X[train], y[train]).score(X[test], y[test]))
    return np.array(scores)


def frozen(args: argparse.Namespace) -> None:
    """Frozen encoder: cost and logistic-regression accuracy of each strategy on the documents."""
    from pipeline.data.dataset import load
    from pipeline.encoders import get_encoder
    from benchmarks.long_reviews import concatenate

    docs = concatenate(load("rt"), args.per_doc, seed=0, limit=args.docs)
    print(f"{len(docs)} documents of {args.per_doc} RT snippets ({len(set(docs.groups))} movies), "
          f"{args.encoder} at max length {args.max_length}, {args.seeds} seeds")
    rows = {}
    for strategy in STRATEGIES:
        enc = get_encoder(args.encoder, max_length=args.max_length, precision="fp32", long_text=strategy)
        if strategy == STRATEGIES[0]:
            print(enc.length_stats(docs.texts).line())
        start = time.perf_counter()
        X = enc.encode(docs.texts)
        seconds = time.perf_counter() - start
        rows[strategy] = (seconds, accuracy(X, docs.labels, docs.groups, args.seeds))
    base = rows["truncate"][0]
    print(f"{'strategy':<11} {'encode s':>9} {'x truncate':>10} {'texts/s':>8}  accuracy (mean ± sd)")
    for strategy, (seconds, acc) in rows.items():
        print(f"{strategy:<11} {seconds:>9.1f} {seconds / base:>10.2f} {len(docs) / seconds:>8.1f}  "
              f"{100 * acc.mean():.1f} ± {100 * acc.std(ddof=1):.1f}")
    gain = rows["chunk-mean"][1] - rows["truncate"][1]
    print(f"chunk-mean - truncate: {100 * gain.mean():+.1f} accuracy points (paired over seeds, "
          f"min {100 * gain.min():+.1f}), for {rows['chunk-mean'][0] / base:.2f}x the encode time")


# ---------------------------------------------------------------------------------------------- fine-tuned
def test_documents(test: Any, per_doc: int, compositions: int) -> Any:
    """Documents of ``per_doc`` snippets of the held-out movies, grouped ``compositions`` ways (seeds 0..)."""
    from dataclasses import replace

    from benchmarks.long_reviews import concatenate

    parts = [concatenate(test, per_doc, seed=seed) for seed in range(compositions)]
    return replace(parts[0], texts=[t for p in parts for t in p.texts], labels=np.concatenate([p.labels for p in parts]),
                   groups=[g for p in parts for g in p.groups], name=f"{test.name}-concat{per_doc}x{compositions}")


def score_grid(spec: str, options: dict[str, Any], head: Any, docs: Any, windows: list[int]) -> dict[tuple[str, int], tuple[float, float]]:
    """``{(strategy, window): (accuracy, encode seconds)}`` of ``head`` on ``docs`` read by the encoder ``spec``."""
    from pipeline.encoders import get_encoder

    out = {}
    for window in windows:
        for strategy in STRATEGIES:
            enc = get_encoder(spec, **{**options, "long_text": strategy, "max_length": window})
            start = time.perf_counter()
            X = enc.encode(docs.texts)
            seconds = time.perf_counter() - start
            out[strategy, window] = (float((head.predict(X) == docs.labels).mean()), seconds)
    return out


def window_examples(ds: Any, tokenizer: Any, max_length: int) -> Any:
    """Every chunk-mean window of every text of ``ds`` as its own labelled text (decoded word pieces)."""
    from dataclasses import replace

    from pipeline.encoders.long_text import Windowing

    windowing = Windowing("chunk-mean", max_length - 2)  # [CLS] and [SEP]
    texts, rows = [], []
    for i, ids in enumerate(tokenizer(ds.texts, add_special_tokens=False)["input_ids"]):
        for piece in windowing.pieces(ids):
            texts.append(tokenizer.decode(piece))
            rows.append(i)
    return replace(ds, texts=texts, labels=ds.labels[rows], groups=[ds.groups[i] for i in rows],
                   name=f"{ds.name}-windows{max_length}")


def finetuned(args: argparse.Namespace) -> None:
    """Fine-tuned MiniLM on long documents: each strategy and window, frozen reference, optional training study."""
    from sklearn.linear_model import LogisticRegression

    from pipeline.data.dataset import load, sample_budget, split
    from pipeline.encoders import get_encoder
    from pipeline.finetune import Runtime, finetune, make_recipe

    pool, test = split(load("rt"))
    docs = test_documents(test, args.per_doc, args.compositions)
    windows = [int(w) for w in args.windows.split(",")]
    probe = get_encoder("minilm", max_length=args.max_length)
    print(f"{len(docs)} documents ({args.compositions} groupings of {args.per_doc} snippets of {len(set(docs.groups))} "
          f"held-out movies, {docs.labels.mean():.1%} positive); {probe.length_stats(docs.texts).line()}")
    print(f"load average {os.getloadavg()[0]:.1f}; fine-tuning window {args.max_length}, budget {args.budget}, "
          f"{args.seeds} seed(s)")
    grids: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-long-") as work:
        for seed in range(args.seeds):
            train = sample_budget(pool, args.budget, seed)
            start = time.perf_counter()
            bundle = finetune(train, out=f"{work}/ft-{seed}", recipe=make_recipe("head", max_length=args.max_length),
                              seed=seed, runtime=Runtime(progress=False))
            print(f"seed {seed}: fine-tuned in {time.perf_counter() - start:.0f} s")
            grids.setdefault(f"fine-tuned on {args.budget} snippets", []).append(
                score_grid(bundle.encoder_spec, bundle.encoder_options, bundle.head, docs, windows))
            frozen_enc = get_encoder("minilm")
            head = LogisticRegression(max_iter=2000).fit(frozen_enc.encode(train.texts), train.labels)
            grids.setdefault(f"frozen + logreg on {args.budget} snippets", []).append(
                score_grid("minilm", {}, head, docs, windows))
        if args.train_docs:
            study(pool, docs, args, work, grids)
    for name, runs in grids.items():
        print_grid(name, runs, windows)


def study(pool: Any, docs: Any, args: argparse.Namespace, work: str, grids: dict[str, list[dict]]) -> None:
    """Fine-tune (seed 0) on long pool documents: cut, as windows, whole; score each with every strategy at its training window."""
    from transformers import AutoTokenizer

    from pipeline.encoders.models import minilm
    from pipeline.finetune import Runtime, finetune, make_recipe
    from benchmarks.long_reviews import concatenate

    train = concatenate(pool, args.per_doc, seed=0, limit=args.train_docs)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm()[0]))
    ways = {
        f"fine-tuned on {len(train)} documents, cut at {args.max_length}": (train, args.max_length),
        f"fine-tuned on all {args.max_length}-windows of {len(train)} documents": (
            window_examples(train, tokenizer, args.max_length), args.max_length),
    }
    if args.doc_length:
        ways[f"fine-tuned on {len(train)} documents whole ({args.doc_length})"] = (train, args.doc_length)
    for name, (ds, length) in ways.items():
        start = time.perf_counter()
        bundle = finetune(ds, out=f"{work}/study-{len(grids)}", recipe=make_recipe("head", max_length=length), seed=0,
                          runtime=Runtime(progress=False))
        print(f"{name}: {len(ds)} examples, fine-tuned in {time.perf_counter() - start:.0f} s")
        grids[name] = [score_grid(bundle.encoder_spec, bundle.encoder_options, bundle.head, docs, [length])]


def print_grid(name: str, runs: list[dict], windows: list[int]) -> None:
    """Accuracy (mean over runs, min-max) and encode seconds of each strategy at each window."""
    print(f"\n{name} ({len(runs)} run{'s' if len(runs) > 1 else ''}): accuracy % on the documents, encode s")
    print(f"{'window':>6}  " + "  ".join(f"{s:>22}" for s in STRATEGIES))
    for window in windows:
        if (STRATEGIES[0], window) not in runs[0]:
            continue
        cells = []
        for strategy in STRATEGIES:
            acc = np.array([r[strategy, window][0] for r in runs]) * 100
            secs = np.mean([r[strategy, window][1] for r in runs])
            spread = f" ({acc.min():.1f}-{acc.max():.1f})" if len(runs) > 1 else ""
            cells.append(f"{acc.mean():5.1f}{spread} {secs:5.0f}s".rjust(22))
        print(f"{window:>6}  " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300, help="frozen mode: documents (balanced)")
    parser.add_argument("--per-doc", type=int, default=10, help="RT snippets per document")
    parser.add_argument("--max-length", type=int, default=64, help="max length in word pieces (fine-tuning window)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds  [default: 5 frozen, 2 --finetune]")
    parser.add_argument("--encoder", default="minilm", help="frozen mode: encoder spec")
    parser.add_argument("--finetune", action="store_true", help="score fine-tuned MiniLM bundles instead")
    parser.add_argument("--budget", type=int, default=1000, help="--finetune: RT snippets to fine-tune on")
    parser.add_argument("--windows", default="64,128,256", help="--finetune: windows (word pieces) to read documents with")
    parser.add_argument("--compositions", type=int, default=3, help="--finetune: ways of grouping the test snippets")
    parser.add_argument("--train-docs", type=int, default=0, help="--finetune: also fine-tune on N pool documents")
    parser.add_argument("--doc-length", type=int, default=256, help="--train-docs: max length of the whole-document run (0: skip it)")
    args = parser.parse_args()
    if args.finetune:
        args.seeds = 2 if args.seeds is None else args.seeds  # 0: only the --train-docs study
        finetuned(args)
    else:
        args.seeds = args.seeds or 5
        frozen(args)


if __name__ == "__main__":
    main()
