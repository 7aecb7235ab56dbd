"""Combined encoders (``A+B``): the parts' vectors side by side, each part cached under its own store."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

from pipeline.store.cache import EmbeddingCache, list_stores
from pipeline.cli import main
from pipeline.encoders import get_encoder
from pipeline.encoders.concat import ConcatEncoder
from pipeline.encoders.spec import split_spec


def test_vectors_are_the_parts_side_by_side(small_glove, rt):
    texts = rt.texts[:50]
    combined = get_encoder(f"glove-6b-50d+{small_glove}")
    assert isinstance(combined, ConcatEncoder) and combined.dim == 100
    parts = [get_encoder("glove-6b-50d"), get_encoder(small_glove)]
    np.testing.assert_array_equal(combined.encode(texts), np.hstack([p.encode(texts) for p in parts]))
    assert combined.last_stats["tokens"] == sum(p.last_stats["tokens"] for p in parts)
    reversed_order = get_encoder(f"{small_glove}+glove-6b-50d")
    assert len({combined.fingerprint, reversed_order.fingerprint, *(p.fingerprint for p in parts)}) == 4


def test_cache_keeps_each_part_in_its_own_store(small_glove, rt, tmp_path):
    texts = rt.texts[:80]
    cache = EmbeddingCache(tmp_path)
    combined = get_encoder(f"glove-6b-50d+{small_glove}")
    vectors = cache.vectors(combined, texts)
    np.testing.assert_allclose(vectors, combined.encode(texts), atol=1e-6)
    assert {s.fingerprint for s in list_stores(tmp_path)} == {p.fingerprint for p in combined.parts}
    assert cache.fill(get_encoder("glove-6b-50d"), texts).misses == 0  # the part alone reuses those rows
    with pytest.raises(ValueError, match="fill each part"):
        cache.fill(combined, texts)


def test_bundle_options_rebuild_each_part(small_glove):
    from pipeline.bundle.bundle import encoder_options

    combined = get_encoder(f"glove-6b-50d+{small_glove}", pooling="mean")
    options = encoder_options(combined)
    assert options == {"parts": [{"pooling": "mean"}, {"pooling": "mean"}]}
    base = f"glove-6b-50d+{small_glove}"
    assert combined.spec == f"glove-6b-50d[pooling=mean]+{small_glove}[pooling=mean]"  # the spec says it all
    assert get_encoder(base, **options).fingerprint == combined.fingerprint
    assert get_encoder(combined.spec).fingerprint == combined.fingerprint
    assert get_encoder(base).fingerprint != combined.fingerprint  # the default pooling differs


def test_bad_combinations_are_refused():
    assert split_spec("minilm") == ["minilm"]
    assert split_spec("minilm+w2v-train:rt") == ["minilm", "w2v-train:rt"]
    # a '+' inside a path or model name does not split it
    assert split_spec("st:/models/minilm+finetune-head/encoder") == ["st:/models/minilm+finetune-head/encoder"]
    assert split_spec("w2v:/v/a+b.bin+minilm") == ["w2v:/v/a+b.bin", "minilm"]
    for spec in ("+minilm", "glove-6b-50d+glove-6b-50d"):
        with pytest.raises(ValueError, match="join distinct encoder specs"):
            get_encoder(spec)
    with pytest.raises(ValueError, match="unknown encoder spec 'minilm\\+'"):
        get_encoder("minilm+")


def test_embed_caches_the_parts_and_fit_predicts_through_the_combination(small_glove, rt, tmp_path):
    csv = write_reviews_csv(tmp_path / "reviews.csv", rt, range(300))
    cache, spec = tmp_path / "cache", f"glove-6b-50d+{small_glove}"
    result = CliRunner().invoke(main, ["embed", csv, "--encoder", spec, "--encoder", "glove-6b-50d",
                                       "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert result.output.count("texts (") == 2  # one summary per part; the repeated part is embedded once
    result = CliRunner().invoke(main, ["fit", csv, "--encoder", spec, "--budget", "all", "--cache-dir", str(cache),
                                       "--out", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    (bundle,) = (tmp_path / "models").iterdir()
    text = "A moving, beautiful film."
    result = CliRunner().invoke(main, ["predict", str(bundle), text, "--cache-dir", str(cache)])
    assert result.exit_code == 1 and "outside the bundle" in result.output  # the vector file is not in the bundle
    vectors_file = small_glove.partition(":")[2]
    result = CliRunner().invoke(main, ["predict", str(bundle), text, "--cache-dir", str(cache), "--encoder-path", vectors_file])
    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[0] in {"fresh", "rotten"}
    assert len(list_stores(cache)) == 2  # fitting and predicting read the parts' stores
