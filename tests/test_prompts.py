"""The prompt prior (pipeline.heads.prompts): prompt files, the folded stretch, and what it does on real reviews."""

from __future__ import annotations

from dataclasses import replace

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from pipeline import OptionError
from pipeline.heads import prompts
from pipeline.bundle.bundle import Bundle
from pipeline.cli import main
from pipeline.study.compare import Execution, StudyPlan, run_compare
from pipeline.data.dataset import DataError, load, sample_budget
from pipeline.encoders import get_encoder
from pipeline.heads.registry import HEADS, FitOptions, fit_head


def test_prompt_files_are_read_and_bad_lines_named(tmp_path):
    good = tmp_path / "phones.txt"
    good.write_text("# phones\n+ The battery lasts all day.\n\n- It broke after a week.\n-   Returned it.\n",
                    encoding="utf-8")
    read = prompts.resolve_prompts(str(good))
    assert read.positive == ("The battery lasts all day.",)
    assert read.negative == ("It broke after a week.", "Returned it.")
    assert read.record()["source"] == str(good)
    assert prompts.resolve_prompts("default") is prompts.DEFAULT and prompts.resolve_prompts("none") is None

    bad = tmp_path / "bad.txt"
    bad.write_text("+ Great.\nTerrible.\n", encoding="utf-8")
    with pytest.raises(OptionError, match=r"bad.txt, line 2: 'Terrible.' is not a prompt; start it with '\+ '"):
        prompts.read_prompts(bad)
    one_sided = tmp_path / "one_sided.txt"
    one_sided.write_text("+ Great.\n+ Loved it.\n", encoding="utf-8")
    with pytest.raises(OptionError, match="has 2 positive and 0 negative prompts"):
        prompts.read_prompts(one_sided)
    with pytest.raises(OptionError, match="no such file"):
        prompts.resolve_prompts(str(tmp_path / "missing.txt"))


def test_the_prompts_strength_falls_as_labels_accumulate():
    knee = int(prompts.KAPPA_LABELS / prompts.KAPPA_MAX)  # the most labels that still get the full strength
    strengths = [prompts.kappa(n) for n in (8, knee, 100, 1000, 10_000)]
    assert strengths[0] == strengths[1] == prompts.KAPPA_MAX
    assert strengths[1:] == sorted(strengths[1:], reverse=True) and strengths[-1] < strengths[1] / 100


@pytest.mark.parametrize("head", ["logreg", "linear-svm", "ridge"])
@pytest.mark.parametrize("rows", ["pooled", "unit"])
def test_the_folded_head_decides_as_the_head_fitted_on_stretched_rows(glove_xy, head, rows):
    """A head fitted with the prior is the plain model: on raw rows it gives the decisions of the same
    classifier fitted on the normalised, stretched rows (GloVe rows go through the head's Normalizer)."""
    train, X, test, X_test = glove_xy
    if rows == "unit":
        X, X_test = normalize(X), normalize(X_test)
    u = prompts.direction(get_encoder("glove-6b-50d").encode(prompts.DEFAULT.texts), len(prompts.POSITIVE))
    fitted = fit_head(head, X, train.labels, FitOptions(groups=train.groups, seed=0, prompt_direction=u))
    assert "prompt prior" in fitted.search
    assert HEADS[head].prompted

    gamma = prompts.stretch_factor(normalize(X), u, len(X))
    stretched = prompts.stretch(normalize(X).astype(np.float32), u, gamma)
    again = HEADS[head].factory(0, len(X)).set_params(**fitted.params).fit(stretched, train.labels)
    expected = again.decision_function(prompts.stretch(normalize(X_test).astype(np.float32), u, gamma))
    np.testing.assert_allclose(fitted.estimator.decision_function(X_test), expected, rtol=1e-3, atol=1e-3)


def test_labels_that_run_against_the_prompts_get_the_plain_head(glove_xy):
    """The stretch makes weight along the prompts cheap in either sign: a sample whose labels point the
    other way (here every label flipped) would be pulled the wrong way harder, so it is fitted without it."""
    train, X, test, X_test = glove_xy
    u = prompts.direction(get_encoder("glove-6b-50d").encode(prompts.DEFAULT.texts), len(prompts.POSITIVE))
    flipped = 1 - train.labels
    fitted = fit_head("logreg", X, flipped, FitOptions(groups=train.groups, seed=0, prompt_direction=u))
    plain = fit_head("logreg", X, flipped, FitOptions(groups=train.groups, seed=0))
    assert "prompt prior dropped: these labels run against the prompts" in fitted.search
    np.testing.assert_allclose(fitted.estimator.decision_function(X_test), plain.estimator.decision_function(X_test))
    assert prompts.agrees(fit_head("logreg", X, train.labels, FitOptions(seed=0, prompt_direction=u)).estimator[-1], u)


def test_heads_without_a_linear_model_ignore_the_prompts(glove_xy):
    train, X, test, X_test = glove_xy
    u = prompts.direction(get_encoder("glove-6b-50d").encode(prompts.DEFAULT.texts), len(prompts.POSITIVE))
    plain, prompted = (fit_head("nb", X, train.labels, FitOptions(seed=0, prompt_direction=d)) for d in (None, u))
    np.testing.assert_array_equal(plain.estimator.predict_proba(X_test), prompted.estimator.predict_proba(X_test))


