"""Fine-tuned mpnet against the frozen default on RT's validation split, and distillation into the frozen head.

RT's pool is cut by :func:`pipeline.data.dataset.validation_split` (whole films) into a training part and a
validation part, as ``bench_indomain.py`` does; a cell is one label budget and seed (``all``: the whole training
part) on the balanced sample ``compare`` draws. Two subcommands:

- ``train``: fine-tune ``mpnet[layers=9-12]`` (the default's pooling: mean of hidden layers 9-12) with method
  ``head``, its linear head started from the default head (logreg with the prompt prior), then save the tuned
  vectors of the validation part, RT's test split, the labelled sample and the training part's other texts
  (the unlabelled pool distillation labels) under ``--work``/``CELL``/, with the CPU seconds
  (``time.process_time``) of training and of each encoding. A killed cell resumes from its checkpoint.
  The test vectors are written, never scored here.
- ``report``: per cell, validation accuracy of the frozen default (``mpnet[layers=9-12]`` static int8 vectors
  from the cache + logreg with the prompt prior), of the fine-tuned model (its own head, and the default head
  refitted on the tuned vectors), and of the frozen default's head distilled from the fine-tuned teacher (trained
  on the labels plus the teacher's soft or hard labels of the other texts). ``--test`` adds RT's test split:
  read it only after the choice is made on validation.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=. nice -n 19 python benchmarks/bench_finetune_val.py train
        --budget 1000 --seed 0 [--epochs N] [--threads 1] [--sets val,test] --work DIR
    REVIEW_TRANSFER_CACHE=... PYTHONPATH=. python benchmarks/bench_finetune_val.py report --work DIR [--test]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ENCODER = "mpnet[layers=9-12]"
MAX_LENGTH = 64
FROZEN = "layers-static"  # bench_indomain's name of the default's vectors


def parts():
    """(training part, validation part, test split) of RT."""
    from pipeline.data.dataset import load, split, validation_split

    pool, test = split(load("rt"))
    tr, va = validation_split(pool)
    return tr, va, test


def sample(tr, budget: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labelled rows, other rows) of the training part for ``budget`` and ``seed``."""
    from pipeline.data.dataset import budget_indices

    idx = budget_indices(tr, None if budget == "all" else int(budget), seed)
    return idx, np.setdiff1d(np.arange(len(tr)), idx)


