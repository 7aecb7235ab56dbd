"""compare: resumable grid, paired budgets, one encode per text, and a real report (GloVe on RT rows)."""

from __future__ import annotations

from dataclasses import replace

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

import pipeline.encoders
from pipeline.cli import main
from pipeline.study.compare import RUN_FILE, Execution, ResultsLog, StudyPlan, check_run_identity, run_compare
from pipeline.data.dataset import DataError, budget_indices, load, parse_budgets, split
from pipeline.heads.prompts import DEFAULT as DEFAULT_PROMPTS
from pipeline.study.report import summarise, write_report

KOREAN = str(Path(__file__).parent / "data" / "korean_reviews.jsonl")
GRID = ["--encoder", "glove-6b-50d", "--head", "logreg", "--head", "knn", "--head", "rbf-svm",
        "--budgets", "16,32,64,128", "--seeds", "2", "--no-plot"]


@pytest.fixture(scope="module")
def rt_csv(tmp_path_factory, rt):
    """A real 1,500-review RT file (text, label, movie) so runs are quick."""
    idx = np.random.default_rng(0).choice(len(rt), 1500, replace=False)
    return write_reviews_csv(tmp_path_factory.mktemp("data") / "rt_small.csv", rt, idx)


def _metrics_by_cell(out) -> dict:
    return {(r["method"], r["budget"], r["seed"]): r["metrics"] for r in ResultsLog(out).rows()}


def _compare(*args, cache):
    env = {**os.environ, "REVIEW_TRANSFER_CACHE": str(cache)}
    return [sys.executable, "-m", "pipeline", "compare", *args], env


def test_parse_budgets():
    assert parse_budgets("128, 16,all,16") == [16, 128, None]
    with pytest.raises(DataError, match="'ten'"):
        parse_budgets("16,ten")


def test_results_log_ignores_and_cuts_a_partial_line(tmp_path):
    log = ResultsLog(tmp_path)
    log.append({"method": "m", "budget": "16", "seed": 0})
    with open(log.path, "a") as f:
        f.write('{"method": "m", "bud')  # a write cut short by a kill
    assert log.done() == {("m", "16", 0)}
    log.append({"method": "m", "budget": "16", "seed": 1})
    assert [r["seed"] for r in log.rows()] == [0, 1]
    assert log.path.read_text().count("\n") == 2


def test_killed_run_resumes_to_identical_results(rt_csv, tmp_path):
    """The uninterrupted and the resumed runs in this process, the killed one in its own (a real kill -9)."""
    cache = tmp_path / "cache"
    full, killed = tmp_path / "full", tmp_path / "killed"
    in_process = CliRunner(env={"REVIEW_TRANSFER_CACHE": str(cache)})
    done = in_process.invoke(main, ["compare", rt_csv, "--group-col", "movie", *GRID, "--out", str(full)])
    assert done.exit_code == 0, done.output
    total = len(ResultsLog(full).rows())
    assert total == 3 * 4 * 2

    cmd, env = _compare(rt_csv, "--group-col", "movie", *GRID, "--out", str(killed), cache=cache)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = ResultsLog(killed)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and (not log.path.exists() or len(log.rows()) < 3):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert 0 < len(log.rows()) < total, "the run should have been killed midway"
    resumed = in_process.invoke(main, cmd[3:])
    assert resumed.exit_code == 0, resumed.output
    rows = log.rows()
    assert len(rows) == total and len({(r["method"], r["budget"], r["seed"]) for r in rows}) == total
    assert _metrics_by_cell(killed) == _metrics_by_cell(full)


