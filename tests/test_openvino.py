"""The OpenVINO backend (fp32 IR and NNCF int8 weights) on real MiniLM and RT texts.

One export of each is made for the module from the packaged weights (about 30 s on 2 cores). Skipped
where the ``[openvino]`` extra is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.encoders import get_encoder
from pipeline.encoders import onnx as exported
from pipeline.encoders.probe import cosines, guard

pytestmark = pytest.mark.slow  # exports, a cluster or a model: see setup.cfg

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("openvino-cache")


@pytest.fixture(scope="module")
def texts(rt_split) -> list[str]:
    return rt_split[1].texts[:24]


@pytest.fixture(scope="module")
def torch_vectors(texts) -> np.ndarray:
    return get_encoder("minilm", device="cpu", precision="fp32").encode(texts)


def test_openvino_fp32_matches_torch_and_is_cached(cache_dir, texts, torch_vectors, monkeypatch):
    enc = get_encoder("minilm", backend="openvino", work_dir=cache_dir)
    assert enc.export_dir.parent == cache_dir / exported.EXPORTS_DIR
    got = enc.encode(texts)
    assert got.dtype == np.float32 and got.shape == torch_vectors.shape
    assert cosines(got, torch_vectors).min() > 0.9999

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(exported, "make_export", no_export)
    again = get_encoder("minilm", backend="openvino", work_dir=cache_dir)
    assert again.export_dir == enc.export_dir and again.fingerprint == enc.fingerprint


def test_openvino_int8_is_a_different_store_and_passes_the_guard(cache_dir, texts, torch_vectors):
    fp32 = get_encoder("minilm", backend="openvino", work_dir=cache_dir)
    int8 = get_encoder("minilm", backend="openvino", quantize="int8", work_dir=cache_dir)
    torch_print = get_encoder("minilm", device="cpu", precision="fp32").fingerprint
    assert len({fp32.fingerprint, int8.fingerprint, torch_print}) == 3
    result = guard(int8, texts, min_median=0.98)
    assert 0.98 <= result.median < 1.0  # int8 weights move the vectors a little, not much
    assert cosines(int8.encode(texts), torch_vectors).min() > 0.95
