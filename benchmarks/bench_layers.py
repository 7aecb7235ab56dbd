"""Levers on frozen mpnet's vectors, from every layer's mean-pooled hidden states cached once, on RT's validation split.

``encode`` passes RT's pool (the training and validation parts of ``validation_split``, in that order) and the
prompt texts once through mpnet (torch fp32), keeping the mean-pooled hidden states of the embedding output
and each of the 12 layers, in chunks of 500 texts (``.npy``, float32, ``(n, 13, 768)``) under
``$REVIEW_TRANSFER_CACHE/mpnet-layers/``; it resumes where it stopped and stops starting chunks after
``--max-seconds`` (so a long pass splits into short lock holds). ``--with-test`` adds RT's test split after
the pool (for the test curve of a setting chosen on validation, never for choosing).

``speed`` encodes the same texts, uncached, under each of ``--specs`` side by side (texts per second, wall
and CPU).

``eval`` fits logreg with the prompt prior on each budget's balanced sample of the training part (paired, as
``bench_indomain.py``) under each vector ``--methods`` entry and scores the validation part:

- ``last``: the last layer, L2-normalised: the ``mpnet`` vectors (checked against the cache's);
- ``mean:a-b``: the mean of layers a..b's pooled states, L2-normalised;
- ``cat:a-b``: each of layers a..b L2-normalised, concatenated, divided by sqrt(count);
- ``S,T``: settings side by side (``mean:9-12,mean:5-8``; a bare ``a-b`` is ``mean:a-b``), each L2-normalised, divided
  by sqrt(count);
- ``LAYERS/white[:K]``, ``LAYERS/std``, ``LAYERS/center``: then PCA-whitened (top K components) / standardised / centred on the training
  part's vectors (its labels unused; the validation part's texts never), and L2-normalised again;
- ``LAYERS/knn:K:W``: the head's log-odds mixed (weight W) with a kNN vote over the pool's pseudo-labelled texts;
- ``LAYERS/st``: ``fit --self-train`` (defaults) on those vectors;
- ``LAYERS/cv``: logreg's C by plain cross-validation (the best mean) instead of keeping the default unless beaten.

Prints the validation accuracy (mean ± sd over seeds), the paired gain over ``last`` (± SE) and the head's
CPU seconds per cell (vectors read from the chunks).

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=. python benchmarks/bench_layers.py encode [--max-seconds 500]
    REVIEW_TRANSFER_CACHE=... PYTHONPATH=. python benchmarks/bench_layers.py eval --methods "last;mean:9-12"
    REVIEW_TRANSFER_CACHE=... PYTHONPATH=. python benchmarks/bench_layers.py speed [--texts 500]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import time
from pathlib import Path

import numpy as np

CHUNK = 500
LAYERS = 13


def texts_in_order(with_test: bool) -> tuple[list[str], dict]:
    """The pool's training part, its validation part, the prompts (and the test split): texts and their slices."""
    from pipeline.data.dataset import load, split, validation_split
    from pipeline.heads.prompts import DEFAULT

    pool, test = split(load("rt"))
    tr, va = validation_split(pool)
    texts = tr.texts + va.texts + list(DEFAULT.texts) + (test.texts if with_test else [])
    n1, n2, n3 = len(tr), len(tr) + len(va), len(tr) + len(va) + len(DEFAULT.texts)
    parts = {"train": slice(0, n1), "val": slice(n1, n2), "prompts": slice(n2, n3), "test": slice(n3, len(texts)),
             "tr": tr, "va": va, "test_ds": test, "n_positive": len(DEFAULT.positive)}
    return texts, parts


def store_dir() -> Path:
    from pipeline.store.cache import default_cache_dir

    return Path(default_cache_dir()) / "mpnet-layers"


def layer_encoder():
    """mpnet fp32 (torch) whose forward returns every layer's mean-pooled states, flattened."""
    from pipeline.encoders import get_encoder

    enc = get_encoder("mpnet[backend=torch,precision=fp32]")
    body = enc._model[0].auto_model

    def forward(features):
        hidden = body(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                      output_hidden_states=True).hidden_states
        mask = features["attention_mask"].unsqueeze(-1).float()
        pooled = [(h * mask).sum(1) / mask.sum(1).clamp(min=1) for h in hidden]
        import torch

        return torch.cat(pooled, dim=1)

    enc._forward = forward
    enc.dim = LAYERS * 768
    enc.normalize = False
    return enc


