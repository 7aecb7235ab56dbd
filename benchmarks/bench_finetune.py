"""Fine-tuning benchmark: is back-propagating through MiniLM worth it, and what does it cost on this machine?

For each label budget and seed, the same balanced RT sample trains (a) frozen MiniLM vectors + the
stage-two ``logreg`` head (through the embedding cache, as ``fit`` does) and (b) each fine-tuning
method; all are scored on RT's held-out test split. Prints one row per cell as it finishes, then
per budget and method the mean test accuracy (± sd over seeds), the gain over the frozen baseline
and the fine-tuning wall time against the 10-minute target. Each finished cell is appended to
``--out`` (JSON lines); rerunning with the same file skips the cells it already holds.

Run:  .venv/bin/python benchmarks/bench_finetune.py [--budgets 128,1000] [--seeds 3] [--methods head,setfit]
      [--test-limit N] [--out results.jsonl] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_SECONDS = 600  # fine-tuning on 1,000 labels should finish within 10 minutes on 2 CPU cores


def frozen_cell(train, test, seed: int, cache_dir: str) -> dict:
    """MiniLM vectors (cached) + stage two's logreg head with its CV grid: the baseline to beat."""
    from pipeline.store.cache import EmbeddingCache
    from pipeline.heads.registry import FitOptions, fit_head

    start = time.perf_counter()
    vectors = EmbeddingCache(cache_dir).vectors(_frozen_minilm(cache_dir), train.texts + test.texts)
    fitted = fit_head("logreg", vectors[: len(train)], train.labels, FitOptions(groups=train.groups, seed=seed))
    proba = fitted.estimator.predict_proba(vectors[len(train):])
    return {"accuracy": _accuracy(test.labels, proba), "fit_seconds": fitted.fit_seconds,
            "total_seconds": time.perf_counter() - start}


@functools.cache
def _frozen_minilm(cache_dir: str):
    from pipeline.encoders import get_encoder

    return get_encoder("minilm", work_dir=cache_dir)


def finetune_cell(train, test, seed: int, method: str) -> dict:
    """Fine-tune MiniLM with ``method`` (default recipe) and score it on ``test``."""
    from pipeline.finetune import finetune_and_score, make_recipe

    with tempfile.TemporaryDirectory(prefix="bench-ft-") as work:
        start = time.perf_counter()
        probas, fit_s, encode_s = finetune_and_score(train, {"test": test}, work_dir=work,
                                                     recipe=make_recipe(method), seed=seed)
    return {"accuracy": _accuracy(test.labels, probas["test"]), "fit_seconds": fit_s, "encode_seconds": encode_s,
            "total_seconds": time.perf_counter() - start}


def _accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(((proba[:, 1] >= 0.5) == y).mean())


def main() -> None:
    import torch

    from pipeline.store.cache import default_cache_dir
    from pipeline.data.dataset import load, sample_budget, split
    from pipeline.study.tables import format_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="128,1000", help="comma-separated label budgets")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per budget (0..N-1)")
    parser.add_argument("--methods", default="head", help="comma-separated fine-tuning methods: head, setfit")
    parser.add_argument("--test-limit", type=int, default=None, help="score on the first N test texts only")
    parser.add_argument("--out", default=None, help="JSON-lines file of finished cells (resumes)")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    cache_dir = str(args.cache_dir or default_cache_dir())
    budgets = [int(b) for b in args.budgets.split(",")]
    methods = ["frozen"] + args.methods.split(",")

    pool, test = split(load("rt"))
    if args.test_limit:
        test = test.subset(np.arange(min(args.test_limit, len(test))))
    done = _read(args.out)
    print(f"RT: pool {len(pool):,}, test {len(test):,}; torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} (others' work on the machine slows every timing)", flush=True)
    for budget in budgets:
        for seed in range(args.seeds):
            train = sample_budget(pool, budget, seed)
            for method in methods:
                key = (budget, seed, method)
                if key in done:
                    continue
                cell = frozen_cell(train, test, seed, cache_dir) if method == "frozen" else finetune_cell(train, test, seed, method)
                cell.update(budget=budget, seed=seed, method=method, test_size=len(test), load=os.getloadavg()[0])
                done[key] = cell
                _append(args.out, cell)
                print(f"  budget {budget:>5}  seed {seed}  {method:<7} accuracy {cell['accuracy']:.3f}  "
                      f"{cell['total_seconds']:7.1f} s  (load {cell['load']:.1f})", flush=True)
    print()
    print(format_table(*_summary(done, budgets, methods)))


def _summary(done: dict, budgets: list[int], methods: list[str]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    header = ("budget", "method", "seeds", "test accuracy", "vs frozen", "wall s (mean)", "vs 10-min target")
    rows = []
    for budget in budgets:
        base = [c["accuracy"] for (b, _, m), c in sorted(done.items()) if b == budget and m == "frozen"]
        for method in methods:
            cells = [c for (b, _, m), c in sorted(done.items()) if b == budget and m == method]
            if not cells:
                continue
            acc = np.array([c["accuracy"] for c in cells])
            wall = np.mean([c["total_seconds"] for c in cells])
            gain = "-" if method == "frozen" or not base else f"{100 * (acc.mean() - np.mean(base)):+.1f} pts"
            ratio = "-" if method == "frozen" else f"{wall / TARGET_SECONDS:.2f}x"
            rows.append((str(budget), method, str(len(cells)), f"{acc.mean():.3f} ± {acc.std():.3f}", gain,
                         f"{wall:.0f}", ratio))
    return header, rows


def _read(path: str | None) -> dict:
    if not path or not Path(path).is_file():
        return {}
    cells = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {(c["budget"], c["seed"], c["method"]): c for c in cells}


def _append(path: str | None, cell: dict) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(cell) + "\n")


if __name__ == "__main__":
    main()
