"""torch fp32 against bf16 autocast on this CPU, side by side in one run: texts/s and their ratio.

``auto`` precision picks bf16 on a CPU only where it is faster (``pipeline.encoders.device.cpu_has_fast_bf16``);
this bench is how that rule is checked on a new CPU. Each encoder is loaded at both precisions, warmed on
64 texts, then the two encode the same RT texts alternately (``--rounds`` each), at each ``--threads`` count.

    PYTHONPATH=. python benchmarks/bench_precision.py [--specs minilm,mpnet] [--texts 600] [--threads 2,1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

PRECISIONS = ("fp32", "bf16")


def cpu_flags() -> str:
    """The bf16- and AMX-related flags /proc/cpuinfo lists (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}
    return " ".join(sorted(f for f in flags if "bf16" in f or f.startswith("amx")))


def texts_per_second(encoder, texts: list[str]) -> float:
    start = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default="minilm,mpnet")
    parser.add_argument("--texts", type=int, default=600, help="RT texts per round (mpnet gets a third)")
    parser.add_argument("--threads", default="2,1")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import torch

    from pipeline.data.dataset import load
    from pipeline.encoders.device import cpu_has_fast_bf16
    from pipeline.encoders.registry import get_encoder

    texts = list(load("rt").texts[: args.texts])
    print(f"cpu flags: {cpu_flags() or '(no bf16/AMX flags)'}; auto picks bf16 here: "
          f"{cpu_has_fast_bf16()}")
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        for spec in args.specs.split(","):
            encoders = {p: get_encoder(f"{spec}[precision={p}]", device="cpu") for p in PRECISIONS}
            batch = texts if spec == "minilm" else texts[: max(64, args.texts // 3)]
            for encoder in encoders.values():
                encoder.encode(texts[:64])
            rates = {p: [] for p in PRECISIONS}
            for _ in range(args.rounds):
                for p, encoder in encoders.items():
                    rates[p].append(texts_per_second(encoder, batch))
            mean = {p: sum(r) / len(r) for p, r in rates.items()}
            print(f"threads={threads} {spec} ({len(batch)} texts): "
                  + ", ".join(f"{p} {mean[p]:.1f} texts/s" for p in PRECISIONS)
                  + f"; bf16 / fp32 = {mean['bf16'] / mean['fp32']:.2f}", flush=True)


if __name__ == "__main__":
    main()
