"""Streaming readers: the same texts as the data layer, clear errors, and flat memory on 200k rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.data.dataset import DataError, load
from pipeline.store.stream import iter_text_batches, streamable

ROWS_BIG, ROWS_SMALL, BATCH = 200_000, 20_000, 10_000


def _flat(batches):
    return [t for b in batches for t in b]


@pytest.fixture
def files(rt, tmp_path):
    """The first 300 RT texts, with an empty row, padding and a line break, as csv, tsv, jsonl and parquet."""
    texts = rt.texts[:300] + ["   ", "  two\nlines  ", "12345"]
    paths = {}
    for suffix, delimiter in ((".csv", ","), (".tsv", "\t")):
        paths[suffix] = tmp_path / f"r{suffix}"
        with open(paths[suffix], "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=delimiter)
            w.writerow(["review", "score"])
            w.writerows([t, i % 2] for i, t in enumerate(texts))
    paths[".jsonl"] = tmp_path / "r.jsonl"
    paths[".jsonl"].write_text("".join(json.dumps({"review": t, "score": 1}) + "\n" for t in texts), encoding="utf-8")
    paths[".parquet"] = tmp_path / "r.parquet"
    pq.write_table(pa.table({"review": texts, "score": [1] * len(texts)}), paths[".parquet"], row_group_size=64)
    return paths


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_batches_hold_the_texts_the_data_layer_loads(files, suffix):
    path = files[suffix]
    assert streamable(str(path))
    batches = list(iter_text_batches(path, text_col="review", batch_rows=100))
    assert max(len(b) for b in batches) <= 100 and len(batches) >= 3
    expected = load(str(path), text_col="review", require_labels=False).texts
    assert _flat(batches) == expected  # stripped, empty dropped, order kept, numbers read as text
    assert "two\nlines" in expected


def test_errors_name_the_file_and_the_row_or_column(files, tmp_path):
    with pytest.raises(DataError, match=r"r\.csv: missing column 'text'; columns present: \['review', 'score'\]"):
        list(iter_text_batches(files[".csv"]))
    numbers = tmp_path / "x.jsonl"
    numbers.write_text('{"text": 1}\n{"text": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.jsonl: line 1, column 'text' is int \(1\); expected a string"):
        list(iter_text_batches(numbers))
    assert not streamable("rt") and not streamable(str(tmp_path / "absent.csv"))


def test_embed_streams_a_parquet_file(files, tmp_path):
    res = CliRunner().invoke(main, ["embed", str(files[".parquet"]), "--text-col", "review", "--encoder",
                                    "glove-6b-50d", "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "302 texts (302 unique): 0 hits, 302 misses" in res.output


# ---------------------------------------------------------------------------------------------- memory
def _write_corpus(path, n):
    """n distinct ~260-character reviews, in row groups of BATCH rows (as writers such as Spark make)."""
    rng = np.random.default_rng(0)
    words = np.array("great dull film plot actor scene boring moving script funny tense score".split())
    stems = [" ".join(rng.choice(words, 40)) for _ in range(1000)]
    pq.write_table(pa.table({"text": [f"{stems[i % 1000]} #{i}" for i in range(n)]}), path, row_group_size=BATCH)


READER = """
import os, sys
import pyarrow.parquet as pq
from pipeline.store.stream import iter_text_batches

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

path, mode = sys.argv[1], sys.argv[2]
trend = []
if mode == "stream":
    for batch in iter_text_batches(path, batch_rows=int(sys.argv[3])):
        trend.append(rss_mb())
else:
    texts = pq.read_table(path).column("text").to_pylist()
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))  # this process only
print(int(peak.split()[1]) / 1024, trend)
"""


def _read(path, mode):
    out = subprocess.run([sys.executable, "-c", READER, str(path), mode, str(BATCH)], capture_output=True,
                         text=True, check=True).stdout.split(" ", 1)
    return float(out[0]), json.loads(out[1])


def test_streaming_keeps_memory_flat_on_200k_rows(tmp_path):
    big, small = tmp_path / "big.parquet", tmp_path / "small.parquet"
    _write_corpus(big, ROWS_BIG)
    _write_corpus(small, ROWS_SMALL)
    peak_small, _ = _read(small, "stream")
    peak_big, trend = _read(big, "stream")
    peak_whole, _ = _read(big, "whole")
    assert len(trend) == ROWS_BIG // BATCH
    whole_growth = peak_whole - peak_small  # what holding the 200k texts costs over streaming 20k
    assert whole_growth > 100  # MB: the corpus is big enough for the comparison to mean something
    assert peak_big - peak_small < whole_growth / 3
    # After the reader's buffers have filled, memory stays flat batch after batch. The allocator grows in
    # steps of ~10 MB on a shared machine, so the bound is relative: keeping the last 16 batches' texts
    # would add about 16/20 of whole_growth; streaming must stay under a quarter of it.
    warm = trend[4]
    assert max(trend[4:]) - warm < whole_growth / 4, (trend, whole_growth)
