"""Routing by language (``E|O``): English texts go to a head on E's vectors, other languages to a head on
O's, both fitted on the same labels, in one bundle that saves, loads, predicts and compares like any other.

Word vectors stand in for mpnet and multilingual-e5 (GloVe 6B knows French words), so this costs no
transformer: the routing, not the encoders, is under test here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.bundle.bundle import Bundle
from pipeline.cli import main
from pipeline.data.dataset import Dataset
from pipeline.encoders import get_encoder
from pipeline.encoders.language import english
from pipeline.encoders.routed import (MIN_ENGLISH, ROUTE_VERSION, english_too_few, for_prediction, own_sides,
                                     unread_parts)
from pipeline.encoders.spec import SpecError, parse_spec
from pipeline.fit.train import FitPlan, bundle_name, iter_fit
from pipeline.heads.prompts import DEFAULT as DEFAULT_PROMPTS
from pipeline.heads.prompts import encoded_direction
from pipeline.heads.routed_linear import RoutedLinearHead
from pipeline.store.cache import EmbeddingCache

ENGLISH, OTHER = "glove-6b-50d", "glove-6b-50d[pooling=sif]"
ROUTED = f"{ENGLISH}|{OTHER}"
TEXTS = ["A warm, funny film with a great cast.", "Dull, slow and far too long.",
         "Un film magnifique, je le recommande à tous.", "Le scénario est nul et les acteurs sont mauvais.",
         "Una película muy aburrida y sin gracia.", "Brilliant from start to finish."]


@pytest.fixture(scope="module")
def train(rt_split) -> Dataset:
    pool, _ = rt_split
    idx = [i for c in (0, 1) for i in np.flatnonzero(pool.labels == c)[:20]]
    return Dataset([pool.texts[i] for i in idx], pool.labels[idx], [pool.groups[i] for i in idx], pool.label_names)


def test_spec_reads_both_sides_and_round_trips():
    spec = parse_spec("mpnet+multilingual|multilingual")
    assert spec.kind == "routed" and spec.route == ((0, 1), (1,)) and len(spec.parts) == 2
    assert str(spec) == "mpnet+e5-small-multilingual[prefix=passage]|e5-small-multilingual[prefix=passage]"
    assert parse_spec(str(spec)).route == spec.route
    for bad in ("mpnet|", "mpnet|minilm|glove-6b-50d", "mpnet|mpnet"):
        with pytest.raises(SpecError):
            parse_spec(bad)


def test_english_flag_reads_script_and_function_words():
    assert english(TEXTS) == [True, True, False, False, False, True]
    assert english(["这本书写得很好", "정말 최고!", "👍👍"]) == [False, False, True]  # no letters: English
    # mostly Latin letters, but Han and no English function word: other side from version 3 on
    mixed = ["最后终于搞定。我装的是VISTA Ultimate SP1 .", "The 千と千尋 soundtrack is lovely", "Amélie is great"]
    assert english(mixed) == [False, True, True] and english(mixed, version=2) == [True, True, True]
    with pytest.raises(ValueError, match="not one of"):
        english(mixed, version=1)


def test_bundles_record_the_route_version_and_a_bad_one_is_refused():
    from pipeline.bundle.manifest import ManifestError, encoder_spec

    assert get_encoder(ROUTED).route_version == ROUTE_VERSION == 5
    assert get_encoder(ROUTED, route_version=2).fingerprint != get_encoder(ROUTED).fingerprint  # it routes otherwise
    section = {"spec": ROUTED, "fingerprint": "0" * 16, "options": {"route_version": 9}}
    with pytest.raises(ManifestError, match="route_version is 9, not one of 2, 3, 4, 5"):
        encoder_spec(section, "manifest.json")
    with pytest.raises(ManifestError, match="not routed"):
        encoder_spec({**section, "spec": ENGLISH, "options": {"route_version": 3}}, "manifest.json")


def test_a_bundle_fitted_under_version_4_routes_as_it_was_fitted():
    texts = ["Langweilig, leider.", "Spectacular."]  # version 5 moves both across
    zeros = lambda part, some: np.zeros((len(some), part.dim), np.float32)  # noqa: E731 (no vectors needed)
    flags = {v: get_encoder(ROUTED, route_version=v).assemble(texts, zeros)[:, -1].tolist() for v in (4, 5)}
    assert flags == {4: [1.0, 0.0], 5: [0.0, 1.0]}


def test_texts_with_no_english_fit_and_compare_the_other_side_alone(tmp_path):
    """A routed spec on training texts none of which reads as English: its English side would go unused and its
    head fit on no English row, so fit and compare use the other side alone (it reads English too), in one line."""
    words = [("magnifique", "superbe", 1), ("nul", "ennuyeux", 0)]
    rows = [{"text": f"Le film est {a} et le scénario {b}, je le dis pour la {i}e fois.", "label": ["neg", "pos"][y]}
            for a, b, y in words for i in range(12)]
    source = tmp_path / "avis.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    common = ["--cache-dir", str(tmp_path / "cache"), "--encoder", ROUTED]
    result = CliRunner().invoke(main, ["fit", str(source), *common, "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert f"fit: {ROUTED}: none of the texts reads as English" in result.output and f"goes through {OTHER}" in result.output
    bundle = Bundle.load(next((tmp_path / "m").iterdir()), cache_dir=tmp_path / "cache")
    assert bundle.manifest["encoder"]["spec"] == OTHER
    result = CliRunner().invoke(main, ["compare", str(source), *common, "--budgets", "8", "--seeds", "1", "--no-plot",
                                       "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0 and "compare: " in result.output, result.output
    assert json.loads((tmp_path / "cmp" / "results.jsonl").read_text().splitlines()[0])["encoder"] == OTHER


KOREAN = [json.loads(line)["text"] for line in (Path(__file__).parent / "data" / "korean_reviews.jsonl").open()]
MIXED = ["Not worth it. 환불함", "Great cream, will buy again.", "Arrived broken, refund please."]


def test_a_handful_of_english_texts_drops_the_english_side_and_a_mostly_english_file_keeps_it():
    """The English side goes when its texts are both fewer than MIN_ENGLISH and under MIN_ENGLISH_SHARE of all."""
    spec = parse_spec(ROUTED)
    assert english(MIXED) == [True] * 3 and not any(english(KOREAN))
    assert english_too_few(spec, KOREAN + MIXED[:1]) == 1  # 1 of 25: 4%
    assert unread_parts(spec, KOREAN + MIXED[:1]) == {0}  # embed and backend auto agree with fit
    assert english_too_few(spec, KOREAN + MIXED[:2]) is None and unread_parts(spec, KOREAN + MIXED[:2]) == set()  # 8%
    assert english_too_few(spec, MIXED[1:]) is None  # a tiny English file keeps mpnet
    many = KOREAN * 21 + MIXED * 7  # 21 English texts of 525 (4%): enough for a head of their own
    assert english_too_few(spec, many) is None and english_too_few(spec, KOREAN * 21 + MIXED * 6) == 18
    assert english_too_few(parse_spec(ENGLISH), KOREAN + MIXED[:1]) is None  # not routed


def test_fit_on_korean_reviews_with_one_english_text_reads_them_all_with_the_other_side(tmp_path):
    """Korean reviews and one mixed 'Not worth it. 환불함': fit says so in one line and the bundle is the other side's."""
    rows = [json.loads(line) for line in (Path(__file__).parent / "data" / "korean_reviews.jsonl").open()]
    rows.append({"text": MIXED[0], "label": "negative"})
    source = tmp_path / "shop.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(main, ["fit", str(source), "--cache-dir", str(tmp_path / "cache"), "--encoder", ROUTED,
                                       "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert (f"fit: {ROUTED}: only 1 of the 25 texts read as English (under {MIN_ENGLISH} and under 5%), too few for "
            f"an English side of their own: every text goes through {OTHER}, the English ones too"
            in result.output), result.output
    bundle = Bundle.load(next((tmp_path / "m").iterdir()), cache_dir=tmp_path / "cache")
    assert bundle.manifest["encoder"]["spec"] == OTHER


