"""A tuned layer-mean mpnet exported to static int8 (``finetune --export int8``) against its torch fp32 model
and the frozen default, on RT's validation split.

Takes a cell of ``bench_finetune_val.py train --save-model`` (the tuned weights in ``CELL/model``, its head in
``result.json``, its torch fp32 vectors of the validation part in ``val.npy``). ``export`` makes the bundle's
export in ``CELL/model/exports/`` (:func:`pipeline.finetune.export.export_tuned`: OpenVINO static int8 with the
mean of layers 9-12 in the graph, probed against torch) and reports its cosine to the torch vectors on every
validation text and the head's validation accuracy on either; ``speed`` times encoding (what ``predict``
spends) with tuned torch fp32, tuned int8 and the frozen default in one process, in turns.

    REVIEW_TRANSFER_CACHE=... PYTHONPATH=. python benchmarks/bench_finetune_export.py export --cell CELL
    REVIEW_TRANSFER_CACHE=... PYTHONPATH=. python benchmarks/bench_finetune_export.py speed --cell CELL [--texts 256]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_finetune_val import MAX_LENGTH  # the training window

LAYERS = "9-12"
FROZEN = "mpnet[layers=9-12,backend=openvino,quantize=int8-static]"  # the default's English side


def tuned(cell: Path, backend: str):
    """The cell's tuned encoder as its bundle would run it: torch fp32, or its own static int8 export."""
    from pipeline.encoders import get_encoder
    from pipeline.finetune.run import PREDICT_LONG_TEXT

    extra = {"device": "cpu", "precision": "fp32"} if backend == "torch" else \
        {"backend": "openvino", "quantize": "int8-static", "max_length": MAX_LENGTH}  # the training window
    return get_encoder(f"st:{cell / 'model'}", long_text=PREDICT_LONG_TEXT, layers=LAYERS, **extra)


def export(args: argparse.Namespace) -> None:
    """Export the cell's model to static int8 and score it against the torch vectors on validation."""
    from pipeline.finetune.export import export_tuned
    from pipeline.finetune.run import PREDICT_LONG_TEXT

    from benchmarks.bench_finetune_val import parts

    cell = Path(args.cell)
    tr, va, _ = parts()
    c0, w0 = time.process_time(), time.perf_counter()
    got = export_tuned(cell / "model", "int8", tr.texts, long_text=PREDICT_LONG_TEXT, max_length=MAX_LENGTH,
                       layers=LAYERS)
    print(f"export {got}: {time.process_time() - c0:.0f} CPU s, wall {time.perf_counter() - w0:.0f} s, "
          f"load {os.getloadavg()[0]:.1f}")
    r = json.loads((cell / "result.json").read_text())
    w, b = np.array(r["coef"]), r["intercept"]
    fp32 = np.load(cell / "val.npy")
    c0 = time.process_time()
    int8 = tuned(cell, "openvino").encode(va.texts)
    cos = np.sum(fp32 * int8, axis=1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    acc = {name: 100 * float(((X @ w + b > 0).astype(int) == va.labels).mean()) for name, X in
           (("torch fp32", fp32), ("int8", int8))}
    flips = int(((fp32 @ w + b > 0) != (int8 @ w + b > 0)).sum())
    print(f"val {len(va)} texts encoded by int8 in {time.process_time() - c0:.0f} CPU s; cosine to torch fp32 "
          f"min {cos.min():.4f} median {np.median(cos):.4f}; accuracy torch fp32 {acc['torch fp32']:.2f}, "
          f"int8 {acc['int8']:.2f}; {flips} predictions differ")


def speed(args: argparse.Namespace) -> None:
    """Encode the same validation texts with each encoder in turns; print texts/s (best of ``--rounds``)."""
    from pipeline.encoders import get_encoder

    from benchmarks.bench_finetune_val import parts

    cell = Path(args.cell)
    texts = parts()[1].texts[: args.texts]
    encoders = {"tuned torch fp32": tuned(cell, "torch"), "tuned int8": tuned(cell, "openvino"),
                "frozen default": get_encoder(FROZEN)}
    for enc in encoders.values():
        enc.encode(texts[:8])  # load and warm up
    best: dict[str, tuple[float, float, float]] = {}
    print(f"load {os.getloadavg()[0]:.1f}")
    for _ in range(args.rounds):
        for name, enc in encoders.items():
            one = []
            for text in texts[:5]:
                w0 = time.perf_counter()
                enc.encode([text])
                one.append(time.perf_counter() - w0)
            w0, c0 = time.perf_counter(), time.process_time()
            enc.encode(texts)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, float(np.median(one)))
    for name, (wall, cpu, one) in best.items():
        print(f"  {name:18s} {len(texts) / wall:6.1f} texts/s ({wall:5.1f} s wall, {cpu:5.1f} CPU s for "
              f"{len(texts)}); one text {1000 * one:5.0f} ms")
    print(f"load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="export the cell's tuned model to static int8 and check it on validation")
    e.add_argument("--cell", required=True)
    s = sub.add_parser("speed", help="encoding speed: tuned fp32, tuned int8, frozen default")
    s.add_argument("--cell", required=True)
    s.add_argument("--texts", type=int, default=256)
    s.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    export(args) if args.command == "export" else speed(args)


if __name__ == "__main__":
    main()
