"""The default encoder's speed: ``embed`` against plain sentence-transformers fp32, and texts/s by text length.

1. ``embed`` (``--embed``): RT texts (a seeded random ``--texts`` of the 12,752, or all with ``--texts 0``).
   In one process, interleaved twice: plain ``SentenceTransformer(mpnet).encode`` fp32 and the default
   encoder as ``backend auto`` builds it, both loaded and warmed up first (wall and CPU seconds, ratio).
   Then the whole ``review-transfer embed CSV`` command (no ``--encoder``, no ``--backend``) in fresh
   processes, twice, each into an empty embedding cache sharing the real cache's ``exports/`` and
   ``models/`` (the one-time export is not timed): the first probes the export against torch fp32 on the
   CSV's texts, the second finds that probe on record.
2. Text length (``--lengths``): texts of exactly 20, 100 and 700 words (RT snippets of one label joined
   and cut), encoded by the default encoder (as ``backend auto`` picks it) under ``--long`` auto
   (chunk-mean), head-tail and truncate, and by plain sentence-transformers fp32 (which truncates at
   384 word pieces): texts/s each, the model and export loaded before timing.

   On all 12,752 texts (``--texts 0``) the plain encode takes many minutes; ``--piece K/N --record FILE``
   runs piece K of N (a seeded random split of the texts): each method once on that piece, in
   alternating order (plain first on even K), both loaded and warmed up first, appending wall, CPU and
   load to FILE; ``--report FILE`` sums the pieces into one ratio. ``--variants int8,int8-static:1`` adds
   mpnet's OpenVINO export at other precisions (``:1``: bulk calls on one stream instead of two) to each
   piece, each timed beside plain fp32 in the same process.
Run:  REVIEW_TRANSFER_CACHE=/work/shared-cache python benchmarks/bench_speed.py --embed [--texts 400]
      REVIEW_TRANSFER_CACHE=/work/shared-cache python benchmarks/bench_speed.py --embed --texts 0 --piece 0/4 --record r.jsonl
      REVIEW_TRANSFER_CACHE=/work/shared-cache python benchmarks/bench_speed.py --embed --texts 0 --piece 0/3 --variants int8,int8-static:1 --record r.jsonl
      python benchmarks/bench_speed.py --report r.jsonl
      REVIEW_TRANSFER_CACHE=/work/shared-cache python benchmarks/bench_speed.py --lengths
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LENGTHS = {20: 240, 100: 96, 700: 24}  # words per text -> texts encoded


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def plain_model():
    from sentence_transformers import SentenceTransformer

    from pipeline.encoders.models import mpnet
    from pipeline.paths import default_cache_dir

    model = SentenceTransformer(str(mpnet(default_cache_dir())[0]), device="cpu")
    model.encode(["a warm-up review"] * 8)
    return model


def embed(n: int) -> None:
    """Plain fp32 against the default encoder, interleaved in one process; then the default ``embed`` command
    in fresh processes (twice: the first probes the export on these texts, the second finds the probe)."""
    import torch

    from pipeline.data.dataset import load
    from pipeline.encoders.auto import auto_encoder
    from pipeline.paths import default_cache_dir

    rt = load("rt").texts
    texts = [rt[i] for i in sorted(np.random.default_rng(1).choice(len(rt), n, replace=False))] if n else rt
    cache = default_cache_dir().resolve()
    encoder, said = auto_encoder("mpnet", rt, {"work_dir": cache})  # the export, probed on RT once
    print(f"{len(texts):,} RT texts; torch {torch.__version__}, {torch.get_num_threads()} threads; {said[-1]}; "
          f"load {_load()}", flush=True)
    model = plain_model()
    encoder.encode(texts[:8])
    timed: dict[str, list[tuple[float, float]]] = {"plain": [], "auto": []}
    for round_ in range(2):
        for name, run in (("plain", lambda: model.encode(texts)), ("auto", lambda: encoder.encode(texts))):
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            timed[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            print(f"round {round_} {name}: wall {timed[name][-1][0]:.1f} s, CPU {timed[name][-1][1]:.1f} s; "
                  f"load {_load()}", flush=True)
    plain_wall, auto_wall = (sum(t[0] for t in timed[k]) for k in ("plain", "auto"))
    plain_cpu, auto_cpu = (sum(t[1] for t in timed[k]) for k in ("plain", "auto"))
    print(f"encode only: plain {2 * len(texts) / plain_wall:.1f} texts/s, default {2 * len(texts) / auto_wall:.1f} "
          f"texts/s; ratio wall {plain_wall / auto_wall:.2f}x, CPU {plain_cpu / auto_cpu:.2f}x", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "rt.csv"
        with open(source, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["text"], *[[t] for t in texts]])
        work = Path(tmp) / "cache"
        work.mkdir()
        for shared in ("exports", "models"):  # the one-time export is not timed; its seconds are in meta.json
            (work / shared).symlink_to(cache / shared)
        for run_ in (1, 2):
            for old in work.glob("*.h5*"):
                old.unlink()
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "pipeline", "embed", str(source), "--cache-dir", str(work)],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            wall = time.perf_counter() - start
            if out.returncode:
                raise SystemExit(out.stderr)
            print(f"fresh-process default embed, run {run_}: {wall:.1f} s wall, x{plain_wall / 2 / wall:.2f} the plain "
                  f"encode alone (load {_load()})", flush=True)


def embed_piece(n: int, piece: str, record: Path, variants: list[str]) -> None:
    """Piece K of N of the texts: plain fp32 and the default encoder once each, in alternating order, and
    each of ``variants`` (``QUANTIZE`` or ``QUANTIZE:STREAMS``: mpnet's openvino export at that precision, on
    that many streams for bulk calls); one JSON line appended to ``record``."""
    import torch

    from pipeline.data.dataset import load
    from pipeline.encoders.auto import auto_encoder
    from pipeline.paths import default_cache_dir

    k, parts = (int(x) for x in piece.split("/"))
    rt = load("rt").texts
    texts = [rt[i] for i in sorted(np.random.default_rng(1).choice(len(rt), n, replace=False))] if n else rt
    mine = [texts[i] for i in sorted(np.random.default_rng(2).permutation(len(texts))[k::parts])]
    work = {"work_dir": default_cache_dir().resolve()}
    encoder, said = auto_encoder("mpnet", rt, work)
    encoders = {"auto": encoder}
    for variant in variants:
        quantize, _, streams = variant.partition(":")
        encoders[variant], line = auto_encoder("mpnet", rt, work, quantize=quantize)
        said.append(line[-1])
        if streams:
            encoders[variant].bulk_streams = int(streams)
    model = plain_model()
    for enc in encoders.values():
        enc.encode(mine[:8])
    print(f"piece {k}/{parts}: {len(mine):,} of {len(texts):,} RT texts; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; " + "; ".join(said), flush=True)
    row: dict = {"piece": k, "pieces": parts, "texts": len(mine), "of": len(texts), "load_before": _load(),
                 "variants": variants}
    runs = [("plain", lambda: model.encode(mine))] + [(name, lambda e=e: e.encode(mine)) for name, e in encoders.items()]
    for name, run in runs if k % 2 == 0 else runs[::-1]:
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        row[name] = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "load_after": _load()}
        print(f"  {name}: wall {row[name]['wall']:.1f} s, CPU {row[name]['cpu']:.1f} s; load {_load()}", flush=True)
    with open(record, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def report(record: Path) -> None:
    """The pieces in ``record`` summed: texts/s of each method and its ratio to plain, by wall and CPU time."""
    rows = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines() if line.strip()]
    methods = ["auto", *rows[0].get("variants", [])]
    print("| piece | texts | plain wall s | " + " | ".join(f"{m} wall s | ratio" for m in methods)
          + " | load before, after each |")
    print("|---:|---:|---:|" + "---:|---:|" * len(methods) + "---|")
    for r in rows:
        cells = " | ".join(f"{r[m]['wall']:.1f} | {r['plain']['wall'] / r[m]['wall']:.2f}x" for m in methods)
        loads = ", ".join(r[m]["load_after"].split()[0] for m in ["plain", *methods])
        print(f"| {r['piece']}/{r['pieces']} | {r['texts']:,} | {r['plain']['wall']:.1f} | {cells} | "
              f"{r['load_before'].split()[0]}, {loads} |")
    n = sum(r["texts"] for r in rows)
    total = {m: (sum(r[m]["wall"] for r in rows), sum(r[m]["cpu"] for r in rows)) for m in ["plain", *methods]}
    pw, pc = total["plain"]
    cells = " | ".join(f"{total[m][0]:.1f} | **{pw / total[m][0]:.2f}x**" for m in methods)
    print(f"| all | {n:,} | {pw:.1f} | {cells} | |")
    print(f"texts/s: plain {n / pw:.1f}, " + ", ".join(f"{m} {n / total[m][0]:.1f} (CPU-time ratio "
                                                      f"{pc / total[m][1]:.2f}x)" for m in methods))


def lengths() -> None:
    from pipeline.data.dataset import load
    from pipeline.encoders import get_encoder
    from pipeline.encoders.auto import auto_encoder
    from pipeline.paths import default_cache_dir

    ds = load("rt")
    rng = np.random.default_rng(0)
    pos = [t for t, y in zip(ds.texts, ds.labels) if y == 1]
    cache = default_cache_dir()
    chosen, said = auto_encoder("mpnet", ds.texts, {"work_dir": cache})  # probed on RT once, then on record
    print(f"{said[-1]}; load {_load()}")
    model = plain_model()
    print("| words per text | texts | default, --long auto (chunk-mean) | head-tail | truncate | plain ST fp32 (truncates) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for words, count in LENGTHS.items():
        texts = []
        for _ in range(count):
            picked: list[str] = []
            while sum(len(t.split()) for t in picked) < words:
                picked.append(pos[rng.integers(len(pos))])
            texts.append(" ".join(" ".join(picked).split()[:words]))
        rates = []
        for long in ("auto", "head-tail", "truncate"):
            enc = get_encoder("mpnet", backend=getattr(chosen, "backend", "torch"), long_text=long, work_dir=cache,
                              quantize=getattr(chosen, "quantize", "none"))
            enc.encode(texts[:4])  # session, tokenizer
            start = time.perf_counter()
            enc.encode(texts)
            rates.append(len(texts) / (time.perf_counter() - start))
        start = time.perf_counter()
        model.encode(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
        print(f"| {words} | {count} | " + " | ".join(f"{r:.1f}" for r in rates) + " |", flush=True)
    print(f"texts/s; encoder {enc.describe()}; load {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed", action="store_true")
    parser.add_argument("--texts", type=int, default=400, help="Random RT texts for --embed (0: all 12,752).")
    parser.add_argument("--piece", help="K/N: run piece K of N of the texts (with --embed and --record).")
    parser.add_argument("--record", type=Path, help="JSON lines file the pieces append to.")
    parser.add_argument("--variants", default="", help="With --piece: also mpnet's openvino export at these "
                        "QUANTIZE[:STREAMS], comma-separated (e.g. int8,int8-static:1).")
    parser.add_argument("--report", type=Path, help="Sum the pieces of this record file.")
    parser.add_argument("--lengths", action="store_true")
    args = parser.parse_args()
    if args.embed and args.piece:
        if args.record is None:
            parser.error("--piece needs --record FILE")
        embed_piece(args.texts, args.piece, args.record, [v for v in args.variants.split(",") if v])
    elif args.embed:
        embed(args.texts)
    if args.report:
        report(args.report)
    if args.lengths:
        lengths()


if __name__ == "__main__":
    main()