def test_each_side_predicts_its_texts_and_the_bundle_round_trips(train, tmp_path):
    cache = tmp_path / "cache"
    routed = next(iter_fit(train, FitPlan(heads=["logreg"], seed=0), encoder=ROUTED, cache_dir=cache))
    flags = np.array(english(TEXTS))
    p = routed.predict_proba(TEXTS)[:, 1]
    for side, spec, rows in (("english_", ENGLISH, flags), ("other_", OTHER, ~flags)):  # each row by its side's head
        X = get_encoder(spec, work_dir=cache).encode([t for t, r in zip(TEXTS, rows) if r])
        np.testing.assert_allclose(p[rows], getattr(routed.estimator, side).predict_proba(X)[:, 1], atol=1e-6)
    # each side's prompt prior is the one a plain bundle of that side gets
    pair = encoded_direction(DEFAULT_PROMPTS, get_encoder(ROUTED, work_dir=cache), cache)
    for u, spec in zip(pair, (ENGLISH, OTHER)):
        np.testing.assert_allclose(u, encoded_direction(DEFAULT_PROMPTS, get_encoder(spec, work_dir=cache), cache))
    assert routed.manifest["encoder"]["spec"] == ROUTED and "other" in routed.manifest["head"]["params"]
    assert routed.manifest["encoder"]["options"]["route_version"] == ROUTE_VERSION
    assert "-routed_glove-6b-50d_glove-6b-50d_pooling_sif-" in bundle_name(routed)  # not taken for E+O
    # saved and loaded under the trust policy, it predicts the same, from the cache or straight from the encoder
    loaded = Bundle.load(routed.save(tmp_path / "routed"), cache_dir=cache)
    assert isinstance(loaded.head, RoutedLinearHead)  # numpy alone: no scikit-learn or skops to predict
    np.testing.assert_allclose(loaded.predict_proba(TEXTS)[:, 1], p, atol=1e-6)
    np.testing.assert_allclose(loaded.estimator.predict_proba(loaded.embed(TEXTS))[:, 1], p, atol=1e-6)  # head.skops
    loaded.use_cache = False
    np.testing.assert_allclose(loaded.predict_proba(TEXTS)[:, 1], p, atol=1e-6)


