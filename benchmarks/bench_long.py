"""Long-text benchmark: encode cost and accuracy of truncate, head-tail and chunk-mean on long reviews.

Long reviews are real RT snippets of one movie and one label joined into documents
(:func:`pipeline.long_reviews.concatenate`). Scaled down to run in minutes on a CPU: documents of
10 snippets (~250 word pieces) at a max length of 64 overflow the window about 4x, like a
1,000-word-piece review at MiniLM's 256. For each strategy: encode seconds (no cache; the
tokenizer and model are loaded before timing), the ratio to truncate, and logistic-regression
accuracy (mean ± sd over seeds, train/test split by movie).

Run:  .venv/bin/python benchmarks/bench_long.py [--docs 300] [--per-doc 10] [--max-length 64] [--seeds 5]
"""

from __future__ import annotations

import argparse
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300, help="documents (balanced)")
    parser.add_argument("--per-doc", type=int, default=10, help="RT snippets per document")
    parser.add_argument("--max-length", type=int, default=64, help="MiniLM max length in word pieces")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--encoder", default="minilm")
    args = parser.parse_args()

    from pipeline.data import load
    from pipeline.encoders import get_encoder
    from pipeline.long_reviews import concatenate

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


if __name__ == "__main__":
    main()