def train(args: argparse.Namespace) -> None:
    """Fine-tune one cell and save its tuned vectors (see the module docstring)."""
    import torch

    from pipeline.finetune.body import embed, load_body, save_body
    from pipeline.finetune.checkpoint import CheckpointStore
    from pipeline.finetune.head import train_head
    from pipeline.finetune.loop import LoopSettings
    from pipeline.finetune.recipe import auto_epochs, make_recipe
    from pipeline.finetune.run import run_key
    from pipeline.store.cache import default_cache_dir

    torch.set_num_threads(args.threads)
    tr, va, te = parts()
    idx, rest = sample(tr, args.budget, args.seed)
    labelled, targets, noisy = tr.subset(idx), None, {}
    if args.pseudo:  # a noisy student: gold labels plus the frozen teacher's pseudo-labels of the rest
        labelled, targets, noisy = noisy_student_set(tr, idx, rest, args)
    recipe = make_recipe("head", epochs=args.epochs, max_length=MAX_LENGTH, prompt_prior=True)
    epochs = recipe.epochs or auto_epochs(len(labelled), recipe.batch_size)
    tag = f"-frozen-n{args.pseudo}-{'soft' if args.soft else 'hard'}" if args.pseudo else ""
    cell = Path(args.work) / f"{args.budget}-s{args.seed}-e{epochs}{tag}"
    if (cell / "result.json").is_file():
        print(f"{cell}: done already")
        return
    cell.mkdir(parents=True, exist_ok=True)
    settings = LoopSettings(epochs=epochs, device="cpu", precision="fp32", progress=False, checkpoint_seconds=600)
    store = CheckpointStore(cell / "ckpt", run_key(labelled, ENCODER, recipe, args.seed, "cpu", "fp32", targets))
    c0, w0 = time.process_time(), time.perf_counter()
    body = load_body(ENCODER, max_length=MAX_LENGTH, device="cpu", work_dir=default_cache_dir())
    head, result, probe = train_head(body, labelled.texts, labelled.labels, None, recipe=recipe, seed=args.seed,
                                     settings=settings, store=store, targets=targets)
    record = {"budget": args.budget, "seed": args.seed, "epochs": epochs, "labels": len(labelled), **noisy,
              "train_cpu_s": round(time.process_time() - c0, 1), "train_wall_s": round(time.perf_counter() - w0, 1),
              "resumed_from": result.resumed_from, "history": result.history, "probe": probe,
              "threads": args.threads, "load": os.getloadavg()[0], "coef": head[-1].coef_.ravel().tolist(),
              "intercept": float(head[-1].intercept_[0]), "encodes": {}}
    sets = {"val": va.texts, "test": te.texts}
    if args.budget != "all" and not args.pseudo:
        sets.update(train=labelled.texts, rest=[tr.texts[i] for i in rest])
    sets = {name: texts for name, texts in sets.items() if name in args.sets.split(",")}
    for name, texts in sets.items():
        c1 = time.process_time()
        _save_npy(cell / f"{name}.npy", embed(body, texts, device="cpu", precision="fp32"))
        record["encodes"][name] = {"texts": len(texts), "cpu_s": round(time.process_time() - c1, 1)}
        print(f"{cell.name}: encoded {name} ({len(texts)} texts) in {record['encodes'][name]['cpu_s']} CPU s", flush=True)
    if args.save_model:  # the tuned weights (sentence-transformers directory), for bench_finetune_export.py
        save_body(body, cell / "model")
    p_val = head.predict_proba(np.load(cell / "val.npy"))[:, 1]
    record["val_accuracy"] = round(100 * float(((p_val >= 0.5) == va.labels).mean()), 2)
    tmp = cell / "result.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(cell / "result.json")
    store.remove()
    print(f"{cell.name}: val {record['val_accuracy']}%, training {record['train_cpu_s']} CPU s", flush=True)


def frozen_teacher(tr, idx: np.ndarray, rest: np.ndarray, seed: int):
    """The frozen default self-trained on the training part's other texts (``fit --self-train``: the prompted
    logreg on the default's vectors teaches a student over ``rest``), fitted on the labelled rows ``idx``;
    returns the student estimator and the default's vectors of the training part."""
    from benchmarks.bench_indomain import vectors
    from pipeline.heads.registry import FitOptions
    from pipeline.store.cache import EmbeddingCache, default_cache_dir
    from pipeline.unlabelled.self_train import SelfTrainSettings, self_train_head

    X, u = vectors(EmbeddingCache(default_cache_dir()), [FROZEN], tr.texts)
    options = FitOptions(groups=[tr.groups[i] for i in idx], seed=seed, prompt_direction=u)
    teacher, _ = self_train_head("logreg", X[idx], tr.labels[idx], X[rest], settings=SelfTrainSettings(),
                                 options=options)
    return teacher.estimator, X


