"""Calibration inputs of a static int8 export (``quantize=int8-static``): which texts and how they are batched.

Static post-training quantization fixes each activation's int8 scale from the ranges seen on a
calibration set. The set is :data:`CALIBRATION_TEXTS` texts of Rotten Tomatoes' training pool (never its
test split), drawn with a fixed seed, tokenized by the export's own tokenizer and cut into batches of
:data:`CALIBRATION_BATCH`. Its sha256 goes into the export's metadata (and so into the encoder
fingerprint): another calibration set is another export. numpy and ``tokenizers`` only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.encoders.inputs import model_inputs

CALIBRATION_TEXTS = 300
CALIBRATION_SEED = 0
CALIBRATION_BATCH = 8


def recipe() -> dict[str, Any]:
    """How the calibration set is drawn and batched (part of the export's cache key)."""
    return {"source": "rt pool", "texts": CALIBRATION_TEXTS, "seed": CALIBRATION_SEED, "batch": CALIBRATION_BATCH}


def calibration_texts() -> tuple[list[str], dict[str, Any]]:
    """``(texts, record)``: the calibration texts and what identifies them (source, count, seed, sha256)."""
    from pipeline.data.dataset import load, split

    pool, _ = split(load("rt"))
    pick = np.random.default_rng(CALIBRATION_SEED).choice(len(pool.texts), CALIBRATION_TEXTS, replace=False)
    texts = [pool.texts[i] for i in pick]
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    return texts, {"source": "rt pool", "texts": len(texts), "seed": CALIBRATION_SEED, "sha256": digest}


def calibration_inputs(tokenizer_file: Path, meta: dict[str, Any], texts: list[str],
                       batch: int = CALIBRATION_BATCH) -> list[dict[str, np.ndarray]]:
    """``texts`` as model inputs (``input_ids``/``attention_mask``, special tokens added, padded per batch of
    ``batch``), cut at the export's max length as :class:`~pipeline.encoders.onnx.ExportedEncoder` truncates."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_truncation()
    tok.no_padding()
    prefix, suffix = meta["specials"]
    window = int(meta["max_length"]) - len(prefix) - len(suffix)
    rows = [e.ids[:window] for e in tok.encode_batch(texts, add_special_tokens=False)]
    out = []
    for start in range(0, len(rows), batch):
        ids, mask = model_inputs(rows[start : start + batch], meta["specials"], int(meta["pad_id"]))
        out.append({"input_ids": ids, "attention_mask": mask})
    return out
