"""Domain-adaptive pretraining: continue training a sentence encoder on unlabelled texts alone.

Three objectives, all offline (the decoder or MLM head is built from the packaged weights):

- ``tsdae`` — a denoising auto-encoder (Wang et al. 2021): 60% of each text's words are deleted, the
  encoder embeds the rest and a decoder, tied to the encoder's weights with new cross-attention,
  rebuilds the original text from that one vector.
- ``simcse`` — unsupervised SimCSE (Gao et al. 2021): each text embedded twice with different dropout is
  its own positive; the other texts of the batch are negatives.
- ``mlm`` — masked-language modelling: 15% of word pieces are masked and predicted by a BERT MLM head
  whose decoder is tied to the word embeddings (its transform layer starts untrained).

The result is a sentence-transformers directory in ``<cache>/adapted/<fingerprint>/`` (usable as
``st:DIR``). The fingerprint hashes the base model's identity, the recipe (method, epochs, learning
rate, batch size, max length, seed) and the corpus, so the same run is trained once and reused, and a
different corpus gives a different model. Training checkpoints into ``<fingerprint>.ckpt`` (after
every epoch and every ``checkpoint_seconds``), so a killed run continues where it stopped.
torch is imported only when training runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.finetune.loop import LoopSettings
from pipeline.unlabelled.choices import DEFAULT_METHOD, METHODS

RECORD = "adapt.json"
TSDAE_DELETE = 0.6  # share of words deleted from a text before encoding it
MLM_MASK = 0.15  # share of word pieces masked
SIMCSE_SCALE = 20.0  # inverse temperature of SimCSE's in-batch cross-entropy (0.05)
logger = logging.getLogger("pipeline.finetune")


@dataclass(frozen=True)
class AdaptRecipe:
    """Settings of one adaptation run (all of them enter the fingerprint)."""

    method: str = DEFAULT_METHOD
    epochs: int = 1
    lr: float = 3e-5
    batch_size: int = 16
    max_length: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise OptionError(f"unknown adaptation method {self.method!r}; use one of {', '.join(METHODS)}.")
        if self.epochs < 1 or self.batch_size < 2 or self.max_length < 8 or self.lr <= 0:
            raise OptionError("adapt needs epochs >= 1, batch size >= 2, max length >= 8 and a learning rate > 0.")


@dataclass(frozen=True)
class Adapted:
    """An adapted encoder: its directory (``st:`` + path), fingerprint, and whether it came from the cache."""

    path: Path
    fingerprint: str
    cached: bool
    record: dict[str, Any]

    @property
    def spec(self) -> str:
        return f"st:{self.path}"


def corpus_hash(texts: list[str]) -> str:
    """sha256 of the corpus: its texts in order."""
    from pipeline.data.unlabelled import texts_hash

    return texts_hash(texts)


def fingerprint(base_identity: str, recipe: AdaptRecipe, corpus: str) -> str:
    """16 hex digits identifying an adapted encoder: base model, recipe and corpus hash."""
    key = json.dumps({"base": base_identity, "recipe": asdict(recipe), "corpus": corpus}, sort_keys=True)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def adapt(
    texts: list[str],
    *,
    encoder: str = "minilm",
    recipe: AdaptRecipe = AdaptRecipe(),
    cache_dir: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = True,
    checkpoint_seconds: float = 300.0,
) -> Adapted:
    """Adapt ``encoder`` to ``texts`` with ``recipe``, or return the cached result of the same run."""
    from pipeline.paths import cache_dir_or_default
    from pipeline.finetune.body import finetunable

    if not finetunable(encoder):
        raise OptionError(f"adapt needs a transformer encoder (minilm, mpnet, st:DIR, hf:DIR); got {encoder!r}.")
    if len(texts) < recipe.batch_size:
        raise OptionError(f"adapt needs at least {recipe.batch_size} unlabelled texts (one batch); got {len(texts)}.")
    root = cache_dir_or_default(cache_dir) / "adapted"
    fp = fingerprint(_base_identity(encoder, root.parent), recipe, corpus_hash(texts))
    final = root / fp
    if (final / RECORD).is_file():
        return Adapted(final, fp, True, json.loads((final / RECORD).read_text(encoding="utf-8")))
    start = time.perf_counter()
    body, history, resumed = _train(texts, encoder, recipe, root, fp, LoopSettings(
        epochs=recipe.epochs, device=device, precision=precision, progress=progress,
        checkpoint_seconds=checkpoint_seconds))
    record = {"fingerprint": fp, "base_encoder": encoder, "recipe": asdict(recipe), "corpus_hash": corpus_hash(texts),
              "corpus_size": len(texts), "history": history, "resumed_from": resumed,
              "seconds": round(time.perf_counter() - start, 1)}
    _save(body, record, final)
    shutil.rmtree(root / f"{fp}.ckpt", ignore_errors=True)
    return Adapted(final, fp, False, record)


def copy_to(adapted: Adapted, out: str | Path) -> Path:
    """Copy the adapted model directory to ``out`` atomically; an ``out`` that already holds this
    fingerprint is left as is, any other existing non-empty directory is refused."""
    out = Path(out)
    record = out / RECORD
    if record.is_file() and json.loads(record.read_text(encoding="utf-8")).get("fingerprint") == adapted.fingerprint:
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OptionError(f"{out} exists and is not this adapted model; refusing to overwrite it. Choose another --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(adapted.path, tmp)
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return out


def _base_identity(encoder: str, work_dir: Path) -> str:
    """The content identity of the base model's weights (as the encoder registry computes it)."""
    from pipeline.encoders import models

    kind, _, name = encoder.partition(":")
    if encoder == "minilm":
        return models.minilm()[1]
    if encoder == "mpnet":
        return models.mpnet(work_dir)[1]
    return f"{kind}:" + models.local_or_hub(name, encoder)[1]