def test_compare_runs_routed_cells(train, tmp_path):
    source = tmp_path / "reviews.jsonl"
    source.write_text("".join(json.dumps({"text": t, "label": train.label_names[y]}) + "\n"
                              for t, y in zip(train.texts, train.labels)), encoding="utf-8")
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["compare", str(source), "--encoder", ROUTED, "--budgets", "24", "--seeds", "1",
                                       "--no-plot", "--cache-dir", str(cache), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "cmp" / "results.jsonl").read_text().splitlines()]
    assert rows[0]["encoder"] == ROUTED and "other" in rows[0]["params"] and rows[0]["metrics"]["test"]["accuracy"] > 0
    encoder = get_encoder(ROUTED, work_dir=cache)
    assert encoder.dim == 2 * 50 + 1  # both sides' vectors and the English flag
    X, flags = encoder.encode(TEXTS), np.array(english(TEXTS))
    np.testing.assert_array_equal(X, EmbeddingCache(cache).vectors(encoder, TEXTS))  # through the cache alike
    assert (X[~flags, :50] == 0).all() and (X[flags, :50] != 0).any(axis=1).all()  # E's part: English texts only
    assert (X[:, 50:100] != 0).any(axis=1).all() and (X[:, -1] == flags).all()  # O's part: every text
    # as a bundle predicts: each text only its own side's parts, the training rows alike with own_sides
    P = for_prediction(encoder).encode(TEXTS)
    assert (P[flags, 50:100] == 0).all() and (P[~flags] == X[~flags]).all() and (P[flags, :50] == X[flags, :50]).all()
    np.testing.assert_array_equal(own_sides(X, encoder.layout()), P)
    assert encoder.every_part and for_prediction(P) is P  # the encoder itself is left as it was


