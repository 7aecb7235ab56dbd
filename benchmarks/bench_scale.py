"""Scale benchmark: a million reviews through stage one (local engine, Ray on 1 and 2 nodes) and stage two
out of core, with the per-row costs extrapolated to 10M and 100M rows.

Steps (each one command, so that each fits a short turn of a shared machine; results go to WORK/results.json):

  data      N texts resampled from RT (each a review with two words dropped at random, labelled and grouped by
            movie as its source, so test movies stay on the test side) -> WORK/reviews-N.parquet, and its first 100k
  local     ``embed`` with the local engine into WORK/cache-local: texts/s, wall s, peak RSS, cache bytes, files,
            and the seconds ``embed`` spent compacting (timed inside it); --resume goes on from the rows a killed
            run left (the cache is crash-safe)
  fit       ``fit --head sgd --out-of-core`` at 100k rows and at the longest fully cached prefix: wall s, peak RSS
  engines   the first --rows texts into fresh caches: local engine, then ``embed --engine ray`` on a cluster of
            2 and of 1 raylets of 1 CPU each (``ray.cluster_utils``, driver on this machine); --nodes picks which
  compact   compaction of the local store timed alone: one merge of 64 new 1,024-row shards into a segment (what
            a fill does every 65,536 rows), then one forced compaction (every row rewritten into a new main file)
  lookup    opening the filled local store (every file's keys read and indexed) and looking up 1,024 new keys in it
            (what each commit of a fill does): s per open, ms per lookup and per file
  report    the table and the extrapolation (per-row costs x 10 and x 100), from results.json

Run (GloVe: fast enough for a million rows on CPUs):
  B="flock /work/notes/cpu.lock .venv/bin/python benchmarks/bench_scale.py --work /tmp/bench-scale"
  $B data --rows 1000000; $B local; $B local --resume; $B fit; $B engines --rows 200000; $B compact; $B report
Each step runs the CLI in a child process and reads its peak RSS from ``wait4``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ENCODER = "glove-6b-50d"
SMALL = 100_000
ROOT = Path(__file__).resolve().parents[1]


# The CLI with Store.compact timed: seconds and merges written to argv[1] at exit.
TIMED_CLI = """
import atexit, json, sys, time
from pipeline.store.cache import Store
from pipeline.cli import main
spent = {"seconds": 0.0, "merges": 0, "calls": 0}
compact = Store.compact
def timed(self, *args, **kwargs):
    start = time.perf_counter()
    merged = compact(self, *args, **kwargs)
    spent["seconds"] += time.perf_counter() - start
    spent["merges"] += bool(merged)
    spent["calls"] += 1
    return merged