def _save(body: Any, record: dict[str, Any], final: Path) -> None:
    """Write the model and its record to a temporary sibling, then rename it into place."""
    from pipeline.finetune.body import save_body

    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_body(body, tmp)
    (tmp / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if final.exists():  # another process finished the same run first
        shutil.rmtree(tmp)
        return
    os.replace(tmp, final)


def _train(texts: list[str], encoder: str, recipe: AdaptRecipe, root: Path, fp: str,
           settings: LoopSettings) -> tuple[Any, list[dict[str, Any]], str | None]:
    """Run the recipe's objective over ``texts`` as ``settings`` say, on their device and precision once resolved
    (``auto``), resuming a checkpoint of the same fingerprint."""
    import torch

    from pipeline.finetune.batching import length_batches, token_lengths
    from pipeline.finetune.body import load_body, resolve_runtime
    from pipeline.finetune.checkpoint import CheckpointStore
    from pipeline.finetune.loop import run_loop

    device, precision = resolve_runtime(settings.device, settings.precision)
    settings = replace(settings, device=device, precision=precision)
    torch.manual_seed(recipe.seed)
    body = load_body(encoder, max_length=recipe.max_length, device=device, work_dir=root.parent)
    model, loss_fn = OBJECTIVES[recipe.method](body, texts, recipe, device)
    lengths = token_lengths(body, texts)
    logger.info("adapting %s by %s on %d unlabelled texts (%s %s)", encoder, recipe.method, len(texts), device, precision)
    result = run_loop(
        model, [{"params": [p for p in model.parameters() if p.requires_grad], "lr": recipe.lr}],
        lambda epoch: [(epoch, b) for b in length_batches(lengths, recipe.batch_size, recipe.seed, epoch)],
        loss_fn, settings, CheckpointStore(root / f"{fp}.ckpt", fp),
    )
    return body, result.history, result.resumed_from


# ---------------------------------------------------------------------------------------------- objectives
def _tsdae(body: Any, texts: list[str], recipe: AdaptRecipe, device: str) -> tuple[Any, Any]:
    """TSDAE: the loss module (encoder + tied decoder) and a loss over a batch of noisy/original texts."""
    import warnings

    from sentence_transformers.sentence_transformer.losses import DenoisingAutoEncoderLoss

    from pipeline.finetune.body import features

    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report lists the new cross-attention weights: expected here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = DenoisingAutoEncoderLoss(body, tie_encoder_decoder=True).to(device)
    finally:
        hf_logging.set_verbosity(verbosity)

    def loss_fn(batch: tuple[int, np.ndarray]) -> Any:
        epoch, idx = batch
        noisy = [_delete_words(texts[i], np.random.default_rng([recipe.seed, epoch, int(i)])) for i in idx]
        return model([features(body, noisy, device), features(body, [texts[i] for i in idx], device)], None)

    return model, loss_fn


def _delete_words(text: str, rng: np.random.Generator) -> str:
    """``text`` with :data:`TSDAE_DELETE` of its words deleted at random (at least one kept)."""
    words = text.split()
    keep = rng.random(len(words)) >= TSDAE_DELETE
    if not keep.any():
        keep[rng.integers(len(words))] = True
    return " ".join(w for w, k in zip(words, keep) if k)


def _simcse(body: Any, texts: list[str], recipe: AdaptRecipe, device: str) -> tuple[Any, Any]:
    """Unsupervised SimCSE: the body itself and an in-batch contrastive loss of two dropout views."""
    import torch
    from torch import nn

    from pipeline.finetune.body import features

    def loss_fn(batch: tuple[int, np.ndarray]) -> Any:
        inputs = features(body, [texts[i] for i in batch[1]], device)
        a = nn.functional.normalize(body(dict(inputs))["sentence_embedding"].float(), dim=-1)
        b = nn.functional.normalize(body(dict(inputs))["sentence_embedding"].float(), dim=-1)
        return nn.functional.cross_entropy(SIMCSE_SCALE * a @ b.T, torch.arange(len(a), device=a.device))

    return body, loss_fn


def _mlm(body: Any, texts: list[str], recipe: AdaptRecipe, device: str) -> tuple[Any, Any]:
    """Masked-language modelling: a BERT MLM head on the body's transformer (decoder tied to the word
    embeddings) and the loss of predicting :data:`MLM_MASK` masked word pieces."""
    import warnings

    import torch
    from transformers import AutoModelForMaskedLM

    from pipeline.finetune.body import features

    transformer = body.transformers_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForMaskedLM.from_config(transformer.config)
    setattr(model, model.base_model_prefix, transformer)  # train the body's own weights
    model.tie_weights()
    model.to(device)
    tokenizer = body.tokenizer
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))

    def loss_fn(batch: tuple[int, np.ndarray]) -> Any:
        epoch, idx = batch
        inputs = features(body, [texts[i] for i in idx], device)
        ids = inputs["input_ids"]
        generator = torch.Generator().manual_seed(int(np.random.default_rng([recipe.seed, epoch, int(idx[0])]).integers(2**31)))
        chosen = (torch.rand(ids.shape, generator=generator) < MLM_MASK).to(ids.device)
        chosen &= ~torch.isin(ids, special.to(ids.device))
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        masked = torch.where(chosen, torch.full_like(ids, tokenizer.mask_token_id), ids)
        out = model(input_ids=masked, attention_mask=inputs["attention_mask"], labels=labels)
        return out.loss

    return model, loss_fn


OBJECTIVES = {"tsdae": _tsdae, "simcse": _simcse, "mlm": _mlm}
