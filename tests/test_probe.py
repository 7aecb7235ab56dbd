"""``backend=auto``'s choice: the fastest backend whose probe keeps the median cosine, from measured probes."""

from __future__ import annotations

import pytest

from pipeline.encoders.probe import MIN_MEDIAN_COSINE, Probe, ProbeError, choose


def _probe(speed: float, median: float) -> Probe:
    return Probe(texts=256, sample="0" * 16, min=median - 0.02, median=median, texts_per_s=speed,
                 reference_texts_per_s=200.0)


def test_auto_picks_the_fastest_backend_that_passes_the_guard():
    measured = [("onnx", "int8", "onnx/int8", _probe(760, 0.985)),  # fastest, but its median is below 0.99
                ("openvino", "int8", "openvino/int8", _probe(700, 0.9994)),
                ("onnx", "none", "onnx/none", _probe(380, 1.0)),
                ("torch", "none", "torch/none (bf16)", _probe(450, 1.0))]
    backend, quantize, lines = choose("minilm", measured)
    assert (backend, quantize) == ("openvino", "int8")
    assert "refused: median < 0.99" in lines[0] and "refused" not in lines[1]
    assert lines[-1].startswith("backend auto picked openvino/int8: the fastest (700 texts/s on 256 of your texts)")
    # a lower bar lets the int8 export through; a higher one leaves only the exact backends
    assert choose("minilm", measured, min_median=0.98)[:2] == ("onnx", "int8")
    assert choose("minilm", measured, min_median=0.9999)[:2] == ("torch", "none")


def test_where_torch_bf16_is_fastest_auto_keeps_torch():
    """A CPU with AMX/AVX512-BF16: torch at its auto precision (bf16) can outrun the exports."""
    measured = [("onnx", "none", "onnx/none", _probe(380, 1.0)), ("torch", "none", "torch/none (bf16)", _probe(790, 1.0))]
    assert choose("minilm", measured)[:2] == ("torch", "none")


def test_ties_go_to_the_first_measured_and_no_pass_is_an_error():
    measured = [("onnx", "none", "onnx/none", _probe(400, 1.0)), ("torch", "none", "torch/none (fp32)", _probe(400, 1.0))]
    assert choose("minilm", measured)[:2] == ("onnx", "none")
    with pytest.raises(ProbeError, match=f"no backend kept median cosine >= {MIN_MEDIAN_COSINE}") as e:
        choose("minilm", [("onnx", "int8", "onnx/int8", _probe(760, 0.9))])
    assert "onnx/int8: 760 texts/s" in str(e.value)
