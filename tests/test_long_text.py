"""Long texts: windowing and pooling, fingerprints per strategy, chunk-mean vs truncation on long
reviews built from real RT snippets, and the length reports of ``embed`` and ``data show``."""

from __future__ import annotations

import csv
import logging
import re

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit

from pipeline.cli import main
from pipeline.encoders import get_encoder
from pipeline.encoders.long_text import Batching, LengthStats, Windowing, encode_windows, pool
from benchmarks.long_reviews import concatenate

MAX_LENGTH = 24  # small, so six RT snippets overflow it many times over and encoding stays fast
SEEDS = 5


@pytest.fixture(scope="session")
def encoders() -> dict[str, object]:
    """MiniLM at MAX_LENGTH word pieces under every strategy (fp32: identical runs give identical vectors)."""
    return {s: get_encoder("minilm", max_length=MAX_LENGTH, precision="fp32", long_text=s)
            for s in ("auto", "truncate", "head-tail", "chunk-mean")}


@pytest.fixture(scope="session")
def long_docs(rt):
    """200 documents of six same-movie, same-label RT snippets, balanced."""
    return concatenate(rt, per_doc=6, seed=0, limit=200)


# ------------------------------------------------------------------------------------------ windowing
def test_chunk_windows_cover_the_whole_text_with_overlap():
    ids = list(range(100))
    w = Windowing("chunk-mean", 30)
    pieces = w.pieces(ids)
    assert all(len(p) == 30 for p in pieces)
    assert sorted(set(i for p in pieces for i in p)) == ids  # every word piece is seen
    assert pieces[0][0] == 0 and pieces[-1][-1] == 99
    assert all(a[-1] >= b[0] for a, b in zip(pieces, pieces[1:]))  # consecutive windows overlap
    assert Windowing("chunk-mean", 30).pieces(ids[:30]) == [ids[:30]]  # within the window: one input


def test_truncate_and_head_tail_keep_one_window():
    ids = list(range(100))
    assert Windowing("truncate", 20).pieces(ids) == [ids[:20]]
    (head_tail,) = Windowing("head-tail", 20).pieces(ids)
    assert head_tail == ids[:5] + ids[85:]  # a quarter from the start, the rest from the end


def test_batches_on_threads_give_the_same_vectors_in_the_same_order():
    """``parallel`` batches at once (openvino's streams) change nothing but the speed, even when later
    batches finish first."""
    import time

    rng = np.random.default_rng(0)
    ids = [list(rng.integers(5, 999, size=n)) for n in rng.integers(1, 40, size=300)]
    windowing = Windowing("chunk-mean", 16)

    def forward(batch):
        time.sleep(0.002 * (len(batch[-1]) % 3))  # out-of-order completion
        return np.array([[len(p), sum(p), p[0]] for p in batch], dtype=np.float32)

    done = []
    one = encode_windows(ids, windowing, 3, forward, False, Batching(8))
    two = encode_windows(ids, windowing, 3, forward, False, Batching(8, parallel=2), progress=done.append)
    assert np.array_equal(one, two) and sum(done) == len(ids)


def test_pool_is_a_token_weighted_mean_renormalised():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]], dtype=np.float32)
    owner, weight = np.array([0, 0, 1]), np.array([3.0, 1.0, 5.0])
    raw = pool(v, owner, weight, 2, normalize=False)
    np.testing.assert_allclose(raw, [[0.75, 0.25], [3.0, 4.0]])
    unit = pool(v, owner, weight, 2, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)


def test_length_stats_report_long_texts_and_share_seen():
    stats = LengthStats.of(np.array([10, 40, 80]), Windowing("truncate", 20))
    assert (stats.long, stats.longest) == (2, 80)
    assert stats.seen == pytest.approx((1 + 0.5 + 0.25) / 3) and stats.seen_long == pytest.approx(0.375)
    assert "2 of 3 exceed the window of 20" in stats.line() and "--long chunk-mean" in stats.line()
    whole = LengthStats.of(np.array([10, 40, 80]), Windowing("chunk-mean", 20))
    assert whole.seen == 1.0 and "truncation would see 37.5%" in whole.line()


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="long=middle: 'middle' is not one of auto, truncate, head-tail, chunk-mean"):
        get_encoder("minilm", long_text="middle")  # refused before the model loads
    with pytest.raises(ValueError, match=r"long_text \(--long\) does not apply to encoder glove-6b-50d"):
        get_encoder("glove-6b-50d", long_text="truncate")


