"""Load test of ``serve``: latency, throughput against in-process predict, and behaviour under overload.

Fits logreg bundles on 300 RT pool texts (GloVe; MiniLM int8 on OpenVINO; the default encoder under
``backend auto``, as ``fit`` runs it) into a temporary directory. For each, it first times in-process
``Bundle.predict_proba`` on the request texts (RT test texts, none seen in training), then starts
``python -m pipeline serve BUNDLE --port 0`` on 127.0.0.1 (default settings) and sends bounded request
loops from threads with keep-alive connections:

- latency p50/p99 of requests of 1 text and of 32 texts, one client at a time;
- texts/s with 1, 8 and 32 concurrent clients sending 1-text requests, and 32 clients sending 32-text
  requests; each as a ratio of in-process throughput on the same texts (goal >= 0.8 at 32 clients);
- overload: a restarted server with ``--queue-texts`` of about one second of its throughput, sent
  32-text requests open-loop at twice the sustainable rate (the 32-client 32-text rate); it counts
  answers by status, requests lost (no answer, a broken one, or a 200 without every prediction), and
  checks the server still answers ``/healthz`` afterwards.

Every loop stops by itself (a time and request budget per cell). Client and server share this machine's
cores, as they would behind a local proxy; the load average is printed with the table.

Run:  flock /work/notes/cpu.lock .venv/bin/python benchmarks/bench_serve.py [--bundles glove,int8,default]
      [--seconds 6] [--cache DIR] [--serve-options '--max-batch 256']
      (--cache: REVIEW_TRANSFER_CACHE, else a temporary cache)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"glove": ("glove-6b-50d", {}), "int8": ("minilm", {"backend": "openvino", "quantize": "int8"}),
         "default": (None, {})}  # None: the project's default encoder under backend auto, as fit runs it
GOAL_RATIO = 0.8


def fit_bundles(kinds: list[str], work: Path, cache: str) -> dict[str, Path]:
    """A logreg bundle per kind, fitted on 300 balanced RT pool texts."""
    from pipeline.data.dataset import load, sample_budget, split
    from pipeline.encoders import get_encoder
    from pipeline.encoders.spec import DEFAULT_ENCODER
    from pipeline.fit.train import iter_fit

    train = sample_budget(split(load("rt"))[0], 300, seed=0)
    from pipeline.encoders.auto import auto_encoder

    out = {}
    for kind in kinds:
        spec, options = KINDS[kind]
        if spec is None:  # the default encoder as fit builds it: backend auto (mpnet: OpenVINO int8)
            encoder, _ = auto_encoder(DEFAULT_ENCODER, train.texts, {"work_dir": cache})
        else:
            encoder = get_encoder(spec, work_dir=cache, **options)
        out[kind] = next(iter_fit(train, encoder=encoder, cache_dir=cache)).save(work / kind)
    return out


def request_texts() -> list[str]:
    """RT test-split texts (no training text among them), in a fixed order."""
    from pipeline.data.dataset import load, split

    return list(split(load("rt"))[1].texts)


def in_process(bundle: Path, cache: str, texts: list[str], seconds: float) -> float:
    """Texts/s of in-process ``Bundle.predict_proba`` in one call over as many of ``texts`` as take about
    ``seconds`` (64 to 2,048; the encoder warmed up and its rate guessed on 64 first)."""
    from pipeline.bundle.bundle import Bundle

    model = Bundle.load(bundle, cache_dir=cache)
    model.use_cache = False
    start = time.perf_counter()
    model.predict_proba(texts[:64])
    n = int(min(2048, max(64, 64 / (time.perf_counter() - start) * seconds)))
    start = time.perf_counter()
    model.predict_proba(texts[:n])
    return n / (time.perf_counter() - start)


class Server:
    """``python -m pipeline serve BUNDLE --port 0`` on 127.0.0.1, stopped with SIGTERM."""

    def __init__(self, bundle: Path, cache: str, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", str(bundle), "--port", "0",
                                      "--cache-dir", cache, *args], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        said = []
        for line in self.proc.stderr:
            said.append(line)
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if match:
                self.port = int(match.group(1))
                break
        else:
            raise SystemExit(f"serve did not start for {bundle}:\n{''.join(said)}")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def alive(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok and self.proc.poll() is None
        except OSError:
            return False

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(60)


class Client:
    """One keep-alive connection; :meth:`post` returns (status, seconds, predictions received)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, texts: list[str]) -> tuple[int, float, int]:
        body = json.dumps({"texts": texts}).encode()
        start = time.perf_counter()
        try:
            self.conn.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            return -1, time.perf_counter() - start, 0
        seconds = time.perf_counter() - start
        got = len(json.loads(data)["predictions"]) if response.status == 200 else 0
        return response.status, seconds, got