def test_prompts_lift_logistic_regression_on_32_real_labels(rt_split, minilm_cached):
    """MiniLM on 32 RT labels, 3 samples, scored on 600 held-out reviews: the prompt prior must gain on
    average (on the pool's validation split it gained 6.9 ± 0.7 points over 10 samples)."""
    pool, test = rt_split
    test = test.subset(np.arange(600))
    encoder, cache = minilm_cached
    u = prompts.direction(cache.vectors(encoder, prompts.DEFAULT.texts), len(prompts.POSITIVE))
    X_test = cache.vectors(encoder, test.texts)
    gains = []
    for seed in range(3):
        train = sample_budget(pool, 32, seed)
        X = cache.vectors(encoder, train.texts)
        accuracy = [float((fit_head("logreg", X, train.labels,
                                    FitOptions(groups=train.groups, seed=seed, prompt_direction=d))
                           .estimator.predict(X_test) == test.labels).mean()) for d in (None, u)]
        gains.append(accuracy[1] - accuracy[0])
    assert np.mean(gains) > 0.02, gains
    plain = LogisticRegression().fit(X, train.labels)  # the folded head is as plain as this one
    assert set(vars(plain)) <= set(vars(fit_head("logreg", X, train.labels,
                                                 FitOptions(prompt_direction=u)).estimator[-1]))


def test_fit_records_the_prompts_and_saves_a_plain_head(rt, tmp_path):
    csv = write_reviews_csv(tmp_path / "reviews.csv", rt, np.arange(0, 4000, 10))
    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text("+ A triumph.\n- A mess.\n", encoding="utf-8")
    runner, cache = CliRunner(), tmp_path / "cache"
    for name, value in (("own", prompt_file), ("off", "none")):
        result = runner.invoke(main, ["fit", csv, "--encoder", "glove-6b-50d", "--budget", "64", "--prompts", value,
                                      "--cache-dir", cache, "--out", tmp_path / name])
        assert result.exit_code == 0, result.output
    [own], [off] = (list((tmp_path / name).iterdir()) for name in ("own", "off"))
    manifest = json.loads((own / "manifest.json").read_text())
    assert manifest["prompts"] == {"source": str(prompt_file), "positive": ["A triumph."], "negative": ["A mess."]}
    assert "prompt prior" in manifest["head"]["search"]
    assert "prompts" not in json.loads((off / "manifest.json").read_text())
    texts = ["A moving, beautiful film.", "Dull and far too long.", "It was fine."]
    loaded = [Bundle.load(path, cache_dir=cache) for path in (own, off)]
    assert [type(b.estimator[-1]) for b in loaded] == [LogisticRegression, LogisticRegression]
    assert not np.allclose(*(b.predict_proba(texts) for b in loaded))  # the prompts moved the head

    result = runner.invoke(main, ["fit", csv, "--encoder", "glove-6b-50d", "--prompts", tmp_path / "nope.txt",
                                  "--cache-dir", cache, "--out", tmp_path / "never"])
    assert result.exit_code != 0 and "nope.txt: no such file" in result.output
    assert not (tmp_path / "never").exists()


def test_compare_refuses_to_mix_runs_with_other_prompts(rt, tmp_path):
    ds = load(write_reviews_csv(tmp_path / "reviews.csv", rt, np.arange(0, 8000, 8)), group_col="movie")
    plan = StudyPlan(encoders=["glove-6b-50d"], budgets=[16], seeds=1)
    execution = Execution(out=tmp_path / "r", cache_dir=tmp_path / "cache", progress=False)
    run_compare(ds, plan, execution)
    with pytest.raises(DataError, match="--prompts default"):
        run_compare(ds, replace(plan, prompts=None), execution)


def test_a_tampered_prompts_section_is_refused_by_name():
    """The manifest's prompts are only a record, but like every section they must follow the schema: an
    edited one is refused naming the field (and, through the digest, any edit at all is)."""
    from pipeline.bundle.manifest import ManifestError, check_prompts

    check_prompts(prompts.DEFAULT.record(), "manifest.json")
    for field, value in (("positive", "I loved it."), ("negative", []), ("source", 3)):
        with pytest.raises(ManifestError, match=f"prompts.{field}"):
            check_prompts({**prompts.DEFAULT.record(), field: value}, "manifest.json")
    with pytest.raises(ManifestError, match="unknown field"):
        check_prompts({**prompts.DEFAULT.record(), "code": "import os"}, "manifest.json")


def test_word_vectors_trained_on_korean_fit_without_the_default_english_prompts(tmp_path):
    """Word2Vec trained on Korean reviews knows no word of the English prompts (only their '.' and ','), so
    the default prompts give no direction: fit says so in one line and fits without the prior; a prompts file
    of the user's that gives none is still refused."""
    korean = str(Path(__file__).parent / "data" / "korean_reviews.jsonl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["fit", korean, "--encoder", f"w2v-train:{korean}", "--head", "logreg",
                                           "--cache-dir", tmp_path / "cache", "--out", tmp_path / "models"])
    assert result.exit_code == 0, result.output
    said = [str(w.message) for w in caught]
    assert any("under the default English prompts" in m and "--prompts FILE" in m for m in said), said
    assert not any("10 of 10 texts" in m for m in said)  # no language warning about the prompts themselves
    [bundle] = (tmp_path / "models").iterdir()
    assert "prompts" not in json.loads((bundle / "manifest.json").read_text())
    with pytest.raises(prompts.PromptsUnreadable, match="same mean vector"):
        prompts.direction(np.ones((2, 3), dtype=np.float32), 1)
