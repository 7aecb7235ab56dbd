"""Exported encoders (onnxruntime, dynamic int8) and their accuracy guard, on real MiniLM and RT texts.

One onnx fp32 export and its int8 quantization are made once for the module (about 20 s on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

from pipeline import OptionError
from pipeline.cli import main
from pipeline.encoders import get_encoder
from pipeline.encoders import onnx as exported
from pipeline.encoders.probe import ProbeError, cosines, guard, guarded_encoder

pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow  # exports, a cluster or a model: see setup.cfg

# Run in a fresh interpreter: any import of torch (or the libraries that pull it in) fails.
NO_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "sentence_transformers"):
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Block())
from pipeline.cli import main
main()
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_fp32(cache_dir):
    return get_encoder("minilm", backend="onnx", work_dir=cache_dir)


@pytest.fixture(scope="module")
def onnx_int8(cache_dir, onnx_fp32):
    return get_encoder("minilm", backend="onnx", quantize="int8", work_dir=cache_dir)


@pytest.fixture(scope="module")
def texts(rt_split) -> list[str]:
    return rt_split[1].texts[:24]


def test_export_is_cached_and_reused(cache_dir, onnx_fp32, monkeypatch):
    assert onnx_fp32.export_dir.parent == cache_dir / exported.EXPORTS_DIR
    assert onnx_fp32.export_dir.name.startswith("onnx-none-")
    assert (onnx_fp32.export_dir / "model.onnx").is_file() and (onnx_fp32.export_dir / "tokenizer.json").is_file()

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(exported, "make_export", no_export)
    again = get_encoder("minilm", backend="onnx", work_dir=cache_dir)
    assert again.export_dir == onnx_fp32.export_dir
    assert again.fingerprint == onnx_fp32.fingerprint


def test_a_damaged_export_is_refused_in_one_line_that_says_what_to_do(onnx_fp32, tmp_path):
    import shutil

    damaged = shutil.copytree(onnx_fp32.export_dir, tmp_path / "export")
    model = damaged / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # cut short, as a full disk would leave it
    with pytest.raises(exported.DamagedExportError, match=r"cannot load this export .*delete that directory and run again"):
        exported.load_session(damaged, "onnx", compiled=True)
    with pytest.raises(exported.DamagedExportError, match="restore the bundle's files or refit it"):
        exported.load_session(damaged, "onnx", compiled=False)  # a bundle's own export


def test_a_damaged_cached_export_is_removed_and_exported_anew_once(cache_dir, onnx_fp32, texts, tmp_path, caplog):
    """A cut-short model in the cache was reported on every run and never rebuilt (backend auto then fell back on
    torch each time): it is removed and exported anew, said in one line, and the next encoder loads it quietly."""
    import logging
    import shutil

    shutil.copytree(cache_dir / exported.EXPORTS_DIR, tmp_path / exported.EXPORTS_DIR)
    model = tmp_path / exported.EXPORTS_DIR / onnx_fp32.export_dir.name / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="pipeline.encoders.onnx"):
        got = get_encoder("minilm", backend="onnx", work_dir=tmp_path).encode(texts)
        again = get_encoder("minilm", backend="onnx", work_dir=tmp_path).encode(texts)
    said = [r.getMessage() for r in caplog.records if "cannot load" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("): removed, exporting anew")
    assert cosines(got, onnx_fp32.encode(texts)).min() > 0.99999 and np.array_equal(got, again)
    assert sorted(p.name for p in (tmp_path / exported.EXPORTS_DIR).iterdir()) == sorted(
        p.name for p in (cache_dir / exported.EXPORTS_DIR).iterdir())  # no temporary left beside it


def test_vectors_match_torch_fp32_and_the_torch_tokenizer(onnx_fp32, texts):
    torch_enc = get_encoder("minilm", device="cpu", precision="fp32")
    long_text = " ".join(texts)  # several windows: chunk-mean pooling as on the torch path
    batch = [*texts, long_text]
    assert onnx_fp32._content_ids(batch) == torch_enc._content_ids(batch)
    got, want = onnx_fp32.encode(batch), torch_enc.encode(batch)
    assert got.dtype == np.float32 and got.shape == (len(batch), 384)
    assert cosines(got, want).min() > 0.9999
    assert onnx_fp32.encode([]).shape == (0, 384)


def test_fingerprint_differs_by_backend_and_quantization(onnx_fp32, onnx_int8):
    torch_params = get_encoder("minilm", device="cpu", precision="fp32").full_params()
    assert "backend" not in torch_params  # torch fingerprints (and their caches) are unchanged
    prints = {onnx_fp32.fingerprint, onnx_int8.fingerprint, get_encoder("minilm", device="cpu", precision="fp32").fingerprint}
    assert len(prints) == 3
    assert onnx_int8.full_params()["quantize"] == "int8"
    assert os.path.getsize(onnx_int8.export_dir / "model.onnx") < os.path.getsize(onnx_fp32.export_dir / "model.onnx") / 2


def test_guard_refuses_a_probe_that_fails_and_records_one_that_passes(onnx_int8, texts, monkeypatch):
    with pytest.raises(ProbeError, match="median cosine"):
        guard(onnx_int8, texts, min_median=0.99999)
    result = guard(onnx_int8, texts, min_median=0.9)
    assert 0.9 < result.min <= result.median < 1.0
    recorded = exported.read_meta(onnx_int8.export_dir)["probes"][-1]
    assert recorded["median"] == result.median and recorded["texts"] == len(texts)

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again")

    monkeypatch.setattr("pipeline.encoders.probe.probe", no_probe)  # the same sample: reused from meta.json
    assert guard(onnx_int8, texts, min_median=0.9) == result


def test_auto_ignores_word_vectors_and_bad_options_are_clear(cache_dir):
    enc, lines = guarded_encoder("glove-6b-50d", ["a fine film"], {"backend": "auto", "work_dir": cache_dir})
    assert enc.spec == "glove-6b-50d" and lines == []
    with pytest.raises(ValueError, match="quantize=int8 needs backend onnx"):
        get_encoder("minilm", quantize="int8")
    with pytest.raises(ValueError, match="runs on the CPU"):
        get_encoder("minilm", backend="onnx", precision="bf16", work_dir=cache_dir)


def test_auto_probes_every_backend_and_picks_one_that_passes(cache_dir, onnx_fp32, onnx_int8, texts):
    from pipeline.encoders.probe import CANDIDATES, pick_backend

    backend, quantize, lines = pick_backend("minilm", texts, {"work_dir": cache_dir})
    named = [line.strip().split(":")[0].split(" (")[0] for line in lines[:-1]]
    assert sorted(named) == sorted(f"{b}/{q}" for b, q in CANDIDATES)  # each measured, or skipped saying why
    chosen = next(line for line in lines[:-1] if line.strip().startswith(f"{backend}/{quantize}"))
    assert "texts/s" in chosen and "refused" not in chosen
    assert lines[-1].startswith(f"backend auto picked {backend}/{quantize}")


def test_embed_prints_rate_and_probe(cache_dir, onnx_int8, rt, tmp_path):
    csv = write_reviews_csv(tmp_path / "r.csv", rt, range(40))
    result = CliRunner().invoke(main, ["embed", csv, "--encoder", "minilm", "--backend", "onnx", "--quantize", "int8",
                                       "--min-cosine", "0.9", "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, result.output
    assert "probe vs torch fp32 on 40 of your texts: cosine min" in result.output
    assert "texts/s" in result.output and "onnx int8" in result.output
    refused = CliRunner().invoke(main, ["embed", csv, "--encoder", "minilm", "--backend", "onnx", "--quantize", "int8",
                                        "--min-cosine", "0.99999", "--cache-dir", str(cache_dir)])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "is below 0.99999" in refused.output


def _predict_without_torch(bundle: Path, texts: list[str], cache_dir: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", NO_TORCH, "predict", str(bundle), *texts, "--cache-dir", str(cache_dir)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return [float(line.split("\t")[1]) for line in out.stdout.splitlines()]


def test_onnx_bundle_predicts_with_torch_blocked(cache_dir, onnx_fp32, rt_split, tmp_path):
    from pipeline.data.dataset import sample_budget
    from pipeline.fit.train import iter_fit

    pool, _ = rt_split
    bundle = next(iter_fit(sample_budget(pool, 40, seed=0), encoder=onnx_fp32, cache_dir=cache_dir))
    path = bundle.save(tmp_path / "bundle")
    assert bundle.manifest["encoder"]["options"]["backend"] == "onnx"
    texts = ["A warm, funny and moving film.", "Dull, stale and far too long."]
    expected = bundle.head.predict_proba(onnx_fp32.encode(texts))[:, 1]  # not through the cache: predict encodes
    assert np.allclose(_predict_without_torch(path, texts, cache_dir), expected, atol=1e-3)


def test_bundle_with_its_own_onnx_encoder_predicts_with_torch_blocked(onnx_fp32, rt_split, tmp_path):
    """As ``finetune --export onnx`` saves it: the export inside the bundle's encoder/, no cached export."""
    import shutil

    from pipeline.bundle.bundle import Bundle
    from pipeline.data.dataset import sample_budget
    from pipeline.encoders.models import minilm
    from pipeline.finetune.export import export_tuned
    from pipeline.finetune.run import PREDICT_LONG_TEXT
    from pipeline.fit.train import iter_fit

    pool, test = rt_split
    staging = tmp_path / "tuned"  # stands in for tuned weights: the packaged MiniLM, copied
    shutil.copytree(minilm()[0], staging)
    layers = "4-6"  # as a tuned layer-mean model: the graph returns the mean of layers 4-6, probed against torch's
    assert export_tuned(staging, "onnx", test.texts[:16], long_text=PREDICT_LONG_TEXT, max_length=64,
                        layers=layers) == ("onnx", "none")
    meta = exported.read_meta(staging / "exports" / "onnx-none")
    assert meta["layers"] == [4, 6] and meta["probes"][-1]["median"] > 0.9999
    enc = get_encoder(f"st:{staging}", backend="onnx", long_text=PREDICT_LONG_TEXT, work_dir=tmp_path / "unused",
                      layers=layers, max_length=64)
    bundle = next(iter_fit(sample_budget(pool, 40, seed=0), encoder=enc, cache_dir=tmp_path / "c1"))
    bundle.manifest["encoder"]["options"]["layers"] = layers  # as finetune records the pooling it trained through
    path = bundle.save(tmp_path / "bundle", encoder_dir=staging)
    assert not (tmp_path / "unused").exists()  # the bundled export was used, nothing exported to the cache
    loaded = Bundle.load(path, cache_dir=tmp_path / "c2")
    assert loaded.get_encoder().export_dir == path / "encoder" / "exports" / "onnx-none"
    texts = ["A warm, funny and moving film.", "Dull, stale and far too long."]
    expected = bundle.head.predict_proba(enc.encode(texts))[:, 1]
    assert np.allclose(_predict_without_torch(path, texts, tmp_path / "c3"), expected, atol=1e-3)