def test_more_seeds_computes_only_new_cells_and_encodes_each_text_once(rt_csv, tmp_path, monkeypatch):
    real_get_encoder = pipeline.encoders.get_encoder
    encoded: list[str] = []

    class Counting:
        """A real encoder that records every text it is asked to encode."""

        def __init__(self, enc):
            self._enc = enc

        def __getattr__(self, name):
            return getattr(self._enc, name)

        def encode(self, texts, **kwargs):
            encoded.extend(texts)
            return self._enc.encode(texts, **kwargs)

    monkeypatch.setattr(pipeline.encoders, "get_encoder", lambda spec, **kw: Counting(real_get_encoder(spec, **kw)))
    ds = load(rt_csv, group_col="movie")
    plan = StudyPlan(encoders=["glove-6b-50d"], heads=["logreg", "nb"], budgets=[16, 64], seeds=2)
    execution = Execution(out=tmp_path / "r", cache_dir=tmp_path / "cache", progress=False)
    first = run_compare(ds, plan, execution)
    assert len(first) == 2 * 2 * 2
    pool, test = split(ds)
    read = {pool.texts[i] for b in (16, 64) for s in (0, 1) for i in budget_indices(pool, b, s)}
    # what the cells read (their samples, the test split, the prompts of the linear heads' prompt prior), once
    assert read | set(test.texts) | set(DEFAULT_PROMPTS.texts) <= set(encoded) <= set(ds.texts) | set(DEFAULT_PROMPTS.texts)
    assert len(encoded) == len(set(encoded))

    before = ResultsLog(tmp_path / "r").path.read_text()
    rows = run_compare(ds, replace(plan, seeds=3), execution)
    assert len(encoded) == len(set(encoded)), "a warm cache must not encode again"
    assert {pool.texts[i] for b in (16, 64) for i in budget_indices(pool, b, 2)} <= set(encoded)
    assert ResultsLog(tmp_path / "r").path.read_text().startswith(before)
    assert sorted(r["seed"] for r in rows[len(first):]) == [2, 2, 2, 2]


def test_methods_share_the_same_sample_per_budget_and_seed(rt_csv, tmp_path):
    ds = load(rt_csv, group_col="movie")
    rows = run_compare(ds, StudyPlan(encoders=["glove-6b-50d"], heads=["logreg", "knn"], budgets=[32], seeds=2),
                       Execution(out=tmp_path / "r", cache_dir=tmp_path / "cache", progress=False))
    assert {r["n_train"] for r in rows} == {32}
    for r in rows:
        assert 0.4 < r["metrics"]["test"]["accuracy"] <= 1.0


def test_out_dir_refuses_other_data(rt_csv, tmp_path, rt):
    ds = load(rt_csv, group_col="movie")
    plan = StudyPlan(encoders=["glove-6b-50d"], budgets=[16], seeds=1)
    execution = Execution(out=tmp_path / "r", cache_dir=tmp_path / "cache", progress=False)
    run_compare(ds, plan, execution)
    with pytest.raises(DataError, match=r"holds results for other data \(source .* read with other rows or labels: "
                                        "a changed file, --positive/--negative"):
        run_compare(ds.subset(range(1000)), plan, execution)


def test_out_dir_refuses_cells_fitted_at_another_prompt_strength(rt_csv, tmp_path):
    ds = load(rt_csv, group_col="movie").subset(range(400))
    check_run_identity(tmp_path, ds, {}, prompts=DEFAULT_PROMPTS)
    check_run_identity(tmp_path, ds, {}, prompts=DEFAULT_PROMPTS)  # the same version resumes
    recorded = json.loads((tmp_path / RUN_FILE).read_text())
    del recorded["prompts"]["strength"]  # a directory written before the strength was recorded
    (tmp_path / RUN_FILE).write_text(json.dumps(recorded))
    with pytest.raises(DataError, match=r"prompt strength of an older version, not this version's min\("):
        check_run_identity(tmp_path, ds, {}, prompts=DEFAULT_PROMPTS)


