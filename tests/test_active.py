"""Query strategies (pipeline.active.strategies) and `suggest`, on real GloVe vectors of RT reviews."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_reviews_csv, write_star_sheet

from pipeline.active.choices import STRATEGIES
from pipeline.active.strategies import Oracle, nearest_distance, propose, simulate, unit_rows

BUDGETS = [16, 40, 64]


def _run(strategy, X, labels, seed=0):
    oracle = Oracle(labels)
    return [(b, rows.copy(), y.copy()) for b, rows, y in simulate(strategy, X, oracle, BUDGETS, k=8, seed=seed)]


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_strategies_never_read_hidden_labels(glove_xy, strategy):
    """Flip every label the strategy never queried: if it read any hidden label, its picks would change."""
    train, X, _, _ = glove_xy
    first = _run(strategy, X, train.labels)
    queried = first[-1][1]
    flipped = 1 - train.labels
    flipped[queried] = train.labels[queried]
    second = _run(strategy, X, flipped)
    for (b1, rows1, y1), (b2, rows2, y2) in zip(first, second):
        assert b1 == b2 and np.array_equal(rows1, rows2) and np.array_equal(y1, y2)
    assert [len(rows) for _, rows, _ in first] == BUDGETS
    assert np.array_equal(first[-1][2], train.labels[queried])  # the oracle revealed the true labels


def test_same_cold_start_for_every_strategy_of_a_seed(glove_xy):
    train, X, _, _ = glove_xy
    starts = {s: _run(s, X, train.labels, seed=3)[0][1][:8].tolist() for s in STRATEGIES}
    assert len({tuple(v) for v in starts.values()}) == 1
    assert _run("margin", X, train.labels, seed=4)[0][1][:8].tolist() != starts["margin"]


def test_oracle_reveals_only_queried_rows():
    labels = np.array([0, 1, 1, 0, 1])
    oracle = Oracle(labels)
    assert not any(isinstance(v, np.ndarray) for v in vars(oracle).values())  # nothing to read the labels from
    assert oracle.query([3, 1]).tolist() == [0, 1]
    assert oracle.labelled.tolist() == [3, 1] and oracle.labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="queried twice"):
        oracle.query([1])


def test_margin_picks_the_least_certain_and_diverse_avoids_labelled_duplicates(glove_xy):
    train, X, _, _ = glove_xy
    rng = np.random.default_rng(0)
    labelled = np.arange(40)
    picks = propose("margin", X, labelled, train.labels[labelled], 5, rng=rng, exclude=[40, 41])
    from pipeline.active.strategies import query_model

    p = query_model(X, labelled, train.labels[labelled]).predict_proba(X)[:, 1]
    free = np.setdiff1d(np.arange(len(X)), np.arange(42))
    expected = free[np.argsort(np.abs(p[free] - 0.5), kind="stable")[:5]]
    assert [s.index for s in picks] == expected.tolist()
    assert all(s.reason.startswith("uncertain: P(positive)") for s in picks)
    # 20 exact copies of labelled rows: at cosine distance 0, k-means++ never draws them
    Xd = np.vstack([X, X[:20]])
    picks = propose("diverse", Xd, labelled, train.labels[labelled], 60, rng=rng)
    assert not {s.index for s in picks} & set(range(len(X), len(Xd)))
    assert not {s.index for s in picks} & set(labelled.tolist())
    d = nearest_distance(unit_rows(Xd), labelled)
    assert np.allclose(d[len(X):], 0, atol=1e-5)


def test_hybrid_and_margin_fall_back_to_diverse_with_one_class(glove_xy):
    train, X, _, _ = glove_xy
    one_class = np.flatnonzero(train.labels == 1)[:5]
    picks = propose("hybrid", X, one_class, np.ones(5, int), 3, rng=np.random.default_rng(0))
    assert len(picks) == 3 and all("one class labelled so far" in s.reason and s.p_positive is None for s in picks)


def test_suggest_writes_k_rows_with_reasons(tmp_path, rt, small_glove):
    from pipeline.data.dataset import load

    source = write_reviews_csv(tmp_path / "reviews.csv", rt, range(400))
    labels = write_reviews_csv(tmp_path / "labels.csv", rt, range(390, 420))  # 10 inside SOURCE, 20 outside
    env = {**os.environ, "REVIEW_TRANSFER_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "to_label.csv"
    cmd = [sys.executable, "-m", "pipeline", "suggest", source, "--labels", labels, "--encoder", small_glove,
           "--k", "12", "--strategy", "hybrid", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "labels so far:" in done.stdout and "390 of 400 texts unlabelled" in done.stdout
    assert out.read_bytes().startswith(b"\xef\xbb\xbftext,label,")  # Excel reads it as UTF-8; the readers drop the mark
    rows = list(csv.DictReader(open(out, encoding="utf-8-sig")))
    assert len(rows) == 12 and load(str(out), require_labels=False).texts == [r["text"] for r in rows]
    assert not {r["text"] for r in rows} & set(rt.texts[390:420])
    assert {r["text"] for r in rows} <= set(rt.texts[:390])
    assert all(r["reason"].startswith("uncertain and typical") and r["label"] == "" for r in rows)
    assert all(r["guess"] in rt.label_names and 0 <= float(r["p_positive"]) <= 1 for r in rows)
    bad = subprocess.run(cmd[:-4] + ["--strategy", "smart"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "'smart' is not one of" in bad.stderr


def test_suggest_reads_every_text_of_a_partly_rated_sheet_and_takes_its_ratings_when_asked(tmp_path, rt, small_glove):
    """A sheet whose stars column is filled on 20 of 60 rows (one a 3): every text is a candidate, and with
    --take-labels the 19 rated ones are labels so far, never suggested; the sheet itself is never written."""
    from click.testing import CliRunner

    from pipeline.cli import main

    sheet = write_star_sheet(tmp_path / "shop.csv", rt, range(60), n_rated=20)
    before = Path(sheet).read_bytes()
    rated, unrated = set(rt.texts[1:20]), set(rt.texts[20:60])
    common = ["suggest", sheet, "--text-col", "review", "--label-col", "stars", "--positive", "4,5", "--negative",
              "1,2", "--encoder", small_glove, "--k", "30", "--out", tmp_path / "to_label.csv", "--cache-dir",
              tmp_path / "cache"]
    result = CliRunner().invoke(main, common)
    assert result.exit_code == 0, result.output
    assert "its column 'stars' already holds 19 labels" in result.output and "--take-labels" in result.output
    picked = {r["text"] for r in csv.DictReader(open(tmp_path / "to_label.csv", encoding="utf-8-sig"))}
    assert picked & unrated  # the rows not rated yet are candidates (they were dropped with the column partly filled)
    result = CliRunner().invoke(main, [*common, "--take-labels"])
    assert result.exit_code == 0, result.output
    positive = sum(rt.labels[1:20])
    assert f"took 19 labels from its column 'stars' ({19 - positive} negative, {positive} positive)" in result.output
    assert f"labels so far: {19 - positive} negative, {positive} positive" in result.output
    picked = {r["text"] for r in csv.DictReader(open(tmp_path / "to_label.csv", encoding="utf-8-sig"))}
    assert len(picked) == 30 and not picked & rated
    assert Path(sheet).read_bytes() == before


def test_suggest_carries_the_columns_named_by_keep_col_into_each_row(tmp_path, rt, small_glove):
    """--keep-col tweet_id: every suggested row holds its tweet's id before the text (a text posted twice: its first
    row's id); a column to_label.csv has of its own, or one SOURCE lacks, is refused before any work."""
    from click.testing import CliRunner

    from pipeline.cli import main

    sheet = tmp_path / "tweets.csv"
    with open(sheet, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["tweet_id", "tweet", "posted"])
        for i in range(40):
            w.writerow([f"t{i}", rt.texts[i], f"2026-12-{i % 28 + 1:02d}"])
        w.writerow(["t-repost", rt.texts[3], "2026-12-30"])
    common = ["suggest", str(sheet), "--text-col", "tweet", "--encoder", small_glove, "--k", "40", "--out",
              tmp_path / "to_label.csv", "--cache-dir", tmp_path / "cache"]
    refused = CliRunner().invoke(main, [*common, "--keep-col", "reason"])
    assert refused.exit_code == 1 and "--keep-col reason: to_label.csv has a 'reason' column of its own" in refused.output
    missing = CliRunner().invoke(main, [*common, "--keep-col", "user"])
    assert missing.exit_code == 1 and "--keep-col" in missing.output and "'user'" in missing.output
    assert not (tmp_path / "cache").exists()  # both refused before anything was encoded
    result = CliRunner().invoke(main, [*common, "--keep-col", "tweet_id", "--keep-col", "posted"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "to_label.csv", encoding="utf-8-sig")))
    assert list(rows[0]) == ["tweet_id", "posted", "text", "label", "guess", "p_positive", "reason"]
    assert len(rows) == 40 and {r["tweet_id"] for r in rows} == {f"t{i}" for i in range(40)}
    assert all(rt.texts[int(r["tweet_id"][1:])] == r["text"] for r in rows)


