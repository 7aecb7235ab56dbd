"""Stage-one benchmark on the RT test split (2,425 texts): prints ratios, no hard-coded figures.

1. cold ``embed`` through the cache (MiniLM, auto precision, length-sorted batches) vs plain
   ``SentenceTransformer.encode`` in fp32 at its default batch size; mean cosine between the two;
2. warm ``embed`` (every text a cache hit) vs the same plain encode;
3. GloVe texts/s through the cache;
4. peak RSS of an ``embed`` of 20,000 texts vs 2,000 (GloVe, separate processes).

Run:  .venv/bin/python benchmarks/bench_embed.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import numpy as np

# Peak RSS of the child itself: VmHWM (Linux), else ru_maxrss, which a child may inherit from a
# bigger parent across fork + exec; so this part also runs first, before torch is loaded here.
RSS_CHILD = """
import os, resource, sys
from pipeline.cache import EmbeddingCache
from pipeline.data import load
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


def main() -> None:
    small, large = peak_rss_mb(2_000), peak_rss_mb(20_000)
    rss_line = (f"peak RSS of a GloVe embed: 2k texts {small:.0f} MB, 20k texts {large:.0f} MB, "
                f"ratio {large / small:.2f}x")

    import torch
    from sentence_transformers import SentenceTransformer

    from pipeline.cache import EmbeddingCache
    from pipeline.data import load, split
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
