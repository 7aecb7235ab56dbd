"""How fast the labelling page answers a label (save + fsync, refit, CV estimate, next review), over HTTP.

RT's pool (10,327 texts) with its MiniLM vectors from the cache is the unlabelled set. For each
strategy and each number of labels already given, a real server (uvicorn, in a thread) is started on
a session holding that many labels (a balanced sample of the pool), and ``--answers`` labels are
posted one after another as the page does; the time of each POST, from send to the next review
received, is measured as wall time and as this process's CPU time (server and client share the
process; on a machine shared with other jobs the CPU time is the steadier figure). Target: under 300 ms. Run with the MiniLM vectors cached
(``REVIEW_TRANSFER_CACHE=/work/shared-cache`` here, or ``review-transfer embed rt --encoder minilm``).

    python benchmarks/bench_label.py --labels 20,200,1000 --answers 15
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import threading
from dataclasses import replace
import time
import urllib.request
from pathlib import Path

import numpy as np

from pipeline.data.dataset import budget_indices, load, split
from pipeline.active.label_app.app import serve
from pipeline.active.label_app.session import LabelSession
from pipeline.active.label_app.store import LabelFile
from pipeline.active.labelling import workspace


def start(session: LabelSession) -> tuple[str, str]:
    """Serve ``session`` in a daemon thread; returns (base URL, token)."""
    printed = []
    threading.Thread(target=serve, args=(session,), kwargs={"echo": printed.append}, daemon=True).start()
    while not printed:
        time.sleep(0.01)
    base, token = re.search(r"(http://[^/]+)/\?token=(\S+)", printed[0]).groups()
    return base, token


def post(base: str, token: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(base + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", "X-Token": token})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", default="20,200,1000", help="labels already given when timing starts")
    ap.add_argument("--answers", type=int, default=15, help="labels posted and timed per setting")
    ap.add_argument("--strategies", default="typical-margin,hybrid,margin,diverse,random")
    args = ap.parse_args()
    pool, _ = split(load("rt"))
    ws = workspace(pool, None, "minilm")
    print(f"{ws.n_source:,} texts, vectors {ws.X.shape} from the cache; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'strategy':<14} {'labels':>6} {'wall median ms':>15} {'wall p95 ms':>12} {'CPU median ms':>14} {'CPU p95 ms':>11}")
    for strategy in args.strategies.split(","):
        for n in (int(x) for x in args.labels.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                given = budget_indices(pool, n, seed=0)
                labels = {int(i): int(pool.labels[i]) for i in given}
                store = LabelFile(Path(tmp) / "labels.jsonl")
                session = LabelSession(replace(ws, labels=labels, label_names=("negative", "positive")), set(),
                                       (store, LabelFile(Path(tmp) / "labels.jsonl.skipped")), strategy)
                base, token = start(session)
                with urllib.request.urlopen(urllib.request.Request(f"{base}/api/state?client=b",
                                                                   headers={"X-Token": token})) as r:
                    state = json.loads(r.read())
                times, cpu = [], []
                for _ in range(args.answers):
                    row = state["item"]["row"]
                    choice = "positive" if pool.labels[row] == 1 else "negative"
                    t, c = time.perf_counter(), time.process_time()
                    state = post(base, token, "/api/answer", {"client": "b", "row": row, "choice": choice})
                    times.append(1000 * (time.perf_counter() - t))
                    cpu.append(1000 * (time.process_time() - c))
                assert len(store.records()) == args.answers and sum(state["counts"].values()) == n + args.answers
            print(f"{strategy:<14} {n:>6} {np.median(times):>15.0f} {np.percentile(times, 95):>12.0f} "
                  f"{np.median(cpu):>14.0f} {np.percentile(cpu, 95):>11.0f}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