def encode(args) -> None:
    import torch

    torch.set_num_threads(2)
    texts, _ = texts_in_order(args.with_test)
    out = store_dir()
    out.mkdir(exist_ok=True)
    enc = None
    t0, c0 = time.time(), time.process_time()
    done = 0
    for k, start in enumerate(range(0, len(texts), CHUNK)):
        part = texts[start:start + CHUNK]
        key = hashlib.sha256("\n".join(part).encode()).hexdigest()[:12]
        path = out / f"{k:03d}-{key}.npy"
        if path.exists():
            continue
        if time.time() - t0 > args.max_seconds:
            break
        enc = enc or layer_encoder()
        X = enc._encode(part).reshape(len(part), LAYERS, 768)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, X)
        os.replace(tmp, path)
        done += len(part)
        print(f"chunk {k}: {len(part)} texts; {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} CPU s; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    left = sum(1 for k, s in enumerate(range(0, len(texts), CHUNK))
               if not (out / f"{k:03d}-{hashlib.sha256(chr(10).join(texts[s:s + CHUNK]).encode()).hexdigest()[:12]}.npy").exists())
    print(f"encoded {done} texts in {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} CPU s "
          f"({done / max(time.process_time() - c0, 1e-9):.1f} texts per CPU s); chunks left: {left}")