def test_compare_query_is_paired_resumable_and_reported(tmp_path, rt):
    from click.testing import CliRunner

    from pipeline.study.active_compare import QueryPlan, run_active_compare
    from pipeline.study.compare import Execution, StudyPlan
    from pipeline.cli import main
    from pipeline.study.compare import ResultsLog
    from pipeline.data.dataset import load
    from pipeline.study.report import write_report

    source = load(write_reviews_csv(tmp_path / "reviews.csv", rt, range(700)), group_col="movie")
    args = (StudyPlan(encoders=["glove-6b-50d"], heads=["logreg"], budgets=[16, 40], seeds=2),
            QueryPlan(["random", "margin"], k=8, refit="cv"),
            Execution(out=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False))
    rows = run_active_compare(source, *args)
    cells = {(r["method"], r["budget"], r["seed"]): r for r in rows}
    assert set(cells) == {(f"glove-6b-50d+logreg/{q}", b, s) for q in ("random", "margin") for b in ("16", "40")
                          for s in (0, 1)}
    assert all(cells[("glove-6b-50d+logreg/random", b, s)]["positive_share"] == 0.5 for b in ("16", "40") for s in (0, 1))
    # a killed run: drop the last cells, rerun, get the same numbers back and nothing twice
    log = ResultsLog(tmp_path / "out")
    log.path.write_text("".join(line + "\n" for line in log.path.read_text().splitlines()[:-3]))
    again = {(r["method"], r["budget"], r["seed"]): r["metrics"] for r in run_active_compare(source, *args)}
    assert len(ResultsLog(tmp_path / "out").rows()) == 8
    assert again == {k: r["metrics"] for k, r in cells.items()}
    summary = write_report(log.rows(), tmp_path / "out", with_plot=False)
    assert set(summary["active_vs_random"]["test"]["40"]) == {"glove-6b-50d+logreg/margin"}
    assert summary["active_vs_random"]["test"]["40"]["glove-6b-50d+logreg/margin"]["pairs"] == 2
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Active learning vs balanced random" in report and "`glove-6b-50d+logreg/margin`" in report
    bad = CliRunner().invoke(main, ["compare", "rt", "--encoder", "glove-6b-50d", "--query", "margin", "--finetune", "head"])
    assert bad.exit_code == 2 and "--query runs frozen heads locally" in bad.output
    bad = CliRunner().invoke(main, ["compare", "rt", "--encoder", "glove-6b-50d", "--query", "margin", "--budgets", "32,all"])
    assert bad.exit_code == 1 and "--query needs label counts" in bad.output


