"""``backend auto``, the default for frozen transformers: when it applies, what it tries, what it picks and records.

The parsing and ordering tests load no model. The tests marked slow export real MiniLM to OpenVINO
(once for the module, about 30 s on 2 cores) and probe it against torch fp32 on RT texts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.encoders.spec import parse_spec
from pipeline.encoders.auto import (
    INT8_CLEARED, auto_encoder, candidates, chooses_backend, faster, names_backend, wants_auto,
)


def test_only_an_unsaid_backend_on_a_transformer_is_auto():
    assert wants_auto("mpnet", None, None) and wants_auto("minilm[long=truncate]", None, None)
    assert wants_auto("minilm", "auto", None) and wants_auto("minilm", None, "int8")  # --quantize alone: auto among int8
    assert not wants_auto("minilm", "torch", None)  # --backend torch: today's torch vectors
    assert not wants_auto("mpnet[backend=torch]", None, None)  # said in the spec, though parsing drops it
    assert not wants_auto("minilm[quantize=none]", None, None)
    assert not wants_auto("glove-6b-50d", None, None) and not wants_auto("glove-6b-50d[pooling=sif]", "auto", None)
    assert wants_auto("minilm+glove-6b-50d", None, None)
    assert names_backend("glove-6b-50d+minilm[backend=onnx]") and not names_backend("minilm+glove-6b-50d")


def test_the_probe_line_says_which_runtime_ran_faster():
    """The picked runtime's speed over torch's reads as which one was faster, never as '0.8x its speed'."""
    assert faster("openvino int8", "torch fp32", 1.43) == "1.4x faster than torch fp32"
    slower = faster("openvino int8", "torch fp32", 0.8)
    assert slower.startswith("torch fp32 ran 1.2x faster than openvino int8") and "fixed order" in slower
    assert faster("openvino int8", "torch fp32", 0.99) == "as fast as torch fp32"


def test_a_command_chooses_the_backend_under_auto_or_an_asked_export():
    assert chooses_backend("mpnet", None, None) and chooses_backend("minilm", "onnx", None)
    assert not chooses_backend("minilm", "torch", None) and not chooses_backend("glove-6b-50d", None, None)


def test_int8_is_tried_unasked_only_where_its_accuracy_was_measured():
    assert candidates("mpnet") == [("openvino", "int8-static"), ("openvino", "int8"), ("openvino", "none"), ("onnx", "none")]
    assert ("minilm", "openvino") in INT8_CLEARED and ("minilm", "onnx") not in INT8_CLEARED
    assert candidates("st:/models/mine") == [("openvino", "none"), ("onnx", "none")]  # no measured int8: fp32 only
    assert candidates("minilm+st:/models/mine") == [("openvino", "none"), ("onnx", "none")]
    assert candidates("st:/models/mine", "int8") == [("openvino", "int8"), ("onnx", "int8")]  # asked: both, guarded
    assert candidates("minilm", "none") == [("openvino", "none"), ("onnx", "none")]


def test_word_vectors_never_try_a_backend(tmp_path):
    encoder, lines = auto_encoder("glove-6b-50d", ["a fine film"], {"work_dir": tmp_path})
    assert encoder.spec == "glove-6b-50d" and lines == [] and candidates("glove-6b-50d") == []


# ---------------------------------------------------------------------------------------------- real exports
@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("auto-cache")


@pytest.fixture(scope="module")
def texts(rt_split) -> list[str]:
    return rt_split[1].texts[:48]


@pytest.mark.slow
def test_auto_runs_openvino_int8_minilm_and_reuses_its_probe(cache_dir, texts, monkeypatch):
    pytest.importorskip("openvino")
    encoder, lines = auto_encoder("minilm", texts, {"work_dir": cache_dir})
    assert (encoder.backend, encoder.quantize) == ("openvino", "int8")
    assert lines[-1].startswith("minilm: backend auto runs openvino int8: median cosine 0.99")
    assert f"to torch fp32 on {len(texts)} of your texts" in lines[-1]
    # which runtime was faster is the machine's timing (faster() is tested on fixed ratios above): one of its forms
    assert any(form in lines[-1] for form in ("x faster than torch fp32 there", "as fast as torch fp32 there",
                                              "torch fp32 ran "))

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again: the recorded probe of the same texts should be reused")

    monkeypatch.setattr("pipeline.encoders.probe.probe", no_probe)
    again, _ = auto_encoder("minilm", texts, {"work_dir": cache_dir})
    assert again.fingerprint == encoder.fingerprint and again.export_dir == encoder.export_dir


@pytest.mark.slow
def test_a_refused_candidate_falls_through_to_fp32(cache_dir, texts, monkeypatch):
    pytest.importorskip("openvino")
    encoder, lines = auto_encoder("minilm", texts, {"work_dir": cache_dir}, min_median=0.99999)
    chosen = (getattr(encoder, "backend", "torch"), getattr(encoder, "quantize", "none"))
    assert chosen == ("openvino", "none"), lines  # int8 refused, f32 matches torch
    assert lines[0].startswith("  openvino int8: refused (median cosine")


def test_every_encoding_command_has_the_one_default_encoder(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main
    from pipeline.encoders.spec import DEFAULT_ENCODER

    missing = tmp_path / "missing.csv"
    for command in (["embed"], ["compare"], ["fit"], ["suggest"], ["label", "--labels", str(tmp_path / "l.jsonl")]):
        result = CliRunner().invoke(main, [command[0], str(missing), *command[1:]])
        assert result.exit_code == 1 and "missing.csv: no such file" in result.output, (command, result.output)
        shown = CliRunner().invoke(main, [command[0], "--help"]).output
        assert DEFAULT_ENCODER in shown and "--backend" in shown or command[0] in ("suggest", "label")


def test_the_choice_never_depends_on_a_timing(tmp_path, monkeypatch):
    """A probe that found the export 100x slower than torch (a busy machine) changes nothing: the first
    candidate whose cosine passes runs, so the fingerprint and the cache are the same on any load."""
    from types import SimpleNamespace

    from pipeline.encoders.probe import Probe

    def slow_probe(encoder, texts, min_median, **_):
        return Probe(texts=len(texts), sample="0" * 16, min=0.999, median=0.9995, texts_per_s=1.0,
                     reference_texts_per_s=100.0)

    def export(spec, **options):  # no model loads: what is under test is the choice
        return SimpleNamespace(spec=spec, backend=options["backend"], quantize=options["quantize"])

    monkeypatch.setattr("pipeline.encoders.auto.guard", slow_probe)
    monkeypatch.setattr("pipeline.encoders.get_encoder", export)
    encoder, lines = auto_encoder("minilm", ["a fine film", "a dull one"], {"work_dir": tmp_path})
    assert (encoder.backend, encoder.quantize) == ("openvino", "int8"), lines
    assert lines[-1].startswith("minilm: backend auto runs openvino int8: median cosine 0.9995")


def test_each_part_of_a_stack_or_route_runs_what_it_runs_alone(tmp_path, monkeypatch):
    """In ``mpnet[layers=9-12]+multilingual|multilingual`` mpnet runs its static int8 export, as alone (the default
    encoder's vectors, fingerprint and cache), and e5 its int8-weights export; a word-vector part gets nothing."""
    from types import SimpleNamespace

    built = []

    def export(spec, **options):  # no model loads: what is under test is each part's choice
        built.append(str(spec))
        return SimpleNamespace(spec=str(spec), backend=options.get("backend"), quantize=options.get("quantize"),
                               parts=options.get("parts"))

    monkeypatch.setattr("pipeline.encoders.auto.guard", lambda encoder, texts, min_median, **_: None)
    monkeypatch.setattr("pipeline.encoders.get_encoder", export)
    spec = "mpnet[layers=9-12]+multilingual|multilingual"
    encoder, lines = auto_encoder(spec, ["a fine film", "一部好电影"], {"work_dir": tmp_path})
    alone = [auto_encoder(part, ["a fine film"], {"work_dir": tmp_path})[0] for part in ("mpnet[layers=9-12]", "multilingual-e5")]
    assert encoder.spec == str(parse_spec(spec)) and encoder.parts == [{"backend": a.backend, "quantize": a.quantize} for a in alone]
    assert encoder.parts == [{"backend": "openvino", "quantize": "int8-static"}, {"backend": "openvino", "quantize": "int8"}]
    assert lines[0].startswith("mpnet[layers=9-12]: backend auto runs openvino int8-static"), lines
    encoder, _ = auto_encoder("glove-6b-50d+minilm", ["a fine film"], {"work_dir": tmp_path})
    assert encoder.parts == [{}, {"backend": "openvino", "quantize": "int8"}] and "glove-6b-50d" not in built
    encoder, _ = auto_encoder("multilingual", ["a fine film", "一部好电影"], {"work_dir": tmp_path})  # the routed alias
    assert encoder.spec == "mpnet[layers=9-12]|e5-small-multilingual[prefix=passage]"  # recorded resolved
    assert encoder.parts == [{"backend": "openvino", "quantize": "int8-static"}, {"backend": "openvino", "quantize": "int8"}]


def test_a_routed_side_that_no_text_reaches_is_not_probed(tmp_path, monkeypatch):
    """On Chinese and French reviews alone the default's English side (mpnet) reads none of them: it takes its first
    candidate unprobed (no torch reference on texts it never encodes); e5 is probed as ever."""
    from types import SimpleNamespace

    probed = []
    monkeypatch.setattr("pipeline.encoders.auto.guard", lambda encoder, texts, min_median, **_: probed.append(encoder.spec))
    monkeypatch.setattr("pipeline.encoders.get_encoder", lambda spec, **o: SimpleNamespace(
        spec=str(spec), backend=o.get("backend"), quantize=o.get("quantize"), parts=o.get("parts")))
    texts = ["这本书写得很好，推荐", "Horrible. À éviter.", "Quelle perte de temps, vraiment nul."]
    encoder, lines = auto_encoder("multilingual", texts, {"work_dir": tmp_path})
    assert encoder.parts == [{"backend": "openvino", "quantize": "int8-static"}, {"backend": "openvino", "quantize": "int8"}]
    assert probed == ["e5-small-multilingual[prefix=passage]"], probed
    assert lines[0].startswith("mpnet[layers=9-12]: backend auto takes openvino int8-static unprobed"), lines
    probed.clear()
    auto_encoder("multilingual", texts + ["A dull film."], {"work_dir": tmp_path})  # one English text: both probed
    assert len(probed) == 2
