"""Progress off a terminal: no bar redrawing itself into a log, a plain line now and then for long work."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from helpers import write_reviews_csv

from pipeline.progress import LineProgress, progress_bar


def test_off_a_terminal_progress_is_lines_not_a_bar():
    bar = progress_bar(100, "embed x", "text")  # pytest's stderr is not a terminal
    assert isinstance(bar, LineProgress)
    out = io.StringIO()
    short = LineProgress(100, "embed x", "text", stream=out)
    short.update(100)
    short.close()
    assert out.getvalue() == ""  # short work stays silent

    long = LineProgress(2000, "embed x", "text", every=0, stream=out)
    for _ in range(4):
        long.update(500)
    long.set_postfix(loss="0.31")
    long.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and "\r" not in out.getvalue()
    assert lines[0].startswith("embed x: 500/2,000 texts (25%)") and lines[-1].startswith("embed x: 2,000/2,000")
    assert lines[-1].endswith("loss=0.31")


def test_a_line_says_the_rate_and_how_long_is_left():
    out = io.StringIO()
    bar = LineProgress(1000, "embed x", "text", every=None, stream=out)
    bar._start -= 10.0  # ten seconds ago
    bar.update(250)
    assert bar.line() == "embed x: 250/1,000 texts (25%), 10 s, 25 texts/s, ETA 30 s"
    slow = LineProgress(27, "compare", "cell", every=None, stream=out)
    slow._start -= 76.0
    slow.update(19)  # under one cell a second: seconds per cell, not '0 cells/s'
    assert slow.line() == "compare: 19/27 cells (70%), 76 s, 4 s per cell, ETA 32 s"


def test_a_combined_encoder_reports_one_overall_line(tmp_path, monkeypatch, capsys, rt, glove, small_glove):
    """Two parts' stores filled under one count: every line is the combined spec's, over both parts' texts."""
    from pipeline import progress
    from pipeline.encoders import get_encoder
    from pipeline.store.cache import EmbeddingCache

    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)  # a line at every update
    cache = EmbeddingCache(tmp_path / "cache", chunk_size=100)
    texts = rt.texts[:300]
    cache.vectors(glove, texts[:100])  # 100 of the first part's texts cached already
    capsys.readouterr()
    both = get_encoder(f"glove-6b-50d+{small_glove}")
    cache.vectors(both, texts)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith(f"embed {both.spec}: ") for line in lines), lines
    assert lines[-1].startswith(f"embed {both.spec}: 500/500 texts (100%)")


def test_silent_when_asked():
    out = io.StringIO()
    bar = progress_bar(10, "x", progress=False)
    bar.stream = out
    bar.update(10)
    bar.close()
    assert out.getvalue() == ""


def test_embed_to_a_pipe_writes_no_bar(rt_split, tmp_path):
    pool, _ = rt_split
    csv = write_reviews_csv(tmp_path / "reviews.csv", pool, range(0, 3000))
    env = {**os.environ, "REVIEW_TRANSFER_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "pipeline", "embed", csv, "--encoder", "glove-6b-50d",
                           "--chunk-size", "256"], env=env, capture_output=True, check=True)
    assert b"3,000 texts" in done.stdout or b"3000 texts" in done.stdout, done.stdout
    assert b"\r" not in done.stderr and b"it/s" not in done.stderr, done.stderr