def test_labels_so_far_may_hold_one_class(tmp_path):
    from pipeline.data.dataset import DataError, load, read_labels

    assert read_labels(tmp_path / "missing.jsonl") is None
    one = tmp_path / "one.jsonl"
    one.write_text('{"text": "Great.", "label": "positive"}\n{"text": "Superb.", "label": "positive"}\n', encoding="utf-8")
    ds = read_labels(one)
    assert ds.texts == ["Great.", "Superb."] and ds.labels.tolist() == [1, 1] and ds.label_names == ("negative", "positive")
    fresh = tmp_path / "fresh.csv"
    fresh.write_text("text,label\nA joy.,fresh\n", encoding="utf-8")
    assert read_labels(fresh).label_names == ("negative", "fresh")
    odd = tmp_path / "odd.csv"
    odd.write_text("text,label\nA joy.,meh\n", encoding="utf-8")
    with pytest.raises(DataError, match="every label so far is 'meh'"):
        read_labels(odd)
    both = tmp_path / "both.csv"
    both.write_text("text,label\nA joy.,fresh\nA bore.,rotten\n", encoding="utf-8")
    assert read_labels(both).labels.tolist() == load(str(both)).labels.tolist() == [1, 0]
    # a site's own names, as a spreadsheet's filled-in to_label.csv holds them: --positive names the positive one
    site = tmp_path / "site.csv"
    site.write_text("text,label\nCassé.,non\nNul.,non\n", encoding="utf-8")
    with pytest.raises(DataError, match="every label so far is 'non'.*name the positive value with --positive"):
        read_labels(site)
    ds = read_labels(site, positive="oui")
    assert ds.labels.tolist() == [0, 0] and ds.label_names == ("non", "oui")
    site.write_text("text,label\nCassé.,non\nParfait.,oui\n", encoding="utf-8")
    assert read_labels(site, positive="oui").labels.tolist() == [0, 1]


