"""Static int8 calibration recipes: a layer-mean export (the default encoder's) defaults to ``rt-a75``, others to
``rt-a95``; exports, caches and bundles of ``rt-a95`` (made when recipes had no names) keep their key, fingerprint
and encoder. No model loads here."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.bundle.manifest import encoder_options, encoder_spec
from pipeline.encoders.calibration import DEFAULT_RECIPE, LEGACY_RECIPE, calibration_texts, recipe, versions_tag
from pipeline.encoders.onnx import EXPORT_VERSION, export_key


def test_the_older_recipe_keeps_the_export_key_it_always_had():
    old = {"model": "m", "backend": "openvino", "quantize": "int8-static", "runtime": "openvino==1",
           "export_version": EXPORT_VERSION, "hf": False, "layers": [9, 12],
           "calibration": {"source": "rt pool", "texts": 300, "seed": 0, "batch": 8}}  # as keyed before recipes
    digest = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    args = ("m", "openvino", "int8-static", "openvino==1", False, (9, 12))
    assert export_key(*args, LEGACY_RECIPE) == f"openvino-int8-static-{digest}"
    assert export_key(*args) == export_key(*args, DEFAULT_RECIPE) != export_key(*args, LEGACY_RECIPE)
    plain = ("m", "openvino", "int8-static", "openvino==1", False)  # a plain model keeps rt-a95 unless named
    assert export_key(*plain) == export_key(*plain, None, LEGACY_RECIPE) != export_key(*plain, None, DEFAULT_RECIPE)
    assert recipe(DEFAULT_RECIPE)["smooth_quant_alpha"] == 0.75
    assert export_key("m", "openvino", "int8", "openvino==1", False, None, DEFAULT_RECIPE) == export_key(
        "m", "openvino", "int8", "openvino==1", False)  # int8 weights have no calibration


def test_the_fingerprint_says_which_recipe_calibrated():
    texts, old = calibration_texts(LEGACY_RECIPE)
    same, new = calibration_texts(DEFAULT_RECIPE)
    assert texts == same and len(texts) == 300 and old["sha256"] == new["sha256"]
    assert versions_tag(old) == f"calibration={old['sha256']}"  # what the older exports' versions say
    assert versions_tag(new) == f"calibration=rt-a75:{new['sha256']}"


@pytest.mark.parametrize("options, want", [
    ({"backend": "openvino", "quantize": "int8-static"}, "rt-a95"),  # a bundle fitted before recipes had names
    ({"backend": "openvino", "quantize": "int8-static", "calibration": "rt-a75"}, "rt-a75"),
    ({"backend": "openvino", "quantize": "int8"}, None),
])
def test_a_bundle_rebuilds_the_recipe_it_was_fitted_on(options, want):
    spec = encoder_spec({"spec": "mpnet[layers=9-12]", "fingerprint": "0" * 16, "options": options}, "manifest.json")
    assert spec.kwargs.get("calibration") == want
    routed = encoder_spec({"spec": "mpnet[layers=9-12]+multilingual|multilingual", "fingerprint": "0" * 16,
                           "options": {"parts": [options, {"backend": "openvino", "quantize": "int8"}]}}, "m.json")
    assert routed.parts[0].kwargs.get("calibration") == want and "calibration" not in routed.parts[1].kwargs


def test_bundles_record_the_recipe_of_a_static_export():
    from types import SimpleNamespace

    static = SimpleNamespace(backend="openvino", quantize="int8-static", calibration="rt-a75", max_length=384)
    assert encoder_options(static)["calibration"] == "rt-a75"
    weights = SimpleNamespace(backend="openvino", quantize="int8", calibration=None, max_length=384)
    assert "calibration" not in encoder_options(weights)


@pytest.mark.parametrize("options, want", [
    ({"backend": "openvino", "quantize": "int8-static"}, "rt-a95"),  # e5's static export before recipes were its own
    ({"backend": "openvino", "quantize": "int8-static", "calibration": "rt-a75"}, "rt-a75"),
    ({"backend": "openvino", "quantize": "int8"}, None),  # what backend auto ran for e5 (int8 weights)
])
def test_an_e5_bundle_rebuilds_the_export_it_was_fitted_on(options, want):
    from types import SimpleNamespace

    from pipeline.encoders.multilingual import E5ExportedEncoder

    spec = encoder_spec({"spec": "e5-small-multilingual[prefix=passage]", "fingerprint": "0" * 16, "options": options},
                        "manifest.json")
    assert spec.kwargs.get("calibration") == want
    recorded = E5ExportedEncoder.bundle_options(SimpleNamespace(**{"calibration": None, **options}))
    assert recorded == options