def noisy_student_set(tr, idx: np.ndarray, rest: np.ndarray, args: argparse.Namespace):
    """(training set, soft targets or None, record): the labelled rows plus ``args.pseudo`` balanced pseudo-labels
    drawn from the surest half of the frozen teacher's labels of ``rest``. The record's pseudo-label accuracy
    reads the training part's own labels (a diagnostic; the teacher never sees them)."""
    from dataclasses import replace

    from pipeline.unlabelled.self_train import SelfTrainSettings, select_pseudo

    c0 = time.process_time()
    teacher, X = frozen_teacher(tr, idx, rest, args.seed)
    p_rest = teacher.predict_proba(X[rest])[:, 1]
    pick, y_pseudo = select_pseudo(p_rest, SelfTrainSettings(balance="equal", max_pseudo=args.pseudo), seed=args.seed)
    rows = np.concatenate([idx, rest[pick]])
    train = replace(tr.subset(rows), labels=np.concatenate([tr.labels[idx], y_pseudo]))
    targets = np.concatenate([tr.labels[idx], p_rest[pick]]).astype(np.float32) if args.soft else None
    record = {"teacher": "frozen, self-trained", "pseudo": int(len(pick)), "soft": args.soft,
              "pseudo_accuracy": round(100 * float((y_pseudo == tr.labels[rest[pick]]).mean()), 2),
              "least_confidence": round(float(np.maximum(p_rest[pick], 1 - p_rest[pick]).min()), 4),
              "teacher_cpu_s": round(time.process_time() - c0, 1)}
    print(f"frozen teacher: {record}", flush=True)
    return train, targets, record


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array.astype(np.float32))
    tmp.replace(path)


def report(args: argparse.Namespace) -> None:
    """Print one block per finished cell: frozen, fine-tuned, refitted and distilled accuracies."""
    from pipeline.heads.registry import FitOptions, fit_head

    from benchmarks.bench_indomain import vectors
    from pipeline.store.cache import EmbeddingCache, default_cache_dir

    tr, va, te = parts()
    X, u = vectors(EmbeddingCache(default_cache_dir()), [FROZEN], tr.texts + va.texts + te.texts)
    frozen = {"train": X[: len(tr)], "val": X[len(tr): len(tr) + len(va)], "test": X[len(tr) + len(va):]}
    scored = {"val": va.labels, **({"test": te.labels} if args.test else {})}
    print(f"load {os.getloadavg()[0]:.1f}")
    summary: dict[tuple[str, str], dict[int, tuple[dict[str, float], float]]] = {}
    for cell in sorted(Path(args.work).glob("*/result.json")):
        r = json.loads(cell.read_text())
        idx, rest = sample(tr, r["budget"], r["seed"])
        y, groups = tr.labels[idx], [tr.groups[i] for i in idx]
        rows: dict[str, tuple[dict[str, float], float]] = {}
        c0 = time.process_time()
        base = fit_head("logreg", frozen["train"][idx], y,
                        FitOptions(groups=groups, seed=r["seed"], prompt_direction=u))
        rows["frozen default"] = (_scores(base.estimator, frozen, scored), time.process_time() - c0)
        tuned = {name: np.load(cell.parent / f"{name}.npy") for name in scored}
        z = {name: tuned[name] @ np.array(r["coef"]) + r["intercept"] for name in scored}
        if r.get("teacher"):
            c0 = time.process_time()
            teacher, _ = frozen_teacher(tr, idx, rest, r["seed"])
            rows["frozen default, self-trained (teacher)"] = (_scores(teacher, frozen, scored),
                                                              time.process_time() - c0)
        name = f"noisy student (+{r['pseudo']} {'soft' if r['soft'] else 'hard'})" if r.get("teacher") else "fine-tuned"
        name += f", {r['epochs']} epoch(s)"
        rows[name] = ({n: _pct(z[n] > 0, scored[n]) for n in scored}, r["train_cpu_s"])
        if (cell.parent / "train.npy").is_file():
            c0 = time.process_time()
            refit = fit_head("logreg", np.load(cell.parent / "train.npy"), y, FitOptions(groups=groups, seed=r["seed"]))
            rows["fine-tuned, default head refitted"] = (_scores(refit.estimator, tuned, scored),
                                                         time.process_time() - c0)
        if (cell.parent / "rest.npy").is_file():
            p_rest = 1 / (1 + np.exp(-(np.load(cell.parent / "rest.npy") @ np.array(r["coef"]) + r["intercept"])))
            for kind in ("soft", "hard"):
                c0 = time.process_time()
                student = _distil(base, frozen["train"][idx], y, frozen["train"][rest], p_rest, kind, r["seed"])
                rows[f"frozen default distilled ({kind})"] = (_scores(student, frozen, scored), time.process_time() - c0)
        print(f"\n{r['budget']} labels, seed {r['seed']}, {r['epochs']} epoch(s); training {r['train_cpu_s']:.0f} CPU s "
              f"on {r['threads']} thread(s), encodes " + ", ".join(f"{k} {v['cpu_s']:.0f}" for k, v in r["encodes"].items()))
        for name, (acc, cpu) in rows.items():
            print(f"  {name:40s} " + "  ".join(f"{k} {v:5.1f}" for k, v in acc.items()) + f"  ({cpu:.1f} CPU s)")
            summary.setdefault((r["budget"], name), {})[r["seed"]] = (acc, cpu)
    print("\nmean ± sd over seeds (paired samples: the same seed draws the same labels)")
    for (budget, name), by_seed in sorted(summary.items(), key=lambda kv: (int(kv[0][0]), kv[0][1])):
        accs = [acc for acc, _ in by_seed.values()]
        cpu = [c for _, c in by_seed.values()]
        print(f"{budget:>4} {name:44s} seeds {','.join(map(str, sorted(by_seed)))}  " + "  ".join(
            f"{k} {np.mean([a[k] for a in accs]):5.1f} ± {np.std([a[k] for a in accs], ddof=1) if len(accs) > 1 else 0:.1f}"
            for k in accs[0]) + f"  CPU s {min(cpu):.0f}-{max(cpu):.0f}")