def test_self_training_teaches_each_side_on_its_own_texts(train, tmp_path):
    from pipeline.unlabelled.routed import self_train_routed

    encoder = get_encoder(ROUTED, work_dir=tmp_path)
    X, X_unl = encoder.encode(train.texts), encoder.encode(TEXTS * 2)  # 6 English, 6 in other languages
    fitted, record = self_train_routed("logreg", X, train.labels, X_unl, encoder.layout())
    pseudo = [sum(r["pseudo_labels"] for r in rec["rounds_run"]) for rec in (record, record["other"])]
    assert pseudo == [3, 3]  # half (the default fraction) of each side's 6 texts
    assert fitted.estimator.predict_proba(X_unl).shape == (12, 2) and "other" in fitted.params


def test_compare_runs_each_part_on_the_backend_auto_chose_for_it(monkeypatch):
    """compare's backend auto gives each part of ``multilingual`` what it runs alone (mpnet's layer mean its static
    int8 export, e5 its int8-weights export), not the first part's choice for every part."""
    from types import SimpleNamespace

    from pipeline.study.job import _frozen_backends, _named

    chosen = [SimpleNamespace(export_dir="x", backend="openvino", quantize=q) for q in ("int8-static", "int8")]
    monkeypatch.setattr("pipeline.encoders.auto.command_encoder",
                        lambda raw, spec, texts, options, **kw: (SimpleNamespace(parts=chosen), []))
    job = SimpleNamespace(raw_encoders=["multilingual"], backend=None, quantize=None, source_options={}, min_cosine=0.99,
                          execution=SimpleNamespace(cache_dir="cache"))
    spec = parse_spec("multilingual")
    backends = _frozen_backends(job, [spec], ["a fine film"], echo=lambda line: None)
    assert backends == {str(spec): {"parts": [{"backend": "openvino", "quantize": "int8-static"},
                                              {"backend": "openvino", "quantize": "int8"}]}}
    assert str(_named(spec, backends[str(spec)])) == ("mpnet[backend=openvino,quantize=int8-static,layers=9-12]|"
                                                      "e5-small-multilingual[prefix=passage,backend=openvino,quantize=int8]")


def test_compare_on_ray_refuses_a_routed_encoder_before_reading_the_data(tmp_path):
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "missing.csv"), "--engine", "ray", "--no-plot",
                                       "--out", str(tmp_path / "r")])  # the default encoder routes
    assert result.exit_code != 0 and "does not run a routed encoder" in result.output, result.output
    assert "Traceback" not in result.output


def test_a_routed_encoder_is_held_in_memory_where_sgd_would_stream(rt, tmp_path):
    from pipeline.fit.out_of_core import Switch, choose

    enc, go, line = choose(["sgd"], rt, ROUTED, Switch(memory=1 << 20), budget=None, self_train=False,
                           cache_dir=tmp_path, source_options={})
    assert not go and line.startswith("warning: 12,752 rows x 101-d") and "held in memory" in line, line
    assert choose(["sgd"], rt, ENGLISH, Switch(memory=1 << 20), budget=None, self_train=False, cache_dir=tmp_path,
                  source_options={})[1]  # one encoder streams


def test_the_cv_accuracy_shown_is_that_of_the_side_most_training_texts_go_to():
    """Spanish training texts mostly go to the other side, whose columns carry the signal; the English head's
    columns are zeros for those rows, so its CV score says nothing and is not the one shown."""
    from types import SimpleNamespace

    from pipeline.heads.routed import fit_routed

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    X = np.zeros((80, 5))
    X[:, 2:4] = rng.normal(size=(80, 2)) + 2.0 * np.c_[y, -y]  # the other side reads the labels
    X[:8, 0:2], X[:8, 4] = rng.normal(size=(8, 2)), 1.0  # 8 of 80 texts read as English
    layout = SimpleNamespace(english=(0, 1), other=(2, 3), flag=4)
    from pipeline.heads.registry import FitOptions, fit_head

    shown = fit_routed("logreg", X, y, layout, FitOptions(seed=0)).cv_accuracy
    other, english_side = (fit_head("logreg", X[:, list(cols)], y, FitOptions(seed=0)).cv_accuracy
                           for cols in ((2, 3), (0, 1)))
    assert shown == other and other > english_side + 0.2


