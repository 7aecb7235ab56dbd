"""The OpenVINO backend (fp32 IR, NNCF int8 weights, NNCF static int8) on real MiniLM and RT texts.

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


def test_openvino_int8_is_a_different_store_and_passes_the_guard(cache_dir, texts, torch_vectors, capfd):
    fp32 = get_encoder("minilm", backend="openvino", work_dir=cache_dir)
    capfd.readouterr()
    int8 = get_encoder("minilm", backend="openvino", quantize="int8", work_dir=cache_dir)
    assert "Weight Compression" not in "".join(capfd.readouterr())  # NNCF's bar, printed whole off a terminal
    torch_print = get_encoder("minilm", device="cpu", precision="fp32").fingerprint
    assert len({fp32.fingerprint, int8.fingerprint, torch_print}) == 3
    result = guard(int8, texts, min_median=0.98)
    assert 0.98 <= result.median < 1.0  # int8 weights move the vectors a little, not much
    assert cosines(int8.encode(texts), torch_vectors).min() > 0.95


def test_static_int8_is_calibrated_once_on_pool_texts_and_reused(cache_dir, texts, torch_vectors, monkeypatch):
    """``quantize=int8-static``: int8 activations too, calibrated on RT pool texts (64 here instead of 300, to
    keep the test short); its own store, its calibration in the fingerprint, reused without exporting again."""
    monkeypatch.setattr("pipeline.encoders.calibration.CALIBRATION_TEXTS", 64)
    static = get_encoder("minilm", backend="openvino", quantize="int8-static", work_dir=cache_dir)
    assert static.meta["calibration"]["texts"] == 64 and static.meta["calibration"]["source"] == "rt pool"
    assert static.meta["calibration"]["sha256"] in static.fingerprint_params()["export"]["openvino"]
    int8 = get_encoder("minilm", backend="openvino", quantize="int8", work_dir=cache_dir)
    assert static.fingerprint != int8.fingerprint
    got = static.encode(texts)
    assert np.median(cosines(got, torch_vectors)) > 0.9  # SmoothQuant on: without it mpnet fell to 0.77

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(exported, "make_export", no_export)
    again = get_encoder("minilm", backend="openvino", quantize="int8-static", work_dir=cache_dir)
    assert again.fingerprint == static.fingerprint and np.array_equal(again.encode(texts), got)


def test_a_session_loaded_in_the_background_gives_the_same_vectors_bit_for_bit(cache_dir, monkeypatch):
    """``predict`` of a few texts compiles the session in a thread while the tokenizer loads: the vectors are those
    of a session loaded in the calling thread, as before, bit for bit, in every language."""
    import threading

    from pipeline.encoders.onnx import ExportedEncoder

    texts = ["A warm, funny film with a great cast.", "Un film magnifique, je le recommande à tous.",
             "Langweilig, leider.", "这部电影太无聊了，我就睡着了。", "Una película muy aburrida y sin gracia."]
    loaded_in = []
    real_load = exported.load_session

    def load_session(*args, **kwargs):
        loaded_in.append(threading.current_thread() is threading.main_thread())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(exported, "load_session", load_session)
    background = [get_encoder("minilm", backend="openvino", work_dir=cache_dir).encode([t]) for t in texts]
    assert loaded_in == [False] * len(texts)  # each fresh encoder's session compiled in its own thread
    monkeypatch.setattr(ExportedEncoder, "preload", lambda self, count=1: None)
    here = [get_encoder("minilm", backend="openvino", work_dir=cache_dir).encode([t]) for t in texts]
    assert loaded_in[len(texts):] == [True] * len(texts)
    for a, b in zip(background, here):
        assert np.array_equal(a, b)