def test_report_statistics_and_files(tmp_path, monkeypatch):
    rows = []
    for seed, (a, b) in enumerate([(0.70, 0.60), (0.72, 0.61), (0.74, 0.65)]):
        for method, acc in (("x+logreg", a), ("y+logreg", b)):
            rows.append({"method": method, "budget": "32", "n_train": 32, "seed": seed, "fit_seconds": 0.1,
                         "encode_seconds": 0.0, "metrics": {"test": {"accuracy": acc}}})
    summary = summarise(rows)
    entry = summary["tests"]["test"]["32"]
    assert entry["best"] == "x+logreg" and entry["runner_up"] == "y+logreg"
    d = entry["best_minus_runner_up"]
    assert d["mean"] == pytest.approx(np.mean([0.10, 0.11, 0.09]))
    assert d["low"] < d["mean"] < d["high"] and d["low"] > 0
    write_report(rows, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "**72.0 ± 2.0**" in text and "learning_curves.png" in text
    assert (tmp_path / "learning_curves.png").stat().st_size > 5000
    assert json.loads((tmp_path / "summary.json").read_text())["cells"] == 6
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    write_text = Path.write_text

    def full(path, text, **kwargs):  # a disk that fills while report.md is written: a write error has no file name
        if path.name.startswith("report.md"):
            write_text(path, text[:10], **kwargs)
            raise OSError(28, "No space left on device")
        return write_text(path, text, **kwargs)

    from pipeline.disk import DiskFullError

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskFullError, match=rf"no room on the disk of {tmp_path} .*the report could not be written.*"
                                            "the cells done are kept in results.jsonl"):
        write_report(rows, tmp_path)
    assert (tmp_path / "report.md").read_bytes() == before["report.md"] and set(before) == {f.name for f in tmp_path.iterdir()}


def test_a_routed_specs_pipe_does_not_split_the_reports_table_cells():
    """A routed spec (the default, ``E|O``) names a method with a ``|``: escaped in the Markdown tables, so each
    row keeps as many cells as its header."""
    from pipeline.study.report import markdown

    rows = [{"method": method, "budget": "32", "n_train": 32, "seed": seed, "fit_seconds": 0.1, "encode_seconds": 0.0,
             "metrics": {"test": {"accuracy": 0.7 + 0.01 * seed}}}
            for seed in range(2) for method in ("mpnet[layers=9-12]|e5-small-multilingual+logreg", "minilm+logreg")]
    table = [line for line in markdown(summarise(rows)).splitlines() if line.startswith("| labels")][0]
    assert "`mpnet[layers=9-12]\\|e5-small-multilingual+logreg`" in table
    assert len(re.split(r"(?<!\\)\|", table)) == 2 + 3  # | labels | A | B |: 3 cells between 4 pipes


