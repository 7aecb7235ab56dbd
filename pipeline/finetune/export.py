"""A tuned encoder's own export, saved inside its bundle (``finetune --export``) and checked against the
tuned torch model's vectors before it is kept.

``onnx``: the fp32 ONNX graph (onnxruntime, no torch when predicting). ``int8``: the frozen default's
runtime, OpenVINO with int8 weights and activations calibrated on RT pool texts (static int8), so a tuned
bundle predicts at the default's speed. A layer-mean encoder (``layers=A-B``) is exported with the mean of
those hidden layers in the graph, as the frozen exports are.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

EXPORTS = {"onnx": ("onnx", "none"), "int8": ("openvino", "int8-static")}  # --export -> (backend, quantize)
logger = logging.getLogger("pipeline.finetune")


def export_tuned(model_dir: Path, export: str, texts: list[str], *, long_text: str, max_length: int,
                 layers: str | None = None) -> tuple[str, str]:
    """Export the tuned sentence-transformers model in ``model_dir`` into itself as ``export`` (see
    :data:`EXPORTS`), pooling hidden ``layers`` (``"A-B"``) when given, and probe it on ``texts`` read in windows
    of ``max_length`` word pieces (the training window, as the tuned torch model reads them).

    Returns the (backend, quantize) the bundle will use: the export's, or ``("torch", "none")`` (export removed,
    with a warning) when its median cosine to the tuned torch fp32 vectors is below the guard's threshold.
    """
    from pipeline.encoders import get_encoder
    from pipeline.encoders.base import layer_span
    from pipeline.encoders.onnx import add_probe, export_into
    from pipeline.encoders.probe import MIN_MEDIAN_COSINE, probe, sample_texts

    backend, quantize = EXPORTS[export]
    target = export_into(model_dir, backend, quantize, layers=layer_span(layers) if layers else None)
    extra = {"layers": layers} if layers else {}
    encoder = get_encoder("st:" + str(model_dir), long_text=long_text, backend=backend, quantize=quantize,
                          max_length=max_length, **extra)
    result = probe(encoder, sample_texts(texts))
    logger.info("%s", result.line(f"tuned encoder exported to {backend} {quantize}"))
    if result.median < MIN_MEDIAN_COSINE:
        logger.warning("the %s %s export of the tuned encoder keeps median cosine %.4f < %s to torch fp32: "
                       "not kept; the bundle runs torch", backend, quantize, result.median, MIN_MEDIAN_COSINE)
        shutil.rmtree(target.parent)
        return "torch", "none"
    add_probe(target, {**result.__dict__, "reference": "torch fp32"})
    return backend, quantize
