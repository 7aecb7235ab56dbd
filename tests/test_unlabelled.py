"""Learning from unlabelled texts: which texts are used (never the test split unless passed), self-trained
heads through fit and compare, and a compare whose self-training cannot see the hidden pool labels."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

import pipeline.study.compare
import pipeline.study.job
from pipeline.bundle.bundle import Bundle
from pipeline.cli import main
from pipeline.study.compare import Execution, ResultsLog, StudyPlan, run_compare
from pipeline.data.dataset import budget_indices, load, split
from pipeline.unlabelled.self_train import SelfTrainSettings, select_pseudo
from pipeline.data.unlabelled import for_budget, gather, read_unlabelled


@pytest.fixture(scope="module")
def reviews(tmp_path_factory, rt):
    """A real 800-review RT file (text, label, movie) and the dataset loaded from it."""
    idx = np.random.default_rng(1).choice(len(rt), 800, replace=False)
    path = write_reviews_csv(tmp_path_factory.mktemp("data") / "reviews.csv", rt, idx)
    return path, load(path, group_col="movie")


def test_default_unlabelled_set_is_the_rest_of_the_pool_and_never_the_test_split(reviews):
    _, ds = reviews
    pool, test = split(ds)
    train, test2, unl = for_budget(ds, 40, 0)
    assert test2.texts == test.texts
    assert not set(unl.texts) & set(test.texts)
    assert not set(unl.texts) & set(train.texts)
    assert set(unl.texts) | set(train.texts) == set(pool.texts)
    assert unl.record["transductive"] is False and unl.record["test_split_texts"] == 0
    assert len(for_budget(ds, None, 0)[2]) == 0  # the whole pool labelled: nothing left


def test_test_texts_are_used_only_when_passed_and_then_reported(reviews, tmp_path):
    path, ds = reviews
    pool, test = split(ds)
    passed = tmp_path / "test_texts.jsonl"  # a file of the test split's texts, with a label column that is not read
    passed.write_text("".join(json.dumps({"text": t, "label": "???"}) + "\n" for t in test.texts[:30]))
    extra = read_unlabelled([str(passed)])
    unl = gather(pool, budget_indices(pool, 40, 0), test, extra)
    assert unl.record["test_split_texts"] == 30 and unl.record["transductive"] is True
    assert unl.record["sources"][str(passed)] == 30


def test_unlabelled_sources_replace_the_rest_of_the_pool_unless_asked_for_both(reviews, tmp_path):
    _, ds = reviews
    pool, test = split(ds)
    idx = budget_indices(pool, 40, 0)
    extra = {"other-site": ["a phone that died in a week", "the battery lasts for days"]}
    assert gather(pool, idx, test, extra).texts == extra["other-site"]  # not drowned by the pool's rest
    both = gather(pool, idx, test, extra, pool_rest=True)
    assert both.texts[-2:] == extra["other-site"] and both.record["sources"]["pool"] == len(pool) - 40
    assert len(gather(pool, idx, test)) == len(pool) - 40  # no source: the pool's rest


def test_target_labels_never_reach_self_training(reviews, small_glove, tmp_path):
    """bench_unlabelled --target: flipping every target label flips the scores exactly (1 - accuracy) and
    changes no pseudo-label count, so the labels are read only to score."""
    from benchmarks.bench_unlabelled import parse_args, run_cell
    from benchmarks.targets import load_target

    _, ds = reviews
    pool, _ = split(ds)
    target = load_target("uci-yelp").subset(np.arange(300))
    flipped = dataclasses.replace(target, labels=1 - target.labels)
    args, method = parse_args(["--target", "uci-yelp"]), f"frozen+self-train@{small_glove}"
    cells = [run_cell(method, 60, 0, pool, t, {}, args, SelfTrainSettings(), str(tmp_path / "cache"))
             for t in (target, flipped)]
    assert set(cells[0]) == {f"frozen@{small_glove}", method}
    for name, row in cells[0].items():
        assert cells[1][name]["accuracy"] == pytest.approx(1 - row["accuracy"])
    assert cells[0][method]["pseudo_labels"] == cells[1][method]["pseudo_labels"] == 150  # no pool text among them


def test_pseudo_labels_can_keep_the_teachers_class_rates():
    p = np.concatenate([np.linspace(0.55, 0.99, 80), np.linspace(0.01, 0.45, 20)])  # the teacher: 80% positive
    idx, y = select_pseudo(p, SelfTrainSettings(fraction=0.5, balance="predicted"))
    assert (len(idx), y.sum()) == (50, 40)  # 80% of them positive, not forced to 50/50
    assert set(idx[y == 1]) == set(range(40, 80)) and set(idx[y == 0]) == set(range(80, 90))  # the surest of each
    idx, y = select_pseudo(p, SelfTrainSettings(fraction=0.5, balance="predicted"), cap=20, seed=0)
    assert (len(idx), y.sum()) == (20, 16)  # the cap keeps the proportions
    assert select_pseudo(p, SelfTrainSettings(fraction=0.5))[1].sum() == 40  # the default
    idx, y = select_pseudo(p, SelfTrainSettings(fraction=0.5, balance="equal"))
    assert y.sum() == len(y) - y.sum() == 25  # equal halves
    with pytest.raises(ValueError, match="balance"):
        SelfTrainSettings(balance="auto")


def test_equal_pseudo_labels_are_balanced_the_surest_and_never_none():
    p = np.array([0.99, 0.95, 0.92, 0.6, 0.4, 0.05, 0.55, 0.7])
    idx, y = select_pseudo(p, SelfTrainSettings(fraction=0.5, balance="equal"))
    assert idx.tolist() == [5, 4, 0, 1] and y.tolist() == [0, 0, 1, 1]  # the two surest of each class
    idx, y = select_pseudo(p, SelfTrainSettings(fraction=0.5, threshold=0.9, balance="equal"))
    assert idx.tolist() == [5, 0] and y.tolist() == [0, 1]  # one sure negative: one of each
    # a teacher that thinks every text positive still gives both classes: the least positive as negatives
    idx, y = select_pseudo(np.linspace(0.6, 0.99, 100), SelfTrainSettings(fraction=0.2, balance="equal"))
    assert idx.tolist() == list(range(10)) + list(range(99, 89, -1)) and y.sum() == 10
    # over the cap, half the cap of each class drawn from the surest fraction
    idx, y = select_pseudo(np.linspace(0, 1, 100), SelfTrainSettings(fraction=0.4, balance="equal"), cap=10, seed=3)
    assert len(idx) == 10 and y.sum() == 5 and set(idx[y == 1]) <= set(range(80, 100)) and set(idx[y == 0]) < set(range(20))
    assert len(select_pseudo(p, SelfTrainSettings(fraction=1.0, max_pseudo=2))[0]) == 2
    with pytest.raises(ValueError, match="threshold"):
        SelfTrainSettings(threshold=0.3)
    with pytest.raises(ValueError, match="fraction"):
        SelfTrainSettings(fraction=0)


def test_distillation_targets_are_the_labels_then_the_teachers_probabilities(reviews, tmp_path):
    from pipeline.finetune import finetune, make_recipe
    from pipeline.unlabelled.self_train import student_set

    _, ds = reviews
    train, _, unl = for_budget(ds, 20, 0)
    p_pos = np.linspace(0.01, 0.99, len(unl))
    idx, y = select_pseudo(p_pos, SelfTrainSettings(fraction=0.1))
    student, targets = student_set(train, unl.texts, idx, y, p_pos)
    assert student.texts == train.texts + [unl.texts[i] for i in idx]
    assert targets.tolist() == pytest.approx(list(train.labels) + list(p_pos[idx]))
    assert student.labels.tolist() == list(train.labels) + [int(p >= 0.5) for p in p_pos[idx]]
    assert student_set(train, unl.texts, idx, y, None)[1] is None  # --hard: the 0/1 labels only
    # soft targets are checked before any model loads
    with pytest.raises(ValueError, match="20 probabilities"):
        finetune(train, out=tmp_path / "x", targets=np.full(19, 0.5))
    with pytest.raises(ValueError, match="20 probabilities"):
        finetune(train, out=tmp_path / "x", targets=np.full(20, 1.5))
    with pytest.raises(ValueError, match="method 'head'"):
        finetune(train, out=tmp_path / "x", recipe=make_recipe("setfit"), targets=np.full(20, 0.5))


def test_fit_self_train_saves_a_bundle_that_predict_uses(reviews, small_glove, tmp_path):
    path, _ = reviews
    unlabelled = tmp_path / "more.csv"  # extra unlabelled texts; its label column holds junk that must not be read
    with open(unlabelled, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([[f"an extra review number {i}, quite good", "not-a-label"] for i in range(20)])
    env = {"REVIEW_TRANSFER_CACHE": str(tmp_path / "cache")}
    r = CliRunner().invoke(main, ["embed", path, "--encoder", small_glove, "--unlabelled", str(unlabelled)], env=env)
    assert r.exit_code == 0 and "820 texts" in r.output, r.output  # 800 reviews + 20 unlabelled texts
    r = CliRunner().invoke(main, ["fit", path, "--group-col", "movie", "--encoder", small_glove, "--budget", "60",
                                  "--self-train", "--threshold", "0.7", "--unlabelled", str(unlabelled),
                                  "--out", str(tmp_path / "m")], env=env)
    assert r.exit_code == 0, r.output
    assert "unlabelled:" in r.output and "20 from" in r.output
    (bundle_dir,) = (tmp_path / "m").iterdir()
    # a glove:FILE bundle resolves its vectors file only when the user names it (the trust policy)
    bundle = Bundle.load(bundle_dir, cache_dir=tmp_path / "cache", trust_encoder=True)
    record = bundle.manifest["self_train"]
    assert record["threshold"] == 0.7 and record["teacher"]["head"] == "logreg"
    assert record["rounds_run"][0]["pseudo_labels"] == 2 * record["rounds_run"][0]["positive"]
    assert bundle.manifest["unlabelled"]["transductive"] is False
    r = CliRunner().invoke(main, ["predict", str(bundle_dir), "A triumph.", "Dull.", "--encoder-path",
                                  small_glove.partition(":")[2]], env=env)
    assert r.exit_code == 0 and len(r.output.splitlines()) == 2, r.output
    r = CliRunner().invoke(main, ["fit", path, "--encoder", small_glove, "--unlabelled", str(unlabelled),
                                  "--out", str(tmp_path / "m2")], env=env)
    assert r.exit_code != 0 and "--self-train" in r.output


def test_compare_reports_a_test_set_passed_as_unlabelled_as_transductive(reviews, small_glove, tmp_path):
    path, _ = reviews
    other = tmp_path / "other.jsonl"  # another site, used both as the unlabelled texts and as a --test-set
    other.write_text("".join(json.dumps({"text": f"site review {i}: {'great' if i % 2 else 'awful'} phone",
                                         "label": "fresh" if i % 2 else "rotten", "movie": f"m{i}"}) + "\n"
                             for i in range(40)))
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["compare", path, "--group-col", "movie", "--encoder", small_glove, "--head", "logreg",
                                  "--budgets", "60", "--seeds", "1", "--self-train", "--unlabelled", str(other),
                                  "--test-set", str(other), "--out", str(out)],
                           env={"REVIEW_TRANSFER_CACHE": str(tmp_path / "cache")})
    assert r.exit_code == 0, r.output
    assert "transductive there" in r.output and "40 texts of other" in r.output
    assert "(transductive: 40 texts of other among the unlabelled)" in (out / "report.md").read_text().splitlines()[0]


def test_compare_self_training_cannot_read_the_hidden_pool_labels(reviews, small_glove, tmp_path, monkeypatch):
    """Flip the labels of every pool text outside the budget sample: a self-training cell that read them
    (as gold labels or to pick pseudo-labels) would change; it must give identical scores."""
    _, ds = reviews
    pool, _ = split(ds)
    fixed = budget_indices(pool, 60, 0)
    monkeypatch.setattr(pipeline.study.compare, "budget_indices", lambda p, n, seed: fixed)  # the same sample for both
    in_pool = np.isin(np.arange(len(ds)), [ds.texts.index(t) for t in pool.texts])
    hidden = np.flatnonzero(in_pool)[np.setdiff1d(np.arange(len(pool)), fixed)]
    # pool rows keep their order in ds, so rows of pool map to in_pool's rows in order
    flipped_labels = ds.labels.copy()
    flipped_labels[hidden] = 1 - flipped_labels[hidden]
    flipped = dataclasses.replace(ds, labels=flipped_labels)
    rows = {}
    for name, data in (("true", ds), ("flipped", flipped)):
        run_compare(data, StudyPlan(encoders=[small_glove], heads=["logreg"], budgets=[60], seeds=1,
                                    self_train=SelfTrainSettings(threshold=0.6)),
                    Execution(out=tmp_path / name, cache_dir=tmp_path / "cache", progress=False))
        rows[name] = {r["method"]: r for r in ResultsLog(tmp_path / name).rows()}
    method = f"{small_glove}+logreg+self-train[threshold=0.6]"
    assert rows["true"][method]["self_train"]["rounds_run"][0]["pseudo_labels"] > 0
    assert rows["true"][method]["metrics"] == rows["flipped"][method]["metrics"]
    assert rows["true"][method]["self_train"]["rounds_run"] == rows["flipped"][method]["self_train"]["rounds_run"]


def test_full_preset_self_trains_every_method_but_not_on_the_whole_pool(reviews, small_glove, tmp_path, monkeypatch):
    path, _ = reviews
    seen = {}

    def stop(job, echo=None):
        seen["plan"] = job.plan
        raise SystemExit(0)

    # stopped before the job picks backends: the preset's transformers would be exported and probed first
    monkeypatch.setattr(pipeline.study.job, "compare_source", stop)
    CliRunner().invoke(main, ["compare", path, "--preset", "full", "--out", str(tmp_path / "r"),
                              "--cache-dir", str(tmp_path / "cache")])
    assert seen["plan"].self_train == SelfTrainSettings() and list(seen["plan"].finetune) == ["head", "setfit"]
    monkeypatch.undo()
    # on the whole pool nothing is left unlabelled: no self-trained cell (it would only repeat its teacher)
    rows = run_compare(load(path, group_col="movie"),
                       StudyPlan(encoders=[small_glove], heads=["logreg"], budgets=[None], seeds=1,
                                 self_train=SelfTrainSettings()),
                       Execution(out=tmp_path / "all", cache_dir=tmp_path / "cache", progress=False))
    assert [r["method"] for r in rows] == [f"{small_glove}+logreg"]


def test_finetune_self_train_distils_into_a_bundle_evaluate_uses(reviews, tmp_path):
    """Teacher fine-tuned on 16 labels, pseudo-labels of the rest of the pool, student from the teacher's
    encoder (one epoch each: a small real run of the whole path)."""
    path, ds = reviews
    out = tmp_path / "distilled"
    env = {"REVIEW_TRANSFER_CACHE": str(tmp_path / "cache")}
    r = CliRunner().invoke(main, ["finetune", path, "--group-col", "movie", "--budget", "16", "--epochs", "1",
                                  "--max-length", "32", "--self-train", "--out", str(out)], env=env)
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "distilled.self-train").exists()  # work files removed
    bundle = Bundle.load(out, cache_dir=tmp_path / "cache")
    record = bundle.manifest["self_train"]
    assert record["teacher"]["method"] == "head" and record["student"]["from"] == "teacher"
    assert record["rounds_run"][0]["pseudo_labels"] == record["pseudo_cap"] == 2  # 16 labels x 1 epoch - 16, at least 2
    assert record["soft"] is True and bundle.manifest["finetune"]["soft_targets"] is True
    assert bundle.manifest["finetune"]["recipe"]["max_length"] == 32  # the student reads texts as its teacher
    assert bundle.manifest["train"]["size"] == 18 and bundle.manifest["unlabelled"]["test_split_texts"] == 0
    few = write_reviews_csv(tmp_path / "few.csv", ds, range(40))  # evaluate reads the bundle; 800 rows only take longer
    r = CliRunner().invoke(main, ["evaluate", str(out), few, "--json"], env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)["n"] == 40, r.output


def test_self_trained_student_keeps_the_teachers_prompt_prior():
    """With a prompt direction the student is pulled toward it as the teacher is (few labels, many pseudo-labels)."""
    from pipeline.heads.registry import FitOptions
    from pipeline.unlabelled.self_train import _refit_student, self_train_head

    rng = np.random.default_rng(0)
    w = rng.normal(size=32)
    u = w + rng.normal(size=32)
    u /= np.linalg.norm(u)
    X = rng.normal(size=(260, 32)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (X @ w > 0).astype(int)
    cosine = lambda est: float(est[-1].coef_[0] @ u / np.linalg.norm(est[-1].coef_[0]))  # noqa: E731
    params = {"C": 1.0}
    with_prior = _refit_student("logreg", params, X, y, FitOptions(prompt_direction=u))
    without = _refit_student("logreg", params, X, y, FitOptions())
    assert cosine(with_prior) > cosine(without) + 0.01
    students = [self_train_head("logreg", X[:12], y[:12], X[12:], options=options)[0].estimator
                for options in (FitOptions(prompt_direction=u), FitOptions())]
    assert cosine(students[0]) > cosine(students[1])


def test_a_transfer_side_student_keeps_the_teachers_mean_on_the_new_language():
    """English labels, unlabelled texts of another language (a column apart) and mostly negative: the other side's
    student would learn that balance as a bias of the language; it keeps the teacher's mean probability instead,
    and self-trains at the C that ``fit`` gives a transfer side."""
    from types import SimpleNamespace

    from pipeline.heads.routed import TRANSFER_C, other_head
    from pipeline.unlabelled.routed import self_train_routed
    from pipeline.unlabelled.self_train import self_train_head

    rng = np.random.default_rng(0)
    layout = SimpleNamespace(english=(0, 1), other=(2, 3, 4), flag=5)
    y = np.tile([0, 1], 40)
    X = np.zeros((80, 6))
    X[:, :2] = rng.normal(size=(80, 2)) + 2.0 * np.c_[2 * y - 1, 1 - 2 * y]
    X[:, 2:4] = rng.normal(size=(80, 2)) + 1.5 * np.c_[2 * y - 1, 1 - 2 * y]
    X[:, 4], X[:, 5] = 1.0, 1.0  # the language column: 1 for English
    y_new = (rng.random(120) < 0.25).astype(int)
    X_new = np.zeros((120, 6))
    X_new[:, 2:4] = rng.normal(size=(120, 2)) + 1.0 * np.c_[2 * y_new - 1, 1 - 2 * y_new]
    X_new[:, 4] = -1.0
    for rows in (X, X_new):
        for side in (slice(0, 2), slice(2, 5)):
            rows[:, side] /= np.linalg.norm(rows[:, side], axis=1, keepdims=True) + 1e-12
    fitted, record = self_train_routed("logreg", X, y, X_new, layout)
    other = record["other"]
    assert other["teacher"]["params"]["C"] == TRANSFER_C and "teacher_mean" not in record
    student = fitted.estimator.predict_proba(X_new)[:, 1].mean()
    assert abs(student - other["teacher_mean"]) < 1e-3 and other["rounds_run"][0]["intercept_shift"] != 0
    cols = list(layout.other)
    drifted, _ = self_train_head(other_head("logreg", X, layout), X[:, cols], y, X_new[:, cols])  # the same teacher
    assert drifted.estimator.predict_proba(X_new[:, cols])[:, 1].mean() < other["teacher_mean"] - 0.02


def test_unlabelled_texts_in_a_column_of_another_name(reviews, small_glove, tmp_path):
    path, _ = reviews  # labelled texts under 'text'; the site's own export names its text column 'tweet'
    unlabelled = tmp_path / "site.csv"
    with open(unlabelled, "w", newline="") as f:
        csv.writer(f).writerows([["tweet_id", "tweet"], *([f"t{i}", f"an extra review number {i}"] for i in range(20))])
    env = {"REVIEW_TRANSFER_CACHE": str(tmp_path / "cache")}
    args = ["fit", path, "--encoder", small_glove, "--budget", "60", "--self-train", "--unlabelled", str(unlabelled),
            "--out", str(tmp_path / "m")]
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code != 0 and "missing column 'text'" in r.output, r.output
    # the fix named is the --unlabelled file's own option, not --text-col, which would break the labelled file
    assert "The first row's longest text is in 'tweet': --unlabelled-text-col tweet." in r.output, r.output
    assert "Pass the right name with --unlabelled-text-col." in r.output and "--text-col tweet" not in r.output
    r = CliRunner().invoke(main, [*args, "--unlabelled-text-col", "twet"], env=env)  # a typo in the option itself
    assert r.exit_code != 0 and "Did you mean --unlabelled-text-col tweet?" in r.output, r.output
    r = CliRunner().invoke(main, [*args, "--unlabelled-text-col", "tweet"], env=env)
    assert r.exit_code == 0 and "20 from" in r.output, r.output