# ------------------------------------------------------------------------------------------ encoders
def test_strategy_and_window_enter_the_fingerprint(encoders):
    prints = {s: e.fingerprint for s, e in encoders.items()}
    assert prints["auto"] == prints["chunk-mean"]  # auto only changes long texts, exactly as chunk-mean
    assert len({prints["truncate"], prints["head-tail"], prints["chunk-mean"]}) == 3
    assert encoders["chunk-mean"].full_params()["long_text"] == {
        "strategy": "chunk-mean", "window": MAX_LENGTH - 2, "stride": encoders["chunk-mean"].windowing.stride}


def test_texts_within_the_window_get_the_same_vector_under_every_strategy(encoders, rt):
    short = [t for t in rt.texts[:200] if len(t.split()) <= 8][:20]
    assert len(short) >= 10 and encoders["truncate"].length_stats(short).long == 0
    ref = encoders["truncate"].encode(short)
    for strategy in ("head-tail", "chunk-mean"):
        np.testing.assert_allclose(encoders[strategy].encode(short), ref, atol=1e-5)


def test_auto_notices_long_texts_once(encoders, long_docs, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.encoders.transformer"):
        v = encoders["auto"].encode(long_docs.texts[:3])
    assert encoders["auto"].last_stats == {"truncated": 3}
    assert "3 of 3 texts exceed the max length of 24" in caplog.text and "chunk-mean" in caplog.text
    np.testing.assert_allclose(v, encoders["chunk-mean"].encode(long_docs.texts[:3]), atol=1e-5)


def test_chunk_mean_beats_truncation_on_long_reviews(encoders, long_docs):
    """Logistic regression on the vectors, train/test split by movie, several seeds."""
    stats = encoders["truncate"].length_stats(long_docs.texts)
    assert stats.long == len(long_docs) and stats.seen_long < 0.3  # truncation sees under 30% of each review
    accuracy = {}
    for strategy in ("truncate", "chunk-mean"):
        X, y = encoders[strategy].encode(long_docs.texts), long_docs.labels
        accuracy[strategy] = []
        for seed in range(SEEDS):
            train, test = next(GroupShuffleSplit(1, test_size=0.3, random_state=seed).split(X, y, long_docs.groups))
            head = LogisticRegression(C=1.0, max_iter=2000).fit(X[train], y[train])
            accuracy[strategy].append(head.score(X[test], y[test]))
    gain = np.array(accuracy["chunk-mean"]) - np.array(accuracy["truncate"])
    assert (gain > 0).sum() >= SEEDS - 1, accuracy
    assert gain.mean() >= 0.1, accuracy


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture
def long_csv(rt, long_docs, tmp_path):
    path = tmp_path / "long.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for text in rt.texts[:6]:
            w.writerow([text, "pos"])
        w.writerow([long_docs.texts[0], "neg"])
    return path


def test_embed_reports_long_texts_and_share_seen(long_csv, tmp_path, monkeypatch):
    from pipeline.store import stream

    reads = []
    monkeypatch.setattr(stream, "iter_text_batches", lambda *a, **k: reads.append(a) or stream.read_texts(
        a[0], k["text_col"], keep_empty=False, batch_rows=4))  # 2 batches of the 7 rows
    result = CliRunner().invoke(main, ["embed", str(long_csv), "--encoder", "minilm", "--max-length", "24",
                                       "--long", "truncate", "--backend", "torch", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert len(reads) == 2  # the language check's first texts, then the fill's pass, which counts the long texts
    assert re.search(r"long texts: [1-7] of 7 exceed the window of 22 word pieces \(longest \d+\); truncate sees "
                     r"\d+\.\d% of word pieces on average", result.output), result.output
    assert "--long chunk-mean would see them whole" in result.output


def test_data_show_counts_texts_over_an_encoders_limit(long_csv):
    result = CliRunner().invoke(main, ["data", "show", str(long_csv), "--encoder", "minilm"])
    assert result.exit_code == 0, result.output
    assert "minilm: long texts: 0 of 7 exceed the window of 254 word pieces" in result.output


def test_length_stats_of_batches_combine_to_those_of_all_texts():
    """embed counts long texts batch by batch on its fill pass: the combined counts are those of all texts."""
    counts = np.random.default_rng(0).integers(1, 600, 1000)
    windowing = Windowing("chunk-mean", 254)
    whole = LengthStats.of(counts, windowing)
    parts = LengthStats.combined(LengthStats.of(counts[i:i + 300], windowing) for i in range(0, 1000, 300))
    assert (parts.texts, parts.long, parts.longest) == (whole.texts, whole.long, whole.longest) and whole.long
    assert parts.line() == whole.line()
    np.testing.assert_allclose([parts.seen, parts.seen_long, parts.truncate_seen_long],
                               [whole.seen, whole.seen_long, whole.truncate_seen_long], rtol=1e-12)
