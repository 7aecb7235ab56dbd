"""How a static int8 export (``quantize=int8-static``) is calibrated: its texts, their batches, its SmoothQuant.

Static post-training quantization fixes each activation's int8 scale from the ranges seen on a
calibration set: :data:`CALIBRATION_TEXTS` texts of Rotten Tomatoes' pool (never its test split), drawn
with a fixed seed, tokenized by the export's own tokenizer and cut into batches of
:data:`CALIBRATION_BATCH`. Before that, SmoothQuant moves part of each activation's outliers into the
next weights; its alpha (how much) is what the recipes differ in:

==========  ===============================================================================================
``rt-a75``  alpha 0.75, the default of a layer-mean export (``layers=A-B``, the default encoder's): its
            probe against torch fp32 holds median cosine 0.995 on 18-, 92- and 253-word RT validation
            texts, at the accuracy of ``rt-a95`` on validation data (docs/benchmarks/speed.md)
``rt-a95``  alpha 0.95, NNCF's default for transformers, the default of other exports: the only recipe
            before ``rt-a75``. On the default encoder its median cosine falls from 0.992 (short texts) to
            0.989 (long), under the guard's 0.99. Plain mpnet under ``rt-a75`` passes on long texts too, but
            lost up to 0.4 points on RT validation, so it keeps ``rt-a95`` unless the spec names ``rt-a75``
==========  ===============================================================================================

A recipe goes into the export's cache key, and its name and the sha256 of its texts into the export's
metadata (and so into the encoder fingerprint): another recipe is another export. A bundle records the
recipe in its encoder options; one recorded without it was calibrated by ``rt-a95``
(:func:`pipeline.bundle.manifest.as_recorded`).
numpy and ``tokenizers`` only.
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
SMOOTH_QUANT_ALPHA = {"rt-a75": 0.75, "rt-a95": 0.95}  # recipe -> SmoothQuant alpha of MatMuls
DEFAULT_RECIPE = "rt-a75"  # of a layer-mean export (default_recipe)
LEGACY_RECIPE = "rt-a95"  # the only recipe before rt-a75: what a static int8 bundle without one used


def default_recipe(layers: tuple[int, int] | None) -> str:
    """The recipe a static int8 export gets when none is named: ``rt-a75`` for a layer mean, else ``rt-a95``."""
    return DEFAULT_RECIPE if layers else LEGACY_RECIPE


def recipe(name: str = DEFAULT_RECIPE) -> dict[str, Any]:
    """How the calibration of recipe ``name`` is done (part of the export's cache key)."""
    return _named({"source": "rt pool", "texts": CALIBRATION_TEXTS, "seed": CALIBRATION_SEED,
                   "batch": CALIBRATION_BATCH}, name)


def _named(record: dict[str, Any], name: str) -> dict[str, Any]:
    """``record`` with recipe ``name`` and its alpha; ``rt-a95``'s as it was before recipes had names, so the
    keys and fingerprints of the exports already made hold. OptionError for an unknown recipe."""
    alpha = smooth_quant_alpha(name)
    return record if name == LEGACY_RECIPE else {**record, "recipe": name, "smooth_quant_alpha": alpha}


def smooth_quant_alpha(name: str) -> float:
    """SmoothQuant's alpha for MatMuls under recipe ``name``; OptionError naming the recipes if unknown."""
    if name not in SMOOTH_QUANT_ALPHA:
        from pipeline import OptionError

        raise OptionError(f"unknown calibration {name!r}; use one of {', '.join(SMOOTH_QUANT_ALPHA)}.")
    return SMOOTH_QUANT_ALPHA[name]


def calibration_texts(name: str = DEFAULT_RECIPE) -> tuple[list[str], dict[str, Any]]:
    """``(texts, record)``: the calibration texts and what identifies them (source, count, seed, sha256; and,
    but for ``rt-a95``, the recipe and its alpha)."""
    from pipeline.data.dataset import load, split

    smooth_quant_alpha(name)  # an unknown recipe fails before RT is read
    pool, _ = split(load("rt"))
    pick = np.random.default_rng(CALIBRATION_SEED).choice(len(pool.texts), CALIBRATION_TEXTS, replace=False)
    texts = [pool.texts[i] for i in pick]
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    return texts, _named({"source": "rt pool", "texts": len(texts), "seed": CALIBRATION_SEED, "sha256": digest}, name)


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


def versions_tag(record: dict[str, Any]) -> str:
    """What the export's versions (and so the fingerprint) say was calibrated: ``calibration=rt-a75:SHA``
    (``calibration=SHA`` for ``rt-a95``, as its exports always said)."""
    name = record.get("recipe")
    return f"calibration={name}:{record['sha256']}" if name else f"calibration={record['sha256']}"