def test_typicality_favours_texts_like_many_others(glove_xy):
    from pipeline.active.strategies import density, typicality

    _, X, _, _ = glove_xy
    U = unit_rows(X)
    outlier = unit_rows(np.random.default_rng(0).normal(size=(1, X.shape[1])))
    Uo = np.vstack([U, outlier])
    d = density(Uo)
    assert d[-1] < np.percentile(d[:-1], 1)  # a random direction is like none of the reviews
    assert np.allclose(density(U[:50]), [np.sort(U[i] @ U[:50].T)[-21:-1].mean() for i in range(50)], atol=1e-5)
    # far from everything, the outlier has the largest k-means++ weight; typicality cuts it below a tenth of a review's
    t = typicality(Uo)
    assert t[-1] < 0.1 * np.median(t[:-1])
    dist = nearest_distance(Uo, np.arange(40))
    assert dist[-1] == dist.max()


def test_validation_split_holds_whole_movies_out_of_the_pool(rt_split):
    from pipeline.data.dataset import validation_split

    pool, test = rt_split
    train, val = validation_split(pool)
    assert len(train) + len(val) == len(pool) and 0.1 < len(val) / len(pool) < 0.3
    assert not set(train.groups) & set(val.groups)  # no movie on both sides
    assert not set(val.texts) & set(test.texts) and not set(val.groups) & set(test.groups)
    assert validation_split(pool)[1].texts == val.texts  # deterministic


def test_compare_query_on_validation_never_reads_the_test_split(tmp_path, rt):
    from click.testing import CliRunner

    from pipeline.active.strategies import QuerySettings
    from pipeline.study.active_compare import QueryPlan, run_active_compare
    from pipeline.study.compare import Execution, StudyPlan
    from pipeline.cli import main
    from pipeline.data.dataset import load, split, validation_split

    source = load(write_reviews_csv(tmp_path / "reviews.csv", rt, range(900)), group_col="movie")
    settings = QuerySettings(typical_power=2.0, cold="typiclust", cold_size=16)
    rows = run_active_compare(source, StudyPlan(encoders=["glove-6b-50d"], heads=["logreg"], budgets=[16, 40], seeds=2),
                              QueryPlan(["random", "typical-margin"], k=4, settings=settings, split_name="validation"),
                              Execution(out=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False))
    assert {r["method"] for r in rows} == {
        "glove-6b-50d+logreg[refit=default]/random",
        "glove-6b-50d+logreg[refit=default]/typical-margin[typical_power=2.0,cold=typiclust,cold_size=16,batch=4]"}
    assert all(set(r["metrics"]) == {"validation"} for r in rows)
    # the test split's texts were never even encoded: the cache holds exactly the pool's
    from pipeline.store.cache import EmbeddingCache
    from pipeline.encoders import get_encoder

    pool, test = split(source)
    assert len(test) > 0 and len(validation_split(pool)[1]) > 0
    store = EmbeddingCache(tmp_path / "cache").store(get_encoder("glove-6b-50d").fingerprint)
    assert store.summary()["rows"] == len(pool)
    bad = CliRunner().invoke(main, ["compare", "rt", "--encoder", "minilm", "--finetune", "head", "--split", "validation"])
    assert bad.exit_code == 2 and "--split validation scores frozen heads" in bad.output