def test_the_other_side_of_english_labels_takes_the_transfer_c():
    """Fitted on mostly English labels, the other side's logreg reads other languages by transfer and takes
    TRANSFER_C; fitted on mostly other-language labels it chooses its C by cross-validation as the English side does."""
    from types import SimpleNamespace

    from pipeline.heads.routed import TRANSFER_C, fit_routed
    from pipeline.heads.registry import FitOptions

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 40)
    X = np.zeros((80, 5))
    X[:, :4] = rng.normal(size=(80, 4)) + 3.0 * np.c_[y, -y, y, -y]
    for side in (slice(0, 2), slice(2, 4)):  # unit rows, as e5's and mpnet's: C goes in unscaled
        X[:, side] /= np.linalg.norm(X[:, side], axis=1, keepdims=True)
    layout = SimpleNamespace(english=(0, 1), other=(2, 3), flag=4)
    X[:60, 4] = 1.0  # 60 of 80 rows English
    fitted = fit_routed("logreg", X, y, layout, FitOptions(seed=0))
    assert fitted.params["other"]["C"] == TRANSFER_C != fitted.params["C"]
    X[:, 4] = 0.0  # every row in another language
    assert fit_routed("logreg", X, y, layout, FitOptions(seed=0)).params["other"]["C"] != TRANSFER_C


def test_embed_of_a_file_with_no_english_runs_no_english_only_part(tmp_path):
    """A routed encoder on Chinese and French reviews alone: its English side would encode none of them (as fit
    reads them with its other side alone), so ``embed`` neither probes nor fills it (mpnet read such files whole before); another spec that needs it still runs."""
    path = tmp_path / "other.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in
                            ["这本书写得很好，推荐", "Horrible. À éviter.", "Quelle perte de temps, vraiment nul."]),
                    encoding="utf-8")
    cache = str(tmp_path / "cache")
    result = CliRunner().invoke(main, ["embed", str(path), "--encoder", ROUTED, "--cache-dir", cache])
    assert result.exit_code == 0, result.output
    assert f"too few of the first texts read as English (under {MIN_ENGLISH} and under 5%): {ENGLISH} (a routed encoder's " \
           "English side) is not run" in result.output
    assert f"{ENGLISH}  fingerprint" not in result.output and f"{OTHER}  fingerprint" in result.output
    both = CliRunner().invoke(main, ["embed", str(path), "--encoder", ROUTED, "--encoder", ENGLISH, "--cache-dir", cache])
    assert "is not run" not in both.output and f"{ENGLISH}  fingerprint" in both.output, both.output


def _unit_parts(rng: np.random.Generator, y: np.ndarray, english_rows: int) -> np.ndarray:
    """Rows of an ``E+O|O`` routed encoder: E's 2 columns (zeros for rows in other languages), O's 2, the flag; each
    part of unit length, as mpnet's and e5's vectors are, and each carrying the labels."""
    X = np.zeros((len(y), 5))
    X[:, :4] = rng.normal(size=(len(y), 4)) + 1.0 * np.c_[y, -y, y, -y]
    for part in (slice(0, 2), slice(2, 4)):
        X[:, part] /= np.linalg.norm(X[:, part], axis=1, keepdims=True)
    X[english_rows:, :2], X[:english_rows, 4] = 0.0, 1.0
    return X