def speed(args) -> None:
    """Encode the same ``--texts`` RT texts (no cache) with each spec of ``--specs``, side by side, ``--rounds``
    times in alternating order (all loaded and warmed first); texts per second and per CPU s, and each spec's
    ratio to the first (summed wall and CPU seconds)."""
    import torch

    from pipeline.encoders import get_encoder

    torch.set_num_threads(2)
    texts, _ = texts_in_order(False)
    sample = texts[:args.texts]
    specs = args.specs.split(";")
    encoders = {spec: get_encoder(spec) for spec in specs}
    for enc in encoders.values():
        enc.encode(sample[:300])  # warm: session loads (one request and, over 256 texts, the bulk streams)
    spent = {spec: [0.0, 0.0] for spec in specs}
    for r in range(args.rounds):
        for spec in specs if r % 2 == 0 else specs[::-1]:
            t0, c0 = time.time(), time.process_time()
            encoders[spec].encode(sample)
            wall, cpu = time.time() - t0, time.process_time() - c0
            spent[spec][0] += wall
            spent[spec][1] += cpu
            print(f"round {r} {spec:58s} {len(sample) / wall:6.1f} texts/s wall, {len(sample) / cpu:6.1f} per CPU s; "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    first = spent[specs[0]]
    for spec in specs:
        wall, cpu = spent[spec]
        print(f"{spec:58s} {args.rounds * len(sample) / wall:6.1f} texts/s; time vs {specs[0]}: wall "
              f"{wall / first[0]:.2f}x, CPU {cpu / first[1]:.2f}x")


def load_layers(texts: list[str]) -> np.ndarray:
    out = store_dir()
    blocks = []
    for k, start in enumerate(range(0, len(texts), CHUNK)):
        part = texts[start:start + CHUNK]
        key = hashlib.sha256("\n".join(part).encode()).hexdigest()[:12]
        blocks.append(np.load(out / f"{k:03d}-{key}.npy", mmap_mode="r"))
    return np.concatenate(blocks)


def unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def layer_vectors(H: np.ndarray, name: str) -> np.ndarray:
    if "," in name:  # several settings side by side, each L2-normalised, divided by sqrt(count)
        names = name.split(",")
        return np.hstack([layer_vectors(H, n if ":" in n or n == "last" else f"mean:{n}") for n in names]) / np.sqrt(len(names))
    if name == "last":
        return unit(H[:, 12])
    kind, rng = name.split(":")
    a, _, b = rng.partition("-")
    a, b = int(a), int(b or a)
    if kind == "mean":
        return unit(H[:, a:b + 1].mean(1))
    if kind == "cat":
        return np.hstack([unit(H[:, i]) for i in range(a, b + 1)]) / np.sqrt(b - a + 1)
    if kind == "only":
        return unit(H[:, a])
    raise SystemExit(f"unknown layer setting {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--max-seconds", type=float, default=500)
    e.add_argument("--with-test", action="store_true")
    t = sub.add_parser("speed")
    t.add_argument("--texts", type=int, default=500)
    t.add_argument("--rounds", type=int, default=1)
    t.add_argument("--specs", default="mpnet[backend=torch];mpnet[layers=9-12];mpnet[backend=openvino,quantize=int8]")
    v = sub.add_parser("eval")
    v.add_argument("--budgets", default="16,32,64,128,256,512,1000")
    v.add_argument("--seeds", type=int, default=5)
    v.add_argument("--methods", default="last;mean:9-12;cat:9-12")
    v.add_argument("--max-unlabelled", type=int, default=4000)
    args = parser.parse_args()
    {"encode": encode, "speed": speed, "eval": evaluate}[args.cmd](args)


def evaluate(args) -> None:
    from benchmarks.bench_indomain import report_budget, samples

    from pipeline.heads.prompts import direction
    from pipeline.heads.registry import SELECTION, FitOptions, Selection, fit_head
    from pipeline.unlabelled.self_train import SelfTrainSettings, self_train_head

    t0 = time.time()
    texts, parts = texts_in_order(False)
    H = np.asarray(load_layers(texts[:parts["prompts"].stop]))
    tr, va = parts["tr"], parts["va"]
    ntr, nva = len(tr), len(va)
    print(f"RT pool: train part {ntr}, validation part {nva}; load {os.getloadavg()[0]:.1f}; commit "
          f"{subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}")
    methods = args.methods.split(";")
    built = {}
    for m in methods:
        base, *post = m.split("/")
        X = layer_vectors(H, base)
        for p in post:
            if p.startswith("white"):
                from sklearn.decomposition import PCA

                k = int(p.split(":")[1]) if ":" in p else None
                X = unit(PCA(k, whiten=True, random_state=0).fit(X[:ntr]).transform(X))
            elif p == "std":
                mu, sd = X[:ntr].mean(0), X[:ntr].std(0) + 1e-8
                X = unit((X - mu) / sd)
            elif p == "center":
                X = unit(X - X[:ntr].mean(0))
        P = X[parts["prompts"]]
        built[m] = (X[:ntr + nva], direction(P, parts["n_positive"]), [p for p in post if p.startswith(("knn", "st", "cv"))])
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for b in args.budgets.split(","):
        for n, seed, idx, rest in samples(tr, b, args.seeds, args.max_unlabelled):
            y, groups = tr.labels[idx], [tr.groups[i] for i in idx]
            for m in methods:
                X, u, extra = built[m]
                c0 = time.process_time()
                opts = FitOptions(groups=groups, seed=seed, prompt_direction=u)
                if n is None and any(e.startswith(("st", "knn")) for e in extra):
                    continue  # on the whole training part nothing is left unlabelled
                if extra and extra[0] == "st":
                    est = self_train_head("logreg", X[idx], y, X[rest], settings=SelfTrainSettings(), options=opts)[0].estimator
                else:
                    chosen = Selection(one_se=0, keep_default_se=0) if "cv" in extra else SELECTION
                    est = fit_head("logreg", X[idx], y, FitOptions(groups=groups, seed=seed, prompt_direction=u),
                                   selection=chosen).estimator
                z = est.decision_function(X[ntr:])
                knn = [e for e in extra if e.startswith("knn")]
                if knn:
                    _, k, w = knn[0].split(":")
                    z = knn_mix(est, X, idx, y, rest, ntr, int(k), float(w), z)
                pred = (z > 0).astype(int)
                rows.setdefault((b, m), []).append((100 * float((pred == va.labels).mean()), time.process_time() - c0))
        report_budget(rows, b, methods, methods[0])
    print(f"{time.time() - t0:.0f} s wall; load {os.getloadavg()[0]:.1f}")


def knn_mix(est, X, idx, y, rest, ntr, k, w, z):
    """The head's log-odds on the validation part mixed with a k-nearest-neighbour vote (cosine) over the labelled
    sample and the pool's other texts, those pseudo-labelled by the head."""
    bank = np.concatenate([X[idx], X[rest]])
    soft = np.concatenate([y.astype(float), est.predict_proba(X[rest])[:, 1]])
    S = X[ntr:] @ bank.T
    top = np.argpartition(-S, k, axis=1)[:, :k]
    p = np.clip(soft[top].mean(1), 0.02, 0.98)
    zk = np.log(p / (1 - p))
    scale = np.std(z) / max(np.std(zk), 1e-9)
    return (1 - w) * z + w * zk * scale


if __name__ == "__main__":
    main()