Store.compact = timed
atexit.register(lambda: open(sys.argv[1], "w").write(json.dumps(spent)))
main(sys.argv[2:], prog_name="review-transfer")
"""


# ---------------------------------------------------------------------------------------------- helpers
def run_cli(args: list[str], compact_log: Path | None = None) -> tuple[float, int, str]:
    """(wall s, peak RSS bytes, output) of ``review-transfer ARGS`` in a child process; exit on failure.
    With ``compact_log``, the child times every compaction and writes the totals there."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    head = ["-c", TIMED_CLI, str(compact_log)] if compact_log else ["-m", "pipeline"]
    proc = subprocess.Popen([sys.executable, *head, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"review-transfer {' '.join(args)} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss * 1024, out


def store_files(cache: Path) -> list[Path]:
    """The encoder's store files in ``cache``: main file, segments and shards (not the encoder's own work files)."""
    from pipeline.encoders import get_encoder

    fp = get_encoder(ENCODER).fingerprint
    files = [cache / f"{fp}.h5", *(cache / f"{fp}.segments").glob("*.h5"), *(cache / f"{fp}.shards").glob("*.h5")]
    return [p for p in files if p.is_file()]


def disk_bytes(cache: Path) -> int:
    """Bytes of the encoder's store files in ``cache``."""
    return sum(p.stat().st_size for p in store_files(cache))


def load_results(work: Path) -> dict[str, Any]:
    path = work / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save(work: Path, key: str, value: dict[str, Any]) -> None:
    results = load_results(work)
    results[key] = {**value, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "load": os.getloadavg()[0]}
    tmp = work / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, work / "results.json")
    print(key, json.dumps(results[key]))


def source(work: Path, rows: int | None = None) -> Path:
    data = load_results(work)["data"]
    return Path(data["small"] if rows == SMALL else data["path"])


def columns() -> list[str]:
    return ["--text-col", "text", "--label-col", "label", "--group-col", "movie"]


# ---------------------------------------------------------------------------------------------- steps
def step_data(work: Path, rows: int) -> None:
    """N unique texts resampled from RT (two words dropped at random from a review), grouped by its movie,
    so that the split sends the resamples of RT's test movies to the test side."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.data.dataset import load

    pool = load("rt")
    words = [t.split() for t in pool.texts]
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    texts, labels, movies = [], [], []
    while len(texts) < rows:
        for i in rng.integers(0, len(words), size=rows):
            w = words[i]
            if len(w) < 6:
                continue
            a, b = sorted(rng.choice(len(w), 2, replace=False))
            text = " ".join(w[:a] + w[a + 1 : b] + w[b + 1 :])
            if text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(int(pool.labels[i]))
            movies.append(pool.groups[i])
            if len(texts) == rows:
                break
    table = pa.table({"text": texts, "label": labels, "movie": movies})
    work.mkdir(parents=True, exist_ok=True)
    path, small = work / f"reviews-{rows}.parquet", work / f"reviews-{SMALL}.parquet"
    pq.write_table(table, path, row_group_size=65_536)
    pq.write_table(table.slice(0, min(SMALL, rows)), small, row_group_size=65_536)
    save(work, "data", {"rows": rows, "path": str(path), "small": str(small), "bytes": path.stat().st_size,
                        "mean_chars": float(np.mean([len(t) for t in texts]))})


def step_local(work: Path, resume: bool = False) -> None:
    cache = work / "cache-local"
    if not resume:
        shutil.rmtree(cache, ignore_errors=True)
    rows = load_results(work)["data"]["rows"]
    log = work / "compact-local.json"
    wall, rss, out = run_cli(["embed", str(source(work)), "--encoder", ENCODER, "--cache-dir", str(cache)], log)
    save(work, "local-resume" if resume else "local", {
        "rows": rows, "wall_s": wall, "texts_per_s": rows / wall, "peak_rss": rss, "cache_bytes": disk_bytes(cache),
        "files": len(store_files(cache)), "compaction": json.loads(log.read_text()),
        "report": out.strip().splitlines()[-3:]})


def step_fit(work: Path) -> None:
    """Out-of-core sgd at 100k rows and at the longest prefix of the file whose rows are all cached (the whole
    file once ``local`` finished): wall s and peak RSS of ``fit``."""
    import pyarrow.parquet as pq

    from pipeline.encoders import get_encoder
    from pipeline.store.cache import Store, text_keys

    enc = get_encoder(ENCODER)
    store = Store(work / "cache-local", enc.fingerprint)
    table = pq.read_table(source(work))
    texts = table.column("text").to_pylist()
    cached = 0
    for lo in range(0, len(texts), 50_000):
        if store.missing(text_keys(texts[lo : lo + 50_000]), enc.dim).any():
            break
        cached = min(lo + 50_000, len(texts))
    big = work / f"reviews-{cached}.parquet"
    pq.write_table(table.slice(0, cached), big, row_group_size=65_536)
    del table, texts
    for rows, path in ((SMALL, Path(load_results(work)["data"]["small"])), (cached, big)):
        out_dir = work / f"models-{rows}"
        shutil.rmtree(out_dir, ignore_errors=True)
        wall, rss, out = run_cli(["fit", str(path), *columns(), "--encoder", ENCODER, "--head", "sgd", "--out-of-core",
                                  "--cache-dir", str(work / "cache-local"), "--out", str(out_dir), "--prompts", "none"])
        manifest = json.loads(next(out_dir.glob("*/manifest.json")).read_text())
        save(work, f"fit{rows}", {"rows": rows, "wall_s": wall, "peak_rss": rss,
                                  "accuracy": manifest["metrics"]["test"]["accuracy"],
                                  "train_rows": manifest["train"]["size"], "sgd_s": manifest["head"]["fit_seconds"],
                                  "lines": [ln for ln in out.splitlines() if ln.startswith("fit:")]})


def step_engines(work: Path, rows: int, nodes: list[int]) -> None:
    """The first ``rows`` texts embedded into fresh caches: local engine (0 in ``nodes``), then Ray on each
    number of nodes in ``nodes``."""
    import pyarrow.parquet as pq

    path = work / f"reviews-{rows}.parquet"
    if not path.exists():
        pq.write_table(pq.read_table(source(work)).slice(0, rows), path, row_group_size=65_536)
    for n in nodes:
        if n == 0:
            cache = work / f"cache-local{rows}"
            shutil.rmtree(cache, ignore_errors=True)
            wall, rss, out = run_cli(["embed", str(path), "--encoder", ENCODER, "--cache-dir", str(cache)])
            save(work, f"local{rows}", {"rows": rows, "wall_s": wall, "texts_per_s": rows / wall, "peak_rss": rss,
                                        "cache_bytes": disk_bytes(cache), "report": out.strip().splitlines()[-3:]})
        else:
            step_ray(work, n, path, rows)


def step_ray(work: Path, nodes: int, path: Path, rows: int) -> None:
    """embed on a Ray cluster of ``nodes`` raylets (1 CPU each) started on this machine."""
    from ray.cluster_utils import Cluster

    cache = work / f"cache-ray{nodes}"
    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    up = time.perf_counter() - start
    try:
        wall, rss, out = run_cli(["embed", str(path), "--encoder", ENCODER, "--cache-dir", str(cache),
                                  "--engine", "ray", "--address", cluster.address, "--workers", str(nodes)])
    finally:
        cluster.shutdown()
    save(work, f"ray{nodes}-{rows}", {"rows": rows, "nodes": nodes, "cluster_start_s": up, "wall_s": wall,
                               "texts_per_s": rows / wall, "driver_peak_rss": rss, "cache_bytes": disk_bytes(cache),
                               "report": out.strip().splitlines()[-3:]})


def step_compact(work: Path) -> None:
    """Compaction of the filled local store timed alone, on a copy of it (the original stays as ``local`` left
    it): 64 new shards of 1,024 rows merged into a segment, then every row rewritten into one new main file."""
    from pipeline.encoders import get_encoder
    from pipeline.store.cache import Store, file_meta, text_keys

    enc = get_encoder(ENCODER)
    copy = work / "cache-compact"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(work / "cache-local", copy)
    store = Store(copy, enc.fingerprint)
    store.compact()  # whatever the fill left below the merge threshold, so the segment below is the 64 new shards
    meta = file_meta(enc)
    rng = np.random.default_rng(0)

    def shard(s: int) -> None:
        keys = text_keys([f"bench_scale compaction probe {s} {i}" for i in range(1024)])
        store.commit(keys, rng.standard_normal((1024, enc.dim)).astype(np.float32), meta)

    for s in range(64):
        shard(s)
    start = time.perf_counter()
    assert store.compact()
    segment_s = time.perf_counter() - start
    segment = any(store.segment_dir.glob("*.h5"))  # False below 65,536 rows: the main file was rewritten
    shard(64)  # so that the forced compaction below has a shard to merge
    files = len(store_files(copy))
    with store.locked(exclusive=False):
        rows = sum(len(p.keys) for p in store.parts())
    start = time.perf_counter()
    assert store.compact(force=True)
    seconds = time.perf_counter() - start
    save(work, "compact", {"rows": rows, "files_before": files, "segment_rows": 64 * 1024, "segment_s": segment_s,
                           "segment": segment,
                           "seconds": seconds, "main_bytes": store.main.stat().st_size})
    shutil.rmtree(copy)


def step_lookup(work: Path) -> None:
    """Open the filled local store cold (keys read and indexed) and time lookups of 1,024 keys it lacks."""
    from pipeline.encoders import get_encoder
    from pipeline.store.cache import Store, text_keys

    store = Store(work / "cache-local", get_encoder(ENCODER).fingerprint)
    start = time.perf_counter()
    with store.locked(exclusive=False):
        parts = store.parts()
    open_s = time.perf_counter() - start
    keys = [text_keys([f"bench_scale lookup {r} {i}" for i in range(1024)]) for r in range(50)]
    start = time.perf_counter()
    for k in keys:
        assert store.missing(k, 50).all()
    lookup_s = (time.perf_counter() - start) / len(keys)
    save(work, "lookup", {"rows": sum(len(p.keys) for p in parts), "files": len(parts), "open_s": open_s,
                          "lookup_ms": lookup_s * 1e3, "per_file_ms": lookup_s * 1e3 / len(parts)})


# ---------------------------------------------------------------------------------------------- report
def step_report(work: Path) -> None:
    r = load_results(work)
    mb = 1 << 20
    print(f"texts resampled from RT ({r['data']['mean_chars']:.0f} chars on average), {ENCODER}\n")
    print("| step | rows | wall s | rows/s | peak RSS | on disk | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, e in r.items():
        if key.startswith(("local", "ray")):
            rss = e.get("peak_rss", e.get("driver_peak_rss", 0))
            name = f"embed, Ray, {e['nodes']} node(s) of 1 CPU" if key.startswith("ray") else f"embed, local ({key})"
            print(f"| {name} | {e['rows']:,} | {e['wall_s']:.0f} | {e['texts_per_s']:,.0f} | {rss / mb:,.0f} MB"
                  f"{' (driver)' if key.startswith('ray') else ''} | {e['cache_bytes'] / mb:,.0f} MB | {e['load']:.1f} |")
            if "compaction" in e:
                c = e["compaction"]
                print(f"| of which compaction ({c['merges']} merges, {e['files']} files after) | | {c['seconds']:.1f} "
                      f"| | | | |")
        elif key.startswith("fit"):
            print(f"| fit --head sgd --out-of-core | {e['rows']:,} | {e['wall_s']:.0f} | {e['rows'] / e['wall_s']:,.0f} "
                  f"| {e['peak_rss'] / mb:,.0f} MB | accuracy {e['accuracy']:.3f} | {e['load']:.1f} |")
        elif key == "lookup":
            print(f"| open the store (keys of {e['files']} files read and indexed) | {e['rows']:,} | {e['open_s']:.1f} | "
                  f"| | | {e['load']:.1f} |")
            print(f"| look up 1,024 keys, as each commit does | | {e['lookup_ms'] / 1e3:.3f} "
                  f"({e['per_file_ms']:.2f} ms a file) | | | | {e['load']:.1f} |")
        elif key == "compact":
            kind = "into a segment" if e.get("segment", True) else "(main file rewritten: a store under 65,536 rows)"
            print(f"| one merge of 64 shards {kind}, timed alone | {e['segment_rows']:,} | {e['segment_s']:.1f} | "
                  f"{e['segment_rows'] / e['segment_s']:,.0f} | | | {e['load']:.1f} |")
            print(f"| one forced compaction ({e['files_before']} files into 1), timed alone | {e['rows']:,} | "
                  f"{e['seconds']:.1f} | {e['rows'] / e['seconds']:,.0f} | | {e['main_bytes'] / mb:,.0f} MB | {e['load']:.1f} |")
    extrapolate(r)


def extrapolate(r: dict[str, Any]) -> None:
    """Per-row costs x 10 and x 100: peak RSS and time of out-of-core fit (linear between the two fits), and the
    time a fill of N rows spends compacting (each row copied once into a segment, at the rate of one segment merge
    timed alone), and the files a store of N rows is made of (one segment per 65,536 rows)."""
    fits = sorted((e for k, e in r.items() if k.startswith("fit")), key=lambda e: e["rows"])
    if len(fits) >= 2 and fits[-1]["rows"] > fits[0]["rows"]:
        small, big = fits[0], fits[-1]
        slope = (big["peak_rss"] - small["peak_rss"]) / (big["rows"] - small["rows"])
        per_row = (big["wall_s"] - small["wall_s"]) / (big["rows"] - small["rows"])
        print(f"\nout-of-core fit: {slope:.0f} B of peak RSS and {per_row * 1e6:.0f} us per row")
        for rows in (big["rows"], 10 * big["rows"], 100 * big["rows"]):
            print(f"  {rows:>12,} rows: peak RSS {(big['peak_rss'] + (rows - big['rows']) * slope) / 1e9:,.1f} GB, "
                  f"{(big['wall_s'] + (rows - big['rows']) * per_row) / 60:,.1f} min")
    if "compact" in r:
        c = r["compact"]
        rate = c["segment_rows"] / c["segment_s"]
        print(f"\nsegment merges copy {rate:,.0f} rows/s; a forced rewrite {c['rows'] / c['seconds']:,.0f} rows/s. "
              "Compaction during one fill, and the files of the store:")
        for rows in (1_000_000, 10_000_000, 100_000_000):
            print(f"  {rows:>12,} rows: {rows / rate / 60:,.1f} min compacting, about {rows // 65_536 + 1:,} files; "
                  f"a forced rewrite {rows / (c['rows'] / c['seconds']) / 60:,.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["data", "local", "fit", "engines", "compact", "lookup", "report"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-scale"), help="data, caches and results.json")
    parser.add_argument("--rows", type=int, default=1_000_000, help="data: texts to make; engines: the slice embedded")
    parser.add_argument("--resume", action="store_true", help="local: keep the cache a killed run left and go on")
    parser.add_argument("--nodes", default="0,2,1", help="engines: 0 for the local engine, N for Ray on N nodes")
    args = parser.parse_args()
    if args.step == "data":
        step_data(args.work, args.rows)
    elif args.step == "local":
        step_local(args.work, resume=args.resume)
    elif args.step == "fit":
        step_fit(args.work)
    elif args.step == "engines":
        step_engines(args.work, args.rows, [int(n) for n in args.nodes.split(",")])
    elif args.step == "compact":
        step_compact(args.work)
    elif args.step == "lookup":
        step_lookup(args.work)
    else:
        step_report(args.work)


if __name__ == "__main__":
    main()