def test_refit_default_fits_every_sample_with_the_head_defaults_random_included(tmp_path, rt):
    """The default refit (chosen on validation): no CV search, random's samples included; plain names
    (``refit="cv"``) are tested above."""
    from pipeline.study.active_compare import QueryPlan, run_active_compare
    from pipeline.study.compare import Execution, StudyPlan
    from pipeline.data.dataset import load
    from pipeline.heads.registry import get_head
    from pipeline.study.report import summarise

    source = load(write_reviews_csv(tmp_path / "reviews.csv", rt, range(700)), group_col="movie")
    rows = run_active_compare(source, StudyPlan(encoders=["glove-6b-50d"], heads=["logreg"], budgets=[16, 40], seeds=2),
                              QueryPlan(["random", "margin"]),
                              Execution(out=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False))
    assert {r["method"] for r in rows} == {"glove-6b-50d+logreg[refit=default]/random",
                                            "glove-6b-50d+logreg[refit=default]/margin"}
    # the default C=1, rescaled to the spread of each sample's L2-normalised GloVe rows (about 0.17: C about 4.8)
    assert all(set(r["params"]) == {"C"} and 2 < r["params"]["C"] / get_head("logreg").default["C"] < 10 for r in rows)
    paired = summarise(rows)["active_vs_random"]["test"]["40"]
    assert set(paired) == {"glove-6b-50d+logreg[refit=default]/margin"} and paired[next(iter(paired))]["pairs"] == 2
    with pytest.raises(Exception, match="unknown refit 'best'"):
        run_active_compare(source, StudyPlan(encoders=["glove-6b-50d"], heads=["logreg"], budgets=[16], seeds=1),
                           QueryPlan(["margin"], refit="best"), Execution(out=tmp_path / "out2"))


def test_typical_margin_keeps_classes_balanced_and_typiclust_starts_cold(glove_xy):
    from pipeline.active.strategies import QuerySettings, query_model

    train, X, _, _ = glove_xy
    labelled = np.concatenate([np.flatnonzero(train.labels == 1)[:30], np.flatnonzero(train.labels == 0)[:10]])
    y = train.labels[labelled]
    picks = propose("typical-margin", X, labelled, y, 10, rng=np.random.default_rng(0))
    p = query_model(X, labelled, y).predict_proba(X)[:, 1]
    assert len(picks) == 10 and all(p[s.index] < 0.5 for s in picks)  # 30 positives vs 10: negatives are owed
    assert all(s.reason.startswith("uncertain, typical and spread") for s in picks)
    free = np.setdiff1d(np.arange(len(X)), labelled)
    unbalanced = propose("typical-margin", X, labelled, y, 40, rng=np.random.default_rng(0),
                         settings=QuerySettings(balance=False))
    assert {s.index for s in unbalanced} <= set(free.tolist())
    cold = propose("diverse", X, [], [], 6, rng=np.random.default_rng(0), settings=QuerySettings(cold="typiclust"))
    assert len({s.index for s in cold}) == 6 and all("the most typical text of a cluster" in s.reason for s in cold)
    with pytest.raises(Exception, match="unknown cold start"):
        QuerySettings(cold="smart")


def test_labelling_a_file_with_no_english_reads_it_with_the_routed_specs_other_side_alone(tmp_path):
    """As ``fit`` does: an all-Korean file is not probed or encoded with the English side (minilm here, unexported)."""
    from pipeline.active.labelling import labelling_encoder

    texts = [json.loads(line)["text"] for line in (Path(__file__).parent / "data" / "korean_reviews.jsonl").open()]
    encoder, lines = labelling_encoder("minilm|glove-6b-50d", texts, tmp_path, {})
    assert encoder.spec == "glove-6b-50d" and "none of the texts reads as English" in lines[0]
    assert not (tmp_path / "exports").exists()
