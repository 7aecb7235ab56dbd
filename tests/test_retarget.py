"""retarget: a GloVe bundle fitted on RT, carried to a real 14%-positive site (tweet-like texts) with a few of
its labels, through the CLI; the head math on real vectors; evaluate's and compare's majority-rate warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.bundle.bundle import Bundle
from pipeline.cli import main
from pipeline.data.dataset import load
from pipeline.fit.retarget import (STRENGTH, STRENGTHS, RetargetError, RetargetSettings, SourceHead, choose_strength, draw_labels,
                                   fit_offset, fit_recentred, fit_retargeted, target_prior)
from pipeline.fit.retarget_rate import (MIN_SEPARATION, MIN_SEPARATION_UNLABELLED, MIN_UNLABELLED, labels_interval,
                                        unlabelled_rate)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def low_rate(tmp_path_factory):
    """(path, dataset): vader-tweets resampled to 14% positive (about 1,230 texts), as a JSONL file."""
    from benchmarks.targets import load_target, resample

    ds = resample(load_target("vader-tweets"), 0.14, seed=0)
    path = tmp_path_factory.mktemp("target") / "tweets14.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": ["negative", "positive"][int(y)]}) + "\n"
                            for t, y in zip(ds.texts, ds.labels)), encoding="utf-8")
    return path, load(str(path))


@pytest.fixture(scope="module")
def retargeted(glove_bundle, low_rate, tmp_path_factory):
    """(result, new bundle dir): `retarget` with 32 labels and the target's other texts (self-trained on them
    by default)."""
    bundle, cache = glove_bundle
    path, _ = low_rate
    out = tmp_path_factory.mktemp("retargeted") / "tweets"
    result = invoke("retarget", bundle, path, "--labels", 32, "--unlabelled", path, "--out", out, "--cache-dir", cache)
    return result, out


def test_retarget_writes_a_bundle_that_records_the_adaptation(glove_bundle, low_rate, retargeted):
    result, out = retargeted
    assert result.exit_code == 0, result.output
    source_dir, cache = glove_bundle
    source = json.loads((source_dir / "manifest.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["retarget"]
    assert record["source"]["digest"] == source["digest"] and record["source"]["train"]["size"] == 1000
    assert record["labels"] == manifest["train"]["size"] == 32 and record["sample"] == "drawn"
    assert 1 <= record["positive"] <= 31 and record["prior"]["from"] == "labels"
    assert record["prior"]["value"] == pytest.approx((record["positive"] + 1) / 34, abs=1e-4)
    assert record["unlabelled"] == len(low_rate[1]) - 32 and record["self_train"]["rounds_run"][0]["pseudo_labels"]
    assert manifest["metrics"]["test_size"] == len(low_rate[1]) - 32  # the rows not labelled score it
    assert manifest["encoder"] == source["encoder"] and manifest["head"]["name"] == "logreg"
    assert manifest["prior"]["train"] == record["prior"]["value"]
    assert f"retarget: 32 target labels ({record['positive']} positive)" in result.output
    # the GloVe head ranks this site too loosely (ROC-AUC about 0.76) to read the rate from it: it says so
    assert set(record["prior"]["ranking"]) == {"rate", "separation", "labels_auc"} and "was not used" in result.output
    assert f"held-out {len(low_rate[1]) - 32:,} rows" in result.output


def test_retargeted_bundle_is_centred_nearer_the_target_rate_than_the_source(glove_bundle, low_rate, retargeted):
    """The source, fitted on balanced RT labels, gives these tweets a mean probability of positive far from
    their 14%; the retargeted head, centred on the target's rate, comes nearer; it loads and predicts like
    any bundle."""
    _, out = retargeted
    source_dir, cache = glove_bundle
    _, ds = low_rate
    source, new = (Bundle.load(p, cache_dir=cache) for p in (source_dir, out))
    means = [float(b.predict_proba(ds.texts)[:, 1].mean()) for b in (source, new)]
    true = float(ds.labels.mean())
    assert abs(means[1] - true) < abs(means[0] - true)
    assert new.predict_proba(ds.texts[:5]) == pytest.approx(new.head.predict_proba(new.embed(ds.texts[:5])))


def test_evaluate_reports_balanced_accuracy_and_majority_rate(glove_bundle, low_rate, retargeted):
    _, out = retargeted
    _, cache = glove_bundle
    path, ds = low_rate
    result = invoke("evaluate", out, path, "--json", "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["majority_rate"] == pytest.approx(1 - ds.labels.mean())
    (tn, fp), (fn, tp) = scores["confusion_matrix"]
    assert scores["balanced_accuracy"] == pytest.approx((tn / (tn + fp) + tp / (tp + fn)) / 2)
    text = invoke("evaluate", out, path, "--cache-dir", cache).output
    assert "balanced " in text and "majority " in text
    # its shift sample is of the target's texts: the check finds them alike, so --adapt-prior may weigh in
    adapted = json.loads(invoke("evaluate", out, path, "--adapt-prior", "--json", "--cache-dir", cache).stdout)
    assert adapted["domain_shift"]["warning"] is False and "unlike the training texts" not in adapted["prior"]["line"]


def test_evaluate_warns_under_the_majority_rate(glove_bundle, low_rate, tmp_path):
    """The RT bundle scores under the 86% majority rate of this site: the table says so and what to do; predict
    says what share of the texts it calls positive, and what to do if a few labels say otherwise."""
    source_dir, cache = glove_bundle
    path, ds = low_rate
    scores = json.loads(invoke("evaluate", source_dir, path, "--json", "--cache-dir", cache).stdout)
    assert scores["accuracy"] < scores["majority_rate"]
    text = invoke("evaluate", source_dir, path, "--cache-dir", cache).output
    assert "WARNING: accuracy is under the majority rate" in text and "retarget" in text
    out = invoke("predict", source_dir, "--input", path, "--output", tmp_path / "p.jsonl", "--cache-dir", cache).output
    called = [json.loads(line)["p_positive"] >= 0.5 for line in (tmp_path / "p.jsonl").read_text().split("\n") if line]
    assert f"{sum(called):,} of {len(ds):,} ({np.mean(called):.0%}) called positive" in out and "retarget" in out


def test_the_fit_stays_on_the_source_direction_as_the_pull_grows(glove_bundle, low_rate):
    source_dir, cache = glove_bundle
    _, ds = low_rate
    bundle = Bundle.load(source_dir, cache_dir=cache)
    source = SourceHead.of(bundle.head, "logreg")
    idx = draw_labels(ds, 64, seed=0)
    X, y = bundle.embed([ds.texts[i] for i in idx]), ds.labels[idx]
    rows = source.rows(X)
    norms = [np.linalg.norm(fit_offset(source, rows, y, s).delta) for s in (0.1, 1.0, 10.0)]
    assert norms[0] > norms[1] > norms[2] > 0
    kept = fit_retargeted(source, X, y, None, RetargetSettings(strength=float("inf")))
    assert kept.record["cosine_to_source"] == pytest.approx(1.0) and kept.record["departure"] == 0
    assert kept.record["prior"]["from"] == "labels"
    given = fit_retargeted(source, X, y, None, RetargetSettings(prior=0.3, strength=0.3))
    auto = fit_retargeted(source, X[:32], y[:32], None, RetargetSettings()).record  # λ by cross-validation
    assert auto["strength_from"] == "cross-validation" and (auto["strength"] or float("inf")) in STRENGTHS
    assert choose_strength(source, rows[:3], np.array([0, 0, 1])) == STRENGTH  # too few of a class to fold
    assert given.record["prior"] == {"value": 0.3, "from": "--prior", "labelled_rate": pytest.approx(y.mean(), abs=1e-4)}


def test_the_rate_is_read_from_a_ranking_that_separates_the_unlabelled_texts(glove_bundle, low_rate):
    """Given scores that rank the site's texts well (the RT GloVe head's, moved apart by class: a stand-in for
    mpnet, which ranks this site at ROC-AUC 0.96), the mixture reads the unlabelled texts' 14% near exactly;
    the GloVe head's own scores, which rank the site too loosely for it, or too few unlabelled texts, leave
    the labels' own rate,
    and --prior wins over both."""
    source_dir, cache = glove_bundle
    _, ds = low_rate
    bundle = Bundle.load(source_dir, cache_dir=cache)
    source = SourceHead.of(bundle.head, "logreg")
    X = bundle.embed(ds.texts)
    s = source.score(source.rows(X)) + 3.0 * (2 * ds.labels - 1)
    rate, mixture = unlabelled_rate(s)  # with no labels at all, the unlabelled scores alone
    assert mixture.separation >= MIN_SEPARATION_UNLABELLED and rate == pytest.approx(ds.labels.mean(), abs=0.03)
    lab = draw_labels(ds, 32, seed=0)
    unl = np.setdiff1d(np.arange(len(ds)), lab)
    y, truth = ds.labels[lab], float(ds.labels[unl].mean())
    found = target_prior(y, None, (s[unl], s[lab]))
    assert found.source == "ranking" and found.mixture.separation >= MIN_SEPARATION
    assert abs(found.value - truth) < 0.03 and found.to_dict()["ranking"]["rate"] == round(found.value, 4)
    loose = source.score(source.rows(X))  # the GloVe head's own scores: ROC-AUC about 0.76 on this site
    kept = target_prior(y, None, (loose[unl], loose[lab]))
    low, high = labels_interval(int(y.sum()), 32)  # its mixture is a sliver in the tail, outside the labels' interval
    assert kept.source == "labels" and not (kept.mixture.separation >= MIN_SEPARATION and low <= kept.mixture.rate <= high)
    assert kept.value == pytest.approx((y.sum() + 1) / 34)
    few = target_prior(y, None, (s[unl][:MIN_UNLABELLED - 1], s[lab]))
    assert few.source == "labels" and few.mixture is None
    assert target_prior(y, 0.2, (s[unl], s[lab])).value == 0.2


def test_label_draws_are_random_seeded_and_hold_both_classes(low_rate):
    _, ds = low_rate
    for n in (4, 16, 64):
        draws = [draw_labels(ds, n, seed) for seed in range(20)]
        assert all(len(set(d)) == n and 0 < ds.labels[d].sum() < n for d in draws)
        assert len({int(ds.labels[d].sum()) for d in draws}) > 1  # not stratified: the count varies as at random
    assert (draw_labels(ds, 16, 1) == draw_labels(ds, 16, 1)).all()
    assert (draw_labels(ds, 16, 1) != draw_labels(ds, 16, 2)).any()


def test_one_class_of_labels_and_nonlinear_heads_are_refused(glove_bundle, low_rate, rt, tmp_path):
    source_dir, cache = glove_bundle
    path, ds = low_rate
    source = SourceHead.of(Bundle.load(source_dir, cache_dir=cache).head, "logreg")
    negatives = np.flatnonzero(ds.labels == 0)[:20]
    X = Bundle.load(source_dir, cache_dir=cache).embed([ds.texts[i] for i in negatives])
    with pytest.raises(RetargetError, match="0 positive and 20 negative texts; label at least one of each"):
        fit_offset(source, source.rows(X), ds.labels[negatives], 1.0)
    result = invoke("retarget", source_dir, path, "--self-train", "--out", tmp_path / "o", "--cache-dir", cache)
    assert result.exit_code != 0 and "add --unlabelled" in result.output
    result = invoke("retarget", source_dir, path, "--unlabelled", path, "--self-train", "--no-self-train", "--out",
                    tmp_path / "o", "--cache-dir", cache)
    assert result.exit_code != 0 and "give one of them" in result.output
    from pipeline.fit.train import fit

    fit(rt, encoder="glove-6b-50d", head="knn", budget=64, cache_dir=cache, out=tmp_path / "knn")
    result = invoke("retarget", tmp_path / "knn", path, "--n-labels", 16, "--out", tmp_path / "o", "--cache-dir", cache)
    assert result.exit_code != 0 and "retarget adapts linear heads" in result.output and "knn" in result.output


def test_with_no_labels_the_threshold_moves_to_the_rate_of_the_unlabelled_texts(glove_bundle, low_rate, tmp_path):
    """No target labels: with --prior the bundle calls that share of the site's texts positive; with the rate to
    be read from a ranking that does not split into two classes, it stops and says what to give instead."""
    source_dir, cache = glove_bundle
    path, ds = low_rate
    out = tmp_path / "zero"
    result = invoke("retarget", source_dir, "--unlabelled", path, "--prior", 0.14, "--out", out, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    assert f"no target labels, {len(ds):,} unlabelled target texts" in result.output and "14.0% of them" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["retarget"]
    assert record["labels"] == 0 and record["sample"] == "none" and record["prior"]["from"] == "--prior"
    assert record["prior"]["labelled_rate"] is None and manifest["prior"]["train"] == 0.14
    new = Bundle.load(out, cache_dir=cache)
    assert float((new.predict_proba(ds.texts)[:, 1] >= 0.5).mean()) == pytest.approx(0.14, abs=0.01)
    source = SourceHead.of(new.head, "logreg")
    flat = source.score(source.rows(new.embed(ds.texts[:200]))) * 0  # one score for every text: no two classes
    assert unlabelled_rate(flat)[0] is None
    with pytest.raises(RetargetError, match="give --prior RATE if you know it, or label 16-32 of them"):
        fit_recentred(SourceHead(np.zeros_like(source.coef), 0.0, source.normalizes), new.embed(ds.texts[:200]),
                      RetargetSettings())
    result = invoke("retarget", source_dir, "--out", tmp_path / "none", "--cache-dir", cache)
    assert result.exit_code != 0 and "give them with --unlabelled SOURCE, or label 16-32 of them" in result.output
    assert not (tmp_path / "none").exists()



def test_with_no_labels_the_rate_is_the_median_of_the_ranking_and_the_bundles_readers():
    """With the bundle's prior model recorded, the rate is the median of the ranking's mixture, EM and BBSE
    (even where the mixture alone is a sliver); without it, the mixture alone where trusted, else no rate. A rate
    near the source's share keeps the threshold, unless it is skewed."""
    from pipeline.fit.retarget_rate import AGREEMENT, SKEWED, calibrated_rates, no_label_rate
    from pipeline.predict.prior import Calibration, Confusion, PriorModel

    rng = np.random.default_rng(0)
    model = PriorModel(0.5, Calibration(), Confusion(0.85, 0.15, 500, 500))
    bulk = np.r_[rng.normal(-1.0, 1.0, 760), rng.normal(1.0, 1.0, 200)]  # one broad lump, then a far tail of 4%
    sliver = np.r_[bulk, rng.normal(9.0, 0.3, 40)]
    assert unlabelled_rate(sliver)[0] is None  # the mixture alone: a sliver, refused
    em, bbse = calibrated_rates(sliver, model)
    assert bbse == pytest.approx((np.mean(sliver > 0) - 0.15) / 0.70)
    found = no_label_rate(sliver, (em, bbse))
    assert found.source == "readers" and found.rate == pytest.approx(np.median([found.mixture.rate, em, bbse]))
    assert no_label_rate(sliver, None).rate is None and calibrated_rates(sliver, PriorModel(0.5)) is None
    two = np.r_[rng.normal(-2.5, 1.0, 300), rng.normal(2.5, 1.0, 700)] - 1.5  # 70% positive, the source calls fewer
    alone = no_label_rate(two, None)
    assert alone.source == "ranking" and alone.rate == pytest.approx(0.7, abs=0.03) and not alone.kept
    assert no_label_rate(two, (alone.share, alone.share)).kept  # two readers at the source's share: it stays
    assert no_label_rate(two, (0.0, 0.01)).rate is None  # two readers see one class only: no rate
    skewed = np.r_[rng.normal(-2.5, 1.0, 850), rng.normal(2.5, 1.0, 150)] + 1.0  # 15% positive, the source calls ~21%
    found = no_label_rate(skewed, (0.15, 0.15))
    assert abs(found.rate - found.share) <= AGREEMENT and found.rate < SKEWED and not found.kept  # a skewed rate moves it