def test_cli_compare_with_extra_test_sets(rt_csv, tmp_path, rt_split):
    """Each --test-set is scored under its own name; one whose file is called test.csv (the source's split's
    name) is reported as FOLDER-test, never in place of the source's test split."""
    _, test = rt_split
    other = write_reviews_csv(tmp_path / "other_site.csv", test, range(300))
    (tmp_path / "b").mkdir()
    named_test = write_reviews_csv(tmp_path / "b" / "test.csv", test, range(300, 400))
    out = tmp_path / "r"
    env = {"REVIEW_TRANSFER_CACHE": str(tmp_path / "cache")}
    result = CliRunner(env=env).invoke(main, [
        "compare", rt_csv, "--group-col", "movie", "--encoder", "glove-6b-50d", "--budgets", "16,64",
        "--seeds", "2", "--test-set", other, "--test-set", named_test, "--test-set", KOREAN, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Accuracy on `test`" in result.output and "Accuracy on `other_site`" in result.output
    assert f"--test-set {named_test}: reported as `b-test` (`test` names another set)" in result.output
    assert "runner-up" not in result.output  # one method: no pairing heading over nothing
    assert (out / "learning_curves.png").exists()
    metrics = ResultsLog(out).rows()[0]["metrics"]
    assert set(metrics) == {"test", "other_site", "b-test", "korean_reviews"}
    # Korean reviews against an English pool: the shift check would only see the language, so it says so instead
    assert metrics["other_site"]["domain_shift"]["auc"] is not None
    assert metrics["korean_reviews"]["domain_shift"]["auc"] is None
    assert metrics["korean_reviews"]["domain_shift"]["reason"].startswith("another language: 0% of its texts read as "
                                                                         "English, 100% of the pool's")
    assert "| `korean_reviews` | `glove-6b-50d` | - | another language: 0% of its texts" in result.output
    for name, labels in (("test", split(load(rt_csv, group_col="movie"))[1].labels), ("b-test", test.labels[300:400])):
        assert metrics[name]["majority_rate"] == pytest.approx(max(labels.mean(), 1 - labels.mean()))


def test_a_test_set_with_other_column_names_says_it_is_read_with_the_sources(tmp_path):
    from pipeline.study.job import load_test_set

    other = tmp_path / "site.csv"
    other.write_text("Review Text,Verdict\nGreat.,pos\nAwful.,neg\n", encoding="utf-8")
    for source, fix in (("mine.csv", "give it the same column names"), ("rt", "rt ignores those options, so give")):
        with pytest.raises(DataError, match=rf"^--test-set {re.escape(str(other))}: missing column 'text'.* A --test-set "
                                            rf"is read with SOURCE's column options: {fix}"):
            load_test_set(str(other), source, {"text_col": "text", "label_col": "label"})
    site = tmp_path / "zh.jsonl"  # another site's file in the default columns, beside a SOURCE read otherwise
    site.write_text('{"text": "质量很好", "label": "positive"}\n{"text": "太差了", "label": "negative"}\n', encoding="utf-8")
    said = []
    stars = {"text_col": "review", "label_col": "stars", "positive": "4,5", "negative": "1,2"}
    assert load_test_set(str(site), "stars.csv", stars, said.append).labels.tolist() == [1, 0]
    assert said == [f"--test-set {site}: read with its own columns 'text' and 'label' (SOURCE's options do not fit "
                    "it: missing column 'review'; columns present: ['label', 'text'])"]
    with pytest.raises(DataError, match=r"missing column 'review'; columns present: \['Review Text', 'Verdict'\]\. A "
                                        "--test-set is read with SOURCE's column options: give it the same column names"):
        load_test_set(str(other), "stars.csv", stars)


def test_cli_compare_chooses_on_a_validation_split_without_reading_the_test_split(rt_csv, tmp_path):
    from pipeline.data.dataset import validation_split

    out, cache = tmp_path / "r", tmp_path / "cache"
    result = CliRunner().invoke(main, [
        "compare", rt_csv, "--group-col", "movie", "--encoder", "glove-6b-50d", "--budgets", "16", "--seeds", "1",
        "--split", "validation", "--no-plot", "--out", str(out), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "Accuracy on `validation`" in result.output and "`test`" not in result.output
    (row,) = ResultsLog(out).rows()
    assert set(row["metrics"]) == {"validation"}
    pool, test = split(load(rt_csv, group_col="movie"))
    _, validation = validation_split(pool)
    assert 0.3 < row["metrics"]["validation"]["accuracy"] <= 1.0 and row["n_train"] == 16
    from pipeline.store.cache import Store, text_keys  # the test split's texts were never encoded

    (store,) = [Store(cache, p.stem) for p in cache.glob("*.h5")]
    assert store.missing(text_keys(test.texts), 50).all()
    assert not store.missing(text_keys(validation.texts), 50).any()


def test_cli_compare_trains_in_domain_word2vec_with_the_source_columns(rt_csv, tmp_path):
    renamed = tmp_path / "renamed.csv"  # the text under another column name: w2v-train must read it too
    renamed.write_text(Path(rt_csv).read_text(encoding="utf-8").replace("text,label,movie", "review,label,movie", 1),
                       encoding="utf-8")
    result = CliRunner().invoke(main, [
        "compare", str(renamed), "--text-col", "review", "--group-col", "movie", "--encoder",
        f"glove-6b-50d+w2v-train:{renamed}", "--budgets", "16", "--seeds", "1", "--no-plot", "--out", str(tmp_path / "r"),
        "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    (row,) = ResultsLog(tmp_path / "r").rows()
    assert row["method"] == f"glove-6b-50d+w2v-train:{renamed}+logreg" and row["n_train"] == 16


def test_finetune_of_word_vectors_alone_is_refused_before_any_work(rt_csv, tmp_path):
    ds = load(rt_csv, group_col="movie")
    with pytest.raises(ValueError, match="--finetune needs an encoder that can be fine-tuned"):
        run_compare(ds, StudyPlan(encoders=["glove-6b-50d"], heads=["logreg"], finetune=["head"], budgets=[16], seeds=1),
                    Execution(out=tmp_path / "r", cache_dir=tmp_path / "cache", progress=False))
    assert not (tmp_path / "cache").exists()


def test_finetune_cells_share_budgets_and_test_split(rt_csv, tmp_path):
    pytest.importorskip("torch")
    ds = load(rt_csv, group_col="movie").subset(np.arange(400))  # MiniLM encodes these 400 texts once: pool and test
    with pytest.warns(UserWarning, match="fine-tuning minilm only: glove-6b-50d cannot be fine-tuned"):
        plan = StudyPlan(encoders=["glove-6b-50d", "minilm"], heads=["logreg"], finetune=["head"],
                         finetune_options={"epochs": 1, "max_length": 32}, budgets=[16], seeds=1)
        rows = run_compare(ds, plan, Execution(out=tmp_path / "r", cache_dir=tmp_path / "cache", progress=False))
    assert sorted(r["method"] for r in rows) == ["glove-6b-50d+logreg", "minilm+finetune-head", "minilm+logreg"]
    rows = [r for r in rows if r["method"].startswith("minilm")]
    by_kind = {r["kind"]: r for r in rows}
    assert set(by_kind) == {"frozen", "finetune"}
    assert by_kind["finetune"]["method"] == "minilm+finetune-head"
    assert by_kind["finetune"]["n_train"] == by_kind["frozen"]["n_train"] == 16
    assert 0.3 < by_kind["finetune"]["metrics"]["test"]["accuracy"] <= 1.0
    assert not any((tmp_path / "r" / "finetune").glob("*/bundle")), "grid bundles are removed after scoring"


def test_cli_compare_warns_when_cells_score_under_a_test_sets_majority_rate(rt_csv, tmp_path, rt_split):
    """A test set that is 10% positive (RT test rows resampled): GloVe heads fitted on 16 balanced labels
    call far more than 10% of it positive, and the report says which cells score under its majority rate."""
    _, test = rt_split
    pos, neg = np.flatnonzero(test.labels == 1)[:30], np.flatnonzero(test.labels == 0)[:270]
    low = write_reviews_csv(tmp_path / "low_rate.csv", test, np.sort(np.concatenate([pos, neg])))
    out = tmp_path / "r"
    result = CliRunner(env={"REVIEW_TRANSFER_CACHE": str(tmp_path / "cache")}).invoke(main, [
        "compare", rt_csv, "--group-col", "movie", "--encoder", "glove-6b-50d", "--budgets", "16",
        "--seeds", "2", "--test-set", low, "--out", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    rows = ResultsLog(out).rows()
    under = [r for r in rows if r["metrics"]["low_rate"]["accuracy"] < 0.9]
    assert under and all(r["metrics"]["low_rate"]["majority_rate"] == pytest.approx(0.9) for r in rows)
    assert f"WARNING: {len(under)} cell(s) score under `low_rate`'s majority rate (90.0%" in result.output
    assert "Accuracy on `low_rate` (mean ± sd over seeds; majority rate 90.0)" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["under_majority"]["low_rate"]) == len(under)


def test_run_compare_refuses_fine_tuning_on_the_validation_split_before_any_work(tmp_path, rt):
    """From Python as from the CLI: fine-tuning cells score the test split, so a validation run with them stops
    with the one line the CLI gives, before a cache or results file is written."""
    from pipeline import OptionError

    plan = StudyPlan(encoders=["glove-6b-50d"], heads=["logreg"], finetune=["head"], budgets=[16], seeds=1,
                     split="validation")
    with pytest.raises(OptionError, match="--split validation scores frozen heads"):
        run_compare(rt, plan, Execution(out=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False))
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