@dataclass
class Loop:
    """What a set of request loops saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    texts: int = 0
    lost: int = 0
    seconds: float = 0.0

    def rate(self) -> float:
        return self.texts / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


def closed_loop(port: int, texts: list[str], *, clients: int, size: int, seconds: float, max_requests: int) -> Loop:
    """``clients`` threads each sending ``size``-text requests back to back until the time or request budget."""
    out, lock = Loop(), threading.Lock()
    budget = iter(range(max_requests))
    deadline = time.perf_counter() + seconds

    def run(offset: int) -> None:
        client, i = Client(port), offset
        while time.perf_counter() < deadline:
            with lock:
                if next(budget, None) is None:
                    return
            batch = [texts[(i + k) % len(texts)] for k in range(size)]
            i += size * clients
            status, took, got = client.post(batch)
            with lock:
                out.statuses[status] += 1
                if status == 200:
                    out.latencies.append(took)
                    out.texts += got
                out.lost += status == 200 and got != size or status == -1

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(c * size,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.seconds = time.perf_counter() - start
    return out


def open_loop(port: int, texts: list[str], *, rate: float, size: int, seconds: float) -> Loop:
    """``size``-text requests sent at ``rate`` per second for ``seconds``, whether answers came or not."""
    out, lock, local = Loop(), threading.Lock(), threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = Client(port)
        batch = [texts[(i * size + k) % len(texts)] for k in range(size)]
        status, took, got = local.client.post(batch)
        with lock:
            out.statuses[status] += 1
            if status == 200:
                out.latencies.append(took)
                out.texts += got
            out.lost += status == 200 and got != size or status not in (200, 503)

    n = max(1, int(rate * seconds))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=256) as pool:
        for i in range(n):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            pool.submit(one, i)
    out.seconds = time.perf_counter() - start
    return out


def bench(kind: str, bundle: Path, cache: str, texts: list[str], seconds: float, options: list[str]) -> dict:
    """The row of one bundle; ``options`` go to every ``serve`` it starts."""
    base = in_process(bundle, cache, texts, seconds)
    row: dict = {"bundle": kind, "in_process": base}
    server = Server(bundle, cache, *options)
    try:
        budget = int(base * seconds) + 10
        one = closed_loop(server.port, texts, clients=1, size=1, seconds=seconds, max_requests=min(budget, 300))
        many = closed_loop(server.port, texts, clients=1, size=32, seconds=seconds, max_requests=max(12, budget // 32))
        row |= {"p50_1": one.pct(50), "p99_1": one.pct(99), "p50_32": many.pct(50), "p99_32": many.pct(99)}
        lost = one.lost + many.lost
        for c in (1, 8, 32):
            loop = closed_loop(server.port, texts, clients=c, size=1, seconds=seconds, max_requests=budget)
            row[f"c{c}"], lost = loop.rate(), lost + loop.lost
        full = closed_loop(server.port, texts, clients=32, size=32, seconds=seconds, max_requests=budget // 32 + 32)
        row["c32x32"], lost = full.rate(), lost + full.lost
        row["lost_closed"] = lost
    finally:
        server.stop()
    sustainable = row["c32x32"] / 32  # requests/s of 32 texts
    queue = max(64, int(row["c32x32"]))  # about one second of work
    server = Server(bundle, cache, *options, "--queue-texts", str(queue), "--max-texts", "32")
    try:
        over = open_loop(server.port, texts, rate=2 * sustainable, size=32, seconds=seconds)
        row |= {"over_sent": sum(over.statuses.values()), "over_200": over.statuses[200], "over_503": over.statuses[503],
                "over_lost": over.lost, "over_p99": over.pct(99), "over_alive": server.alive(), "queue": queue}
    finally:
        row["exit"] = server.stop()
    return row


def table(rows: list[dict]) -> str:
    head = ("| bundle | in-process texts/s | 1 text p50 / p99 ms | 32 texts p50 / p99 ms | texts/s c=1 / 8 / 32 "
            "(1-text requests) | c=32 ratio | texts/s c=32 (32-text requests) | ratio | 2x overload: sent, 200, 503, "
            "lost, p99 ms of 200s, alive |\n|" + " --- |" * 9)
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['bundle']} | {r['in_process']:.0f} | {r['p50_1']:.1f} / {r['p99_1']:.1f} | "
            f"{r['p50_32']:.0f} / {r['p99_32']:.0f} | {r['c1']:.0f} / {r['c8']:.0f} / {r['c32']:.0f} | "
            f"{r['c32'] / r['in_process']:.2f} | {r['c32x32']:.0f} | {r['c32x32'] / r['in_process']:.2f} | "
            f"{r['over_sent']}, {r['over_200']}, {r['over_503']}, {r['over_lost']}, {r['over_p99']:.0f}, "
            f"{'yes' if r['over_alive'] else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", default="glove,int8,default", help="Comma-separated: glove, int8, default.")
    parser.add_argument("--seconds", type=float, default=6.0, help="Time budget of each measured loop.")
    parser.add_argument("--cache", default=os.environ.get("REVIEW_TRANSFER_CACHE"), help="Embedding cache / exports.")
    parser.add_argument("--json", default=None, help="Also write the rows to this JSON file.")
    parser.add_argument("--serve-options", default="", help="Extra options for serve, e.g. '--max-batch 256'.")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.bundles.split(",")]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown bundle kinds {sorted(unknown)}; use {', '.join(KINDS)}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or str(Path(tmp) / "cache")
        bundles = fit_bundles(kinds, Path(tmp), cache)
        texts = request_texts()
        print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
        rows = []
        for kind, path in bundles.items():
            rows.append(bench(kind, path, cache, texts, args.seconds, args.serve_options.split()))
            print(json.dumps(rows[-1]), flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}  ({os.cpu_count()} cores)")
    print(table(rows))
    worst = min(r["c32x32"] / r["in_process"] for r in rows)
    print(f"served / in-process at c=32 (32-text requests), worst bundle: {worst:.2f} (goal >= {GOAL_RATIO})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