def test_an_english_side_that_also_reads_the_other_encoder_scores_both_heads_summed():
    """``E+O|O`` with logreg on unit-length parts: the English head is fitted on E's columns alone, and an English row
    scores its log-odds plus the other-language head's, folded into one logistic head over both parts (so head.npz
    holds it as any logreg head); a refitted clone does the same. Another head, or parts not of unit length, fit one
    English head over both parts, as before."""
    from types import SimpleNamespace

    from sklearn.base import clone

    from pipeline.bundle.bundle import head_identity
    from pipeline.heads.registry import FitOptions, fit_head
    from pipeline.heads.routed import fit_routed
    from pipeline.heads.routed_linear import from_routed

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 40)
    X = _unit_parts(rng, y, english_rows=70)
    layout = SimpleNamespace(english=(0, 1, 2, 3), other=(2, 3), flag=4)
    fitted = fit_routed("logreg", X, y, layout, FitOptions(seed=0))
    routed = fitted.estimator
    assert routed.english_own == (0, 1) and "log-odds summed" in fitted.search

    def log_odds(head, Z):
        p = head.predict_proba(Z)[:, 1]
        return np.log(p / (1 - p))

    english_alone = fit_head("logreg", X[:, :2], y, FitOptions(seed=0)).estimator  # what the English head is fitted as
    other = routed.other_
    summed = 1 / (1 + np.exp(-(log_odds(english_alone, X[:70, :2]) + log_odds(other, X[:70, 2:4]))))
    np.testing.assert_allclose(routed.predict_proba(X)[:70, 1], summed, atol=1e-9)
    np.testing.assert_allclose(routed.predict_proba(X)[70:, 1], other.predict_proba(X[70:, 2:4])[:, 1], atol=1e-12)
    light = from_routed(routed, "logreg", head_identity, X)  # head.npz: numpy alone, the same probabilities
    assert light is not None and light.english_cols.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(light.predict_proba(X), routed.predict_proba(X), atol=1e-12)
    import skops.io as sio

    from pipeline.bundle.trust import TRUSTED_TYPES

    saved = sio.dumps(routed)  # head.skops: nothing beyond the types a bundle trusts
    assert set(sio.get_untrusted_types(data=saved)) <= TRUSTED_TYPES
    np.testing.assert_allclose(sio.loads(saved, trusted=TRUSTED_TYPES).predict_proba(X), routed.predict_proba(X))
    refit = clone(routed).fit(X, y)  # out-of-fold probabilities (the prior model) refit the same recipe
    np.testing.assert_allclose(refit.predict_proba(X), routed.predict_proba(X), atol=1e-6)
    # not the sum: a head other than logreg, or an English part that is not of unit length
    assert fit_routed("ridge", X, y, layout, FitOptions(seed=0)).estimator.english_own == ()
    X[:70, :2] *= 3.0
    assert fit_routed("logreg", X, y, layout, FitOptions(seed=0)).estimator.english_own == ()



def test_prediction_starts_loading_every_part_a_text_needs_and_no_other(monkeypatch):
    """Before encoding, a routed encoder asks each part its texts need to start loading (an exported model's session
    compiles in a thread, so ``E+O|O`` loads both at once); one English review under ``E|O`` never loads O. The parts
    of the texts likely English start first, before the word lists decide, with the count they read if all those texts
    are English (a French review the identifier alone calls English loads E's session too). The language warning
    asks nothing of the English part when another part reads every language."""
    from pipeline.encoders import language, lexicon
    from pipeline.encoders.base import Encoder

    asked: list[tuple[str, int]] = []
    monkeypatch.setattr(Encoder, "preload", lambda self, count=1: asked.append((self.spec, count)))
    for_prediction(get_encoder(ROUTED)).encode(TEXTS[:1])
    assert asked == [(ENGLISH, 1)]
    asked.clear()
    both = for_prediction(get_encoder(f"{ENGLISH}+{OTHER}|{OTHER}"))
    both.encode(TEXTS[:3])
    assert asked == [(ENGLISH, 2), (OTHER, 3)]
    asked.clear()
    texts = ["Spectacular!", "Langweilig, leider.", "这部电影太无聊了。"]  # fastText unsure of the first two
    assert language.likely_english(texts) == [True, True, False]  # fastText alone: the German review too
    loaded = []  # what was asked when the word lists loaded
    monkeypatch.setattr(lexicon, "frequencies", lambda real=lexicon.frequencies: loaded.append(list(asked)) or real())
    for_prediction(get_encoder(ROUTED)).encode(texts)
    assert language.english(texts) == [True, False, False]
    assert loaded[0] == asked == [(ENGLISH, 2), (OTHER, 1)]
    e5 = get_encoder(f"{ENGLISH}|multilingual-e5")
    monkeypatch.setattr(language, "_not_english", lambda *a: pytest.fail("the English part was checked"))
    assert language.check(e5, TEXTS) is None
