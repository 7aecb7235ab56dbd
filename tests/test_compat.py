"""Bundles and an embedding cache made by an earlier release (bf914d3, before the package took its
folders) load unchanged: same encoder fingerprints, same probabilities, the cached rows read back."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.bundle.bundle import Bundle
from pipeline.bundle.trust import LEGACY_MODULES
from pipeline.encoders import get_encoder
from pipeline.predict.predict import positive_proba
from pipeline.store.cache import EmbeddingCache

MADE = Path(__file__).parent / "data" / "bf914d3"
EXPECTED = json.loads((MADE / "expected.json").read_text(encoding="utf-8"))
# precision "auto" resolved to bf16 on the machine that made the fixture (its bundles record it); today's
# auto may resolve otherwise on another CPU, so the cache is asked for what was made
AS_MADE = {"minilm": "minilm[precision=bf16]"}


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    """A copy of the earlier release's cache (reading takes a lock beside each file)."""
    return Path(shutil.copytree(MADE / "cache", tmp_path / "cache"))


def test_the_fixture_holds_heads_that_name_old_modules():
    schemas = [p.read_bytes() for p in (MADE / "bundles").glob("*/head.skops")]
    for old in LEGACY_MODULES:
        assert any(old.encode() in s for s in schemas), old  # else the renaming below is not exercised


@pytest.mark.parametrize("name", sorted(EXPECTED["bundles"]))
def test_earlier_bundles_load_and_predict_as_they_did(name, cache_dir, tmp_path):
    bundle = Bundle.load(shutil.copytree(MADE / "bundles" / name, tmp_path / name), cache_dir=cache_dir)
    want = EXPECTED["bundles"][name]
    assert bundle.manifest["encoder"]["fingerprint"] == want["fingerprint"]
    p, _, _ = positive_proba(bundle, EXPECTED["texts"])
    np.testing.assert_allclose(p, want["p_pos"], atol=2e-6)


@pytest.mark.parametrize("spec", sorted(EXPECTED["cache"]))
def test_an_earlier_cache_serves_its_rows_without_encoding(spec, cache_dir, monkeypatch):
    encoder = get_encoder(AS_MADE.get(spec, spec), work_dir=cache_dir)
    assert encoder.fingerprint == EXPECTED["cache"][spec]["fingerprint"]

    def no_encoding(texts):
        raise AssertionError(f"{spec}: encoded {len(texts)} texts the cache holds")

    monkeypatch.setattr(encoder, "encode", no_encoding)
    rows = EmbeddingCache(cache_dir).vectors(encoder, EXPECTED["texts"])
    digest = hashlib.sha256(np.ascontiguousarray(rows, dtype=np.float32).tobytes()).hexdigest()
    assert digest == EXPECTED["cache"][spec]["sha256"]


# ---------------------------------------------------------------------------------------------- e5 alone
E5_MADE = Path(__file__).parent / "data" / "e5-9ec6234"
E5_EXPECTED = json.loads((E5_MADE / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(E5_EXPECTED["bundles"]))
def test_bundles_of_e5_from_when_multilingual_named_it_load_and_predict_as_they_did(name, tmp_path):
    """``multilingual`` now names a routed spec. Bundles fitted on e5 alone when it named e5 keep loading and
    predicting as fitted: the CLI recorded the resolved spec; the library recorded the alias itself, which a
    manifest still reads as e5, its prefix picked by the recorded fingerprint."""
    bundle = Bundle.load(shutil.copytree(E5_MADE / name, tmp_path / name), cache_dir=tmp_path / "cache")
    want = E5_EXPECTED["bundles"][name]
    assert bundle.manifest["encoder"]["spec"] == want["spec"]
    assert bundle.get_encoder().fingerprint == want["fingerprint"]
    assert "mpnet" not in str(bundle.get_encoder().spec)  # e5 alone, not the routed spec
    p, _, _ = positive_proba(bundle, E5_EXPECTED["texts"])
    np.testing.assert_allclose(p, want["p_pos"], atol=2e-6)


# ---------------------------------------------------------------------------------------------- routed, version 2
ROUTED_MADE = Path(__file__).parent / "data" / "routed-01e051d"
ROUTED_EXPECTED = json.loads((ROUTED_MADE / "expected.json").read_text(encoding="utf-8"))


def test_a_routed_bundle_from_before_route_versions_routes_as_it_was_fitted(tmp_path):
    """A routed bundle records no route version from before bundles recorded one: it loads with its fingerprint
    and routes by version 2's English check, so the Chinese review written mostly in Latin letters still goes to
    its English head (version 3 sends it to the other side), and every probability is as it was."""
    from pipeline.encoders.language import english

    bundle = Bundle.load(shutil.copytree(ROUTED_MADE / "glove-routed", tmp_path / "b"), cache_dir=tmp_path / "cache")
    assert bundle.get_encoder().fingerprint == ROUTED_EXPECTED["fingerprint"]
    assert bundle.get_encoder().route_version == 2
    texts = ROUTED_EXPECTED["texts"]
    assert english(texts, version=2)[3] and not english(texts)[3]  # the two versions differ on this text
    p, _, _ = positive_proba(bundle, texts)
    np.testing.assert_allclose(p, ROUTED_EXPECTED["p_pos"], atol=2e-6)
