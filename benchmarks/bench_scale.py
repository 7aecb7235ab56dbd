"""Scale benchmark: the local engine vs Ray (2 workers) on this machine, the cost of the shard index
on reads, and a paper model of 10M reviews on N GPUs built from the measured figures.

1. ``embed`` throughput (texts encoded per second, cold cache) for one encoder: the local engine
   (one process, torch uses every core) vs ``--engine ray`` with 2 actors; Ray start-up and actor
   start (model load) are timed apart from the encoding;
2. reads from one store of synthetic 384-d rows, compacted into one file vs spread over 16 and 64
   shard files: a random 1% of rows and every row; and the key lookup alone (``Store.missing``),
   which every ``embed`` batch pays, for the store's size;
3. the paper model: per-worker texts/s x N workers vs the shared-filesystem bandwidth it needs.

Run:  .venv/bin/python benchmarks/bench_scale.py                      (MiniLM, 2,000 texts, 200k rows)
      .venv/bin/python benchmarks/bench_scale.py --texts 600 --rows 50000 --gpu-rate 4000
``--gpu-rate`` is texts/s of one GPU worker for the paper model: an input, not measured here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

VECTOR_BYTES = 384 * 4 + 64  # float32 vector + S64 key per row


def embed_rates(spec: str, n: int) -> dict[str, float]:
    """Encoded texts/s: local engine, Ray with 2 workers (and its start-up seconds)."""
    import ray

    from pipeline.store.cache import EmbeddingCache
    from pipeline.data.dataset import load
    from pipeline.study.engines.ray import ray_fill
    from pipeline.encoders import get_encoder

    base = load("rt").texts
    texts = [base[i % len(base)] + ("" if i < len(base) else f" #{i}") for i in range(n)]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        enc = get_encoder(spec)
        enc.encode(texts[:8])  # load the model: time encoding, not start-up, as for the Ray actors below
        report = EmbeddingCache(Path(tmp) / "local", progress=False).fill(enc, texts)
        out["local"] = report.misses / report.seconds
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        out["ray_init_s"] = time.perf_counter() - start
        warm = ray_fill(spec, [texts[:64]], Path(tmp) / "warm", workers=2, shard_size=32, progress=False)
        out["ray_actor_start_s"] = warm.seconds  # two actors loading the model, plus 64 texts
        report = ray_fill(spec, [texts], Path(tmp) / "ray", workers=2, shard_size=max(64, n // 16), progress=False)
        out["ray_2"] = report.misses / report.seconds  # includes this run's actor start, as a user pays it
        out["ray_2_steady"] = report.misses / max(1e-9, report.seconds - warm.seconds)  # less the start-up
        ray.shutdown()
    return out


def read_costs(rows: int, dim: int = 384) -> list[tuple[str, float, float, float]]:
    """(layout, s to read 1% random rows, s to read all rows, s for a 50k-key lookup) per shard layout."""
    from pipeline.store.cache import Store

    rng = np.random.default_rng(0)
    keys = np.array([f"{i:064x}".encode() for i in rng.permutation(rows)], dtype="S64")
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    meta = {"fingerprint": "bench", "dim": dim, "spec": "synthetic", "params": "{}", "merged_upto": -1}
    some = keys[rng.choice(rows, rows // 100, replace=False)]
    probe = keys[rng.choice(rows, min(rows, 50_000), replace=False)]
    results = []
    for shards in (1, 16, 64):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(tmp, "bench")
            for part in np.array_split(np.arange(rows), shards):
                store.commit(keys[part], vectors[part], meta)
            if shards == 1:
                store.compact(force=True)
            store.read(keys[:1], dim)  # open every file once (key index memoised), as a warm cache would
            timings = []
            for wanted in (some, keys):
                start = time.perf_counter()
                got = store.read(wanted, dim)
                timings.append(time.perf_counter() - start)
            assert got.shape == (rows, dim)
            start = time.perf_counter()
            store.missing(probe, dim)
            timings.append(time.perf_counter() - start)
            results.append(("1 main file" if shards == 1 else f"{shards} shard files", *timings))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--gpu-rate", type=float, default=4000.0,
                        help="assumed texts/s of one GPU worker (MiniLM, fp16, ~50-token reviews)")
    parser.add_argument("--reviews", type=int, default=10_000_000)
    parser.add_argument("--gpus", type=int, default=8)
    args = parser.parse_args()

    rates = embed_rates(args.encoder, args.texts)
    print(f"1. embed {args.texts:,} texts with {args.encoder} (cold cache, texts encoded/s)")
    print(f"   local engine (1 process, all cores)  {rates['local']:8.1f}")
    print(f"   ray engine, 2 workers                {rates['ray_2']:8.1f}   ratio {rates['ray_2'] / rates['local']:.2f}x")
    print(f"   ray, less actor start-up (steady)    {rates['ray_2_steady']:8.1f}   "
          f"ratio {rates['ray_2_steady'] / rates['local']:.2f}x")
    print(f"   ray.init {rates['ray_init_s']:.1f} s; 2 actors start + load the model {rates['ray_actor_start_s']:.1f} s "
          "(per run)")

    print(f"\n2. reads from a store of {args.rows:,} x 384-d rows ({args.rows * VECTOR_BYTES / 1e6:.0f} MB)")
    costs = read_costs(args.rows)
    base = costs[0]
    print(f"   {'layout':<16} {'1% random':>10} {'all rows':>10} {'lookup 50k':>11}")
    for name, some, every, lookup in costs:
        print(f"   {name:<16} {some:9.3f}s {every:9.3f}s {lookup:10.3f}s   "
              f"(x{some / base[1]:.2f}, x{every / base[2]:.2f}, x{lookup / base[3]:.2f})")
    lookup_per_key = base[3] / min(args.rows, 50_000)

    per_worker_cpu = rates["ray_2_steady"] / 2
    total = args.reviews
    print(f"\n3. paper model: {total / 1e6:.0f}M reviews, {VECTOR_BYTES} B per row (384 float32 + key), "
          f"{total * VECTOR_BYTES / 1e9:.1f} GB of vectors")
    for label, rate in ((f"CPU worker, measured here ({per_worker_cpu:.0f} texts/s)", per_worker_cpu),
                        (f"GPU worker, assumed ({args.gpu_rate:.0f} texts/s)", args.gpu_rate)):
        agg = rate * args.gpus
        print(f"   {args.gpus} x {label}: {agg:,.0f} texts/s -> {total / agg / 3600:.2f} h; shard writes "
              f"{agg * VECTOR_BYTES / 1e6:.1f} MB/s to the shared filesystem")
    print(f"   compaction (driver): merges when shards reach 1/4 of the main file, so it copies about 5x the "
          f"final {total * VECTOR_BYTES / 1e9:.1f} GB over a run, i.e. {5 * total * VECTOR_BYTES / 1e9:.0f} GB read + written")
    print(f"   key lookups (driver, every batch): {lookup_per_key * 1e6:.2f} us per key against one file of "
          f"{args.rows:,} rows (binary search in each file's memoised sorted keys: ~log n per key per file); "
          f"{total * lookup_per_key:.0f} s for {total / 1e6:.0f}M keys")


if __name__ == "__main__":
    main()