def test_a_model_saved_by_sentence_transformers_6_reads_as_mean_pooled(tmp_path):
    """sentence-transformers 6 (what saves a tuned model here) names its pooling mode in one key."""
    import json

    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.base.modules.normalize.Normalize"}]
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 384, "pooling_mode": "mean"}))
    config = exported._st_config(tmp_path)
    assert config["pooling"] == "mean" and config["normalize"]
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "max"}))
    with pytest.raises(OptionError, match="pooling"):
        exported._st_config(tmp_path)


def test_running_an_openvino_export_skips_the_converter_until_an_export_needs_it():
    """A cold predict imports openvino without openvino.tools.ovc (its converter, about 0.17 s); convert_model
    still works after it."""
    code = ("import sys; from pipeline.encoders.onnx import OVC, runtime_openvino; ov = runtime_openvino(); "
            "assert OVC not in sys.modules and ov.Core; assert callable(ov.convert_model) and OVC in sys.modules; "
            "assert runtime_openvino() is ov; print('ok')")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_cache_rm_removes_the_exports_no_store_left_runs(cache_dir, onnx_fp32, onnx_int8, texts, glove, tmp_path):
    """A copy of the module's two ONNX exports: stores of MiniLM onnx fp32, onnx int8 (quantized from the fp32
    export) and GloVe. Removing the int8 store removes its export and keeps the fp32 one the fp32 store runs;
    removing that one too removes the fp32 export; GloVe (no export) stays."""
    import shutil

    from pipeline.store.cache import EmbeddingCache, list_stores

    work = tmp_path / "cache"
    for made in (onnx_fp32, onnx_int8):  # only these two: the module's other tests leave OpenVINO exports beside them
        shutil.copytree(made.export_dir, work / exported.EXPORTS_DIR / made.export_dir.name)
    cache = EmbeddingCache(work, progress=False)
    fp32 = get_encoder("minilm", backend="onnx", work_dir=work)
    int8 = get_encoder("minilm", backend="onnx", quantize="int8", work_dir=work)
    for encoder in (fp32, int8, glove):
        cache.vectors(encoder, texts)

    def rm(fingerprint):
        result = CliRunner().invoke(main, ["cache", "rm", fingerprint, "--cache-dir", str(work)])
        assert result.exit_code == 0, result.output
        return result.output

    out = rm(int8.fingerprint)
    assert f"removed exports/{int8.export_dir.name} (" in out and "made for the removed encoder alone" in out
    assert not int8.export_dir.exists() and fp32.export_dir.is_dir()
    out = rm(fp32.fingerprint)
    assert f"removed exports/{fp32.export_dir.name} (" in out and list((work / exported.EXPORTS_DIR).iterdir()) == []
    assert [s.fingerprint for s in list_stores(work)] == [glove.fingerprint]