def test_with_no_labels_a_weakly_separating_ranking_is_flagged():
    """The 0-label report warns, and says what to give, where the bundle's ranking of the site separates weakly
    (the sites it ranks at ROC-AUC about 0.8, whose rate no reader measured gets right), and not elsewhere."""
    from pipeline.cli.retarget import describe
    from pipeline.fit.retarget_rate import MIN_SEPARATION

    def record(separation: float) -> dict:
        return {"labels": 0, "unlabelled": 400, "threshold_kept": True, "source_share": 0.48, "threshold_shift": 0.0,
                "calibrated": {"em": 0.42, "bbse": 0.49},
                "prior": {"from": "readers", "value": 0.49, "ranking": {"rate": 0.62, "separation": separation}}}

    weak = describe(record(MIN_SEPARATION - 0.2), {})
    assert "WARNING the bundle ranks these texts weakly" in weak and "give --prior RATE" in weak
    assert "label 16-32 of these texts" in weak and "threshold: kept" in weak
    assert "WARNING" not in describe(record(MIN_SEPARATION + 0.05), {})


def test_a_skewed_draw_of_few_labels_that_makes_the_bundle_worse_is_flagged(glove_bundle, rt_split):
    """16 labels of an RT-like site (55% positive) that came out 13 positive: centred on their rate, the new
    head calls too many texts positive and scores under the source on the held-out rows beyond chance; the
    report says so in one WARNING line with what to do. A draw of 8 and 8 gets no warning."""
    from pipeline.cli.retarget import describe
    from pipeline.fit.retarget_bundle import TargetData, retarget

    source_dir, cache = glove_bundle
    site = rt_split[1].subset(np.arange(400))
    pos, neg = np.flatnonzero(site.labels == 1), np.flatnonzero(site.labels == 0)
    bundle = Bundle.load(source_dir, cache_dir=cache)
    reports = {}
    for n_pos in (13, 8):
        idx = np.sort(np.r_[pos[:n_pos], neg[:16 - n_pos]])
        held = site.subset(np.setdiff1d(np.arange(len(site)), idx))
        new, summary = retarget(bundle, TargetData(site.subset(idx), held, [], "drawn"), RetargetSettings())
        reports[n_pos] = (summary["held_out"], describe(new.manifest["retarget"], summary), new.manifest["retarget"])
    held, text, new_record = reports[13]
    versus = held["versus_source"]
    assert held["retargeted"]["accuracy"] < held["source"]["accuracy"] and versus["worse"]
    assert versus["source_only"] > versus["new_only"] and versus["z"] > 1.96
    warning = [line for line in text.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and "worse than the source bundle on the held-out rows" in warning[0]
    assert f"the held-out rows are {held['rate']:.3f} positive" in warning[0]
    assert "centred on a positive rate of 0.778" in warning[0]  # (13 + 1) / (16 + 2): the labels' own rate
    assert "Keep the source bundle, label more texts, or give --prior RATE" in warning[0]
    given = {**new_record, "prior": {**new_record["prior"], "from": "--prior"}}  # a rate the user gave
    assert "or check the --prior RATE you gave." in describe(given, {"held_out": held})
    assert not reports[8][0]["versus_source"]["worse"] and "WARNING" not in reports[8][1]
    assert new_record["held_out"] == {"n": held["n"], "rate": held["rate"], "accuracy": held["retargeted"]["accuracy"],
                                      "source_accuracy": held["source"]["accuracy"], **versus}  # the manifest keeps it
    assert reports[8][2]["held_out"]["worse"] is False


def test_evaluate_says_when_the_share_called_positive_is_far_from_the_labels_rate():
    """32 labels of a 72%-positive site that the bundle calls 44% positive: the line fires and names both shares;
    a gap inside chance, or a small one, says nothing."""
    from pipeline.study.tables import share_note

    line = share_note({"confusion_matrix": [[8, 1], [10, 13]]})
    assert line is not None and "calls 44% of these texts positive and their labels say 72%" in line
    assert "--prior 0.72" in line and "retarget" in line
    given = share_note({"confusion_matrix": [[8, 1], [10, 13]], "prior": {"target": 0.72}})  # --prior 0.72 given
    assert "Re-weighted to a positive rate of 0.72, it still does not suit this site: `review-transfer retarget`" \
        in given and "--prior" not in given
    assert share_note({"confusion_matrix": [[6, 3], [7, 16]]}) is None  # 19 against 23 positive: within chance
    assert share_note({"confusion_matrix": [[450, 50], [40, 460]]}) is None  # 51% against 50%


FRENCH = [("Un film magnifique, je le recommande à tous.", "positive"),
          ("Le scénario est nul et les acteurs sont mauvais.", "negative"),
          ("Une histoire touchante et très bien jouée.", "positive"),
          ("Quelle perte de temps, c'est ennuyeux du début à la fin.", "negative")]


def test_a_routed_bundle_is_retargeted_on_the_side_its_target_texts_go_to_and_keeps_the_other(rt_split, low_rate, tmp_path):
    """A routed GloVe bundle (E|O, word vectors standing in for mpnet and e5) carried to the tweet site with 32
    labels: the English side's head is adapted, texts in other languages score as the source scored them; a
    target in French adapts the other side's head and keeps the English one."""
    from pipeline.cli.retarget import describe
    from pipeline.data.dataset import Dataset
    from pipeline.fit.retarget_bundle import TargetData, retarget
    from pipeline.fit.train import FitPlan, iter_fit
    from pipeline.heads.routed_linear import RoutedLinearHead

    pool, _ = rt_split
    idx = [i for c in (0, 1) for i in np.flatnonzero(pool.labels == c)[:20]]
    train = Dataset([pool.texts[i] for i in idx], pool.labels[idx], [pool.groups[i] for i in idx], pool.label_names)
    cache = tmp_path / "cache"
    source = next(iter_fit(train, FitPlan(heads=["logreg"], seed=0), encoder="glove-6b-50d|glove-6b-50d[pooling=sif]",
                           cache_dir=cache)).save(tmp_path / "routed")
    _, ds = low_rate
    french = [t for t, _ in FRENCH]
    target = Dataset(ds.texts[:150] + french, np.r_[ds.labels[:150], [int(y == "positive") for _, y in FRENCH]])
    old = Bundle.load(source, cache_dir=cache)
    new, summary = retarget(old, TargetData.of(target, 32, 0, {"site": target.texts}), RetargetSettings(strength=0.3))
    side = new.manifest["retarget"]["routed_side"]
    assert side["adapted"] == "English" and side["left_out_labels"] + side["left_out_unlabelled"] >= len(FRENCH)  # labelled or not, the French texts were left out
    assert "routed bundle: its English side was retargeted; the other-language target texts" in describe(
        new.manifest["retarget"], summary)
    assert side["second_view"] is None  # GloVe's heads L2-normalise their rows: no second view (the next test has one)
    saved = Bundle.load(new.save(tmp_path / "new"), cache_dir=cache).head  # as predict reads it: numpy arrays
    assert isinstance(saved, RoutedLinearHead)
    X_french, X_english = old.embed(french), old.embed(ds.texts[:50])
    np.testing.assert_allclose(saved.predict_proba(X_french), old.head.predict_proba(X_french), atol=1e-6)  # kept
    assert np.abs(saved.predict_proba(X_english)[:, 1] - old.head.predict_proba(X_english)[:, 1]).max() > 0.01
    french_site = Dataset(french, target.labels[-4:])
    new, summary = retarget(old, TargetData.of(french_site, None, 0, {"site": ds.texts[:20]}), RetargetSettings(strength=0.3))
    assert new.manifest["retarget"]["routed_side"] == {"adapted": "other-language", "left_out_labels": 0,
                                                       "left_out_unlabelled": 20, "second_view": None}
    assert "its other-language side was retargeted; the English target texts (0 labelled, 20 unlabelled), which its " \
        "English side reads, were left out, and the English side's head is kept" in describe(new.manifest["retarget"],
                                                                                            summary)
    np.testing.assert_allclose(new.head.predict_proba(X_english), old.head.predict_proba(X_english), atol=1e-6)
    assert np.abs(new.head.predict_proba(X_french)[:, 1] - old.head.predict_proba(X_french)[:, 1]).max() > 0.01
    with pytest.raises(RetargetError, match="its other-language side, but 1 of the 1 target labels"):
        retarget(old, TargetData.of(Dataset(french[:1], np.r_[1]), None, 0), RetargetSettings(strength=0.3))


def test_with_labels_english_texts_of_a_routed_bundle_also_read_its_other_side(rt_split, low_rate, tmp_path):
    """A routed MiniLM bundle (``minilm|minilm[layers=4-6]``: sentence vectors, whose heads take rows as they are)
    retargeted on 16 labelled tweets: its English side reads both parts (``E+O|O``, a second view), the source score is
    the sum of both heads', the saved bundle rebuilds that encoder, and other-language texts score as before; with no
    labels the same two heads read the site's rate and their sum is the head whose threshold moves; a bundle fitted
    with English texts read by both (``E+O|O``, its English head the two heads' sum) reads the rate as that one does."""
    from pipeline.data.dataset import Dataset
    from pipeline.fit.retarget_bundle import TargetData, retarget
    from pipeline.fit.train import FitPlan, iter_fit

    pool, _ = rt_split
    idx = [i for c in (0, 1) for i in np.flatnonzero(pool.labels == c)[:8]]
    train = Dataset([pool.texts[i] for i in idx], pool.labels[idx], [pool.groups[i] for i in idx], pool.label_names)
    cache = tmp_path / "cache"
    old = next(iter_fit(train, FitPlan(heads=["logreg"], seed=0, prompts=None), encoder="minilm|minilm[layers=4-6]",
                        cache_dir=cache))
    old.save(tmp_path / "routed")
    _, ds = low_rate
    some = [i for c in (0, 1) for i in np.flatnonzero(ds.labels == c)[:8]]
    target = Dataset([ds.texts[i] for i in some] + [FRENCH[0][0]], np.r_[ds.labels[some], 1])
    new, _ = retarget(old, TargetData.of(target, None, 0), RetargetSettings(strength=0.3))
    english, other = (str(part.spec) for part in old.get_encoder().parts)
    wide = f"{english}+{other}|{other}"
    assert new.manifest["retarget"]["routed_side"]["second_view"] == wide and new.manifest["encoder"]["spec"] == wide
    loaded = Bundle.load(new.save(tmp_path / "new"), cache_dir=cache)
    loaded.verify_encoder()  # the recorded spec rebuilds the recorded fingerprint
    X_old, X_new = old.embed(target.texts), loaded.embed(target.texts)
    english = X_old[:, -1] == 1
    np.testing.assert_array_equal(X_new[:, :384], X_old[:, :384])
    assert not X_old[english, 384:768].any() and X_new[english, 384:768].any()  # English texts read the other part
    np.testing.assert_allclose(loaded.head.predict_proba(X_new)[~english], old.head.predict_proba(X_old)[~english],
                               atol=1e-6)  # the French text: the other side's head, as it was
    assert len(loaded.head.english_cols) == 768
    zero, _ = retarget(old, TargetData.of(None, 0, 0, {"site": ds.texts[:150]}), RetargetSettings())
    record = zero.manifest["retarget"]  # no labels: the rate from both heads, the threshold on their sum
    assert record["routed_side"]["second_view"] == wide and zero.manifest["encoder"]["spec"] == wide
    assert record["prior"]["from"] in ("views", "readers", "ranking") and record["labels"] == 0
    assert len(zero.head.english_cols) == 768
    both = next(iter_fit(train, FitPlan(heads=["logreg"], seed=0, prompts=None), encoder=wide, cache_dir=cache))
    both.save(tmp_path / "both")
    assert both.estimator.english_own  # fitted summed: English texts score both heads
    summed, _ = retarget(both, TargetData.of(None, 0, 0, {"site": ds.texts[:150]}), RetargetSettings())
    read = summed.manifest["retarget"]
    assert read["routed_side"]["second_view"] == wide and summed.manifest["encoder"]["spec"] == wide
    assert read["prior"]["from"] in ("views", "readers", "ranking") and read["labels"] == 0
    from pipeline.fit.retarget_side import Side

    X_site = both.embed(ds.texts[:150])  # the two views: the sum's own first head, and the other side's head
    side = Side.of(both, X_site)
    source, first = SourceHead.of(side.head, "logreg"), side.first_view("logreg")
    S = side.take(X_site)
    p_other = both.estimator.other_.predict_proba(X_site[side.rows(X_site)][:, list(both.estimator.other_cols)])[:, 1]
    np.testing.assert_allclose(source.score(source.rows(S)) - first.score(first.rows(S[:, :len(first.coef)])),
                               np.log(p_other / (1 - p_other)), atol=1e-6)
    one, _ = retarget(both, TargetData.of(None, 0, 0, {"site": ds.texts[:150]}), RetargetSettings(second_view=False))
    assert one.manifest["retarget"]["routed_side"]["second_view"] is None  # --one-view: the sum as one head


def _two_views(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(scores, classes): two heads' log-odds of ``n`` texts of a site ``rate`` positive, shaped as the default
    bundle's two heads score the mild Amazon sentences (class means +0.2 / -0.85 log-odds, spread 0.8, the two
    heads' errors correlated at 0.3 within a class: each head alone ranks them at ROC-AUC about 0.83)."""
    y = (rng.random(n) < rate).astype(np.int64)
    noise = rng.multivariate_normal([0.0, 0.0], 0.64 * np.array([[1.0, 0.3], [0.3, 1.0]]), n)
    return np.where(y[:, None] == 1, 0.2, -0.85) + noise, y


def test_with_no_labels_two_heads_read_the_rate_of_a_mildly_skewed_site_that_one_head_reads_as_balanced():
    """Two heads' scores of the same texts, read together (views_rate), give a 72%-positive site's rate and a
    15%-positive one's; no_label_rate then reads the rate from both and the threshold moves on the heads' sum; where the two do
    not split the texts into two classes, it falls back to the first head's readers."""
    from pipeline.fit.retarget_rate import no_label_rate, views_rate

    rng = np.random.default_rng(0)
    for rate in (0.72, 0.15):
        scores, y = _two_views(rng, 4000, rate)
        joint = views_rate(scores)
        assert joint.rate == pytest.approx(y.mean(), abs=0.04) and joint.separation > MIN_SEPARATION_UNLABELLED
        found = no_label_rate(scores[:, 0], (0.5, 0.5), scores)
        assert found.source == "views" and found.rate == joint.rate
        assert found.share == pytest.approx(np.mean(scores.sum(axis=1) > 0)) and not found.kept
    toward = no_label_rate(scores[:, 0], (0.5, 0.5), scores - [1.5, 1.5])  # the sum calls ~5% positive: 15% is nearer 1/2
    assert toward.source == "views" and abs(toward.rate - 0.5) < abs(toward.share - 0.5) and toward.kept
    from pipeline.cli.retarget import describe

    said = describe({"labels": 0, "unlabelled": 4000, "threshold_kept": True, "source_share": 0.03,
                     "threshold_shift": 0.0, "calibrated": {"em": 0.5, "bbse": 0.5},
                     "prior": {"from": "views", "value": 0.15, "ranking": {"rate": 0.15, "separation": 0.95}}}, {})
    assert "both heads' scores of them together" in said and "nearer to one half than the 3.0%" in said
    flat = rng.normal(0.0, 1.0, (400, 2))  # one lump: the two views do not split it into two classes
    assert views_rate(flat).separation < MIN_SEPARATION_UNLABELLED
    found = no_label_rate(flat[:, 0], (0.5, 0.5), flat)
    assert found.source == "readers" and found.share == np.mean(flat[:, 0] > 0)


def test_with_no_labels_the_threshold_moves_on_the_sum_of_two_heads():
    """fit_recentred on a head that is the sum of two (SourceHead.beside), given the first, reads the rate from both
    heads' scores and calls that share of the texts positive; the first head alone calls about half of them so."""
    rng = np.random.default_rng(1)
    X, y = _two_views(rng, 4000, 0.72)  # each head reads one column: its own log-odds
    first, second = SourceHead(np.ones(1), 0.0, False), SourceHead(np.ones(1), 0.0, False)
    moved = fit_recentred(first.beside(second), X, RetargetSettings(), None, first)
    assert moved.record["prior"]["from"] == "views" and not moved.record["threshold_kept"]
    assert moved.record["prior"]["value"] == pytest.approx(y.mean(), abs=0.04)
    assert float(np.mean(moved.log_odds(X) > 0)) == pytest.approx(moved.record["prior"]["value"], abs=0.001)
    assert float(np.mean(first.score(X[:, :1]) > 0)) < 0.6