def _distil(base, X: np.ndarray, y: np.ndarray, X_rest: np.ndarray, p_rest: np.ndarray, kind: str, seed: int):
    """The frozen default head (the grid point ``base`` chose on the labels) refitted on the labels plus the
    teacher's labels of ``X_rest``: soft (each text twice, as each class, weighted by the teacher's probability)
    or hard (the teacher's class)."""
    from pipeline.heads.registry import build_head, unit_rows

    n = len(y) + len(X_rest)
    student = build_head("logreg", base.params, seed=seed, n_train=n, unit=unit_rows(X))
    if kind == "hard":
        return student.fit(np.vstack([X, X_rest]), np.concatenate([y, (p_rest >= 0.5).astype(int)]))
    ones = np.ones(len(X_rest), dtype=int)
    weights = np.concatenate([np.ones(len(y)), p_rest, 1 - p_rest])
    return student.fit(np.vstack([X, X_rest, X_rest]), np.concatenate([y, ones, 0 * ones]), clf__sample_weight=weights)


def _scores(estimator, X: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: _pct(estimator.predict_proba(X[name])[:, 1] >= 0.5, labels) for name, labels in y.items()}


def _pct(pred: np.ndarray, y: np.ndarray) -> float:
    return 100 * float((pred.astype(int) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fine-tune one cell and save its tuned vectors")
    t.add_argument("--budget", required=True, help="labels, or 'all' (the whole training part)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=None, help="default: by the data size (3 at 1,000 labels)")
    t.add_argument("--threads", type=int, default=1, help="torch threads")
    t.add_argument("--sets", default="val,test,train,rest",
                   help="texts to encode with the tuned model (rest: the pool distillation labels)")
    t.add_argument("--pseudo", type=int, default=0,
                   help="noisy student: also train on this many balanced pseudo-labels of the frozen self-trained "
                        "teacher (the surest half of the training part's other texts)")
    t.add_argument("--soft", action=argparse.BooleanOptionalAction, default=True,
                   help="--pseudo: aim at the teacher's probabilities (else its 0/1 labels)")
    t.add_argument("--save-model", action="store_true", help="also save the tuned model in the cell's model/")
    t.add_argument("--work", required=True, help="folder of the cells (checkpoints, vectors, results)")
    r = sub.add_parser("report", help="score every finished cell")
    r.add_argument("--work", required=True)
    r.add_argument("--test", action="store_true", help="also score RT's test split (after the choice)")
    args = parser.parse_args()
    train(args) if args.command == "train" else report(args)


if __name__ == "__main__":
    main()
