"""The default encoder's OpenVINO runtime: one LATENCY stream (as the encoder runs it) against THROUGHPUT streams.

1,024 random RT texts (seed 1), tokenized and cut into the encoder's own length-sorted batches of 64, run
through mpnet's OpenVINO int8 export twice each way, alternating: compiled with ``PERFORMANCE_HINT``
``LATENCY`` and one infer request (batches one after another, each on both cores), and with
``THROUGHPUT`` and an ``AsyncInferQueue`` of its optimal number of requests (on 2 cores: 2 streams of
one thread, two batches at once). Prints texts/s, wall and CPU seconds, and the largest difference of the
hidden states between the two (the vectors a cache would hold). A lead, not what the encoder does.

Run:  REVIEW_TRANSFER_CACHE=/work/shared-cache python benchmarks/bench_ov_streams.py
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openvino as ov  # noqa: E402

from pipeline.data.dataset import load  # noqa: E402
from pipeline.encoders import get_encoder  # noqa: E402
from pipeline.paths import default_cache_dir  # noqa: E402

Batches = list[tuple[np.ndarray, np.ndarray]]


def batches_of(n: int = 1024) -> tuple[str, Batches]:
    """The export's model file and ``n`` random RT texts as the encoder's length-sorted batches of 64."""
    ds = load("rt")
    texts = [ds.texts[i] for i in np.random.default_rng(1).choice(len(ds.texts), n, replace=False)]
    enc = get_encoder("mpnet", backend="openvino", quantize="int8", work_dir=default_cache_dir())
    ids = enc._content_ids(texts)
    order = np.argsort([-len(x) for x in ids], kind="stable")
    return str(enc.export_dir / "model.xml"), [enc._features([ids[i] for i in order[s:s + 64]])
                                               for s in range(0, len(order), 64)]


def latency(core: ov.Core, xml: str, batches: Batches) -> tuple[float, float, list[np.ndarray]]:
    """(wall, CPU, outputs): one LATENCY request, batch after batch."""
    model = core.compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
    request = model.create_infer_request()
    request.infer({"input_ids": batches[-1][0], "attention_mask": batches[-1][1]})  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    out = [request.infer({"input_ids": a, "attention_mask": b})[0].copy() for a, b in batches]
    return time.perf_counter() - wall, time.process_time() - cpu, out


def throughput(core: ov.Core, xml: str, batches: Batches) -> tuple[float, float, list[np.ndarray]]:
    """(wall, CPU, outputs): THROUGHPUT streams fed by an AsyncInferQueue."""
    model = core.compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"})
    queue = ov.AsyncInferQueue(model, model.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    out: list = [None] * len(batches)

    def done(request: ov.InferRequest, i: int) -> None:
        out[i] = request.get_output_tensor(0).data.copy()

    queue.set_callback(done)
    queue.start_async({"input_ids": batches[-1][0], "attention_mask": batches[-1][1]}, len(batches) - 1)
    queue.wait_all()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for i, (a, b) in enumerate(batches):
        queue.start_async({"input_ids": a, "attention_mask": b}, i)
    queue.wait_all()
    print(f"  {model.get_property('NUM_STREAMS')} streams, {len(queue)} requests")
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    xml, batches = batches_of()
    n = sum(len(a) for a, _ in batches)
    core = ov.Core()
    print(f"{n} texts in {len(batches)} batches; load {os.getloadavg()}")
    first: dict[str, list[np.ndarray]] = {}
    for name, run in (("latency", latency), ("throughput", throughput)) * 2:
        wall, cpu, out = run(core, xml, batches)
        first.setdefault(name, out)
        print(f"{name:10s} {n / wall:6.1f} texts/s, wall {wall:5.1f} s, CPU {cpu:5.1f} s", flush=True)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(first["latency"], first["throughput"]))
    print(f"largest difference of the hidden states, latency vs throughput: {diff}; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
