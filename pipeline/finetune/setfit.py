"""Method ``setfit``: contrastive fine-tuning on pairs drawn from the labels, then logistic regression.

SetFit's recipe (Tunstall et al. 2022) with its own pieces: pairs come from ``setfit``'s
``ContrastiveDataset`` (``num_iterations`` positive and as many negative pairs per labelled text), the
body learns with sentence-transformers' ``CosineSimilarityLoss`` (cosine 1 for same-label pairs, 0
otherwise), and a ``LogisticRegression`` is fitted on the tuned embeddings of all labelled texts.
The pair stage runs in this package's resumable loop rather than ``setfit.Trainer``, whose embedding
phase cannot resume from a checkpoint. Imported only when fine-tuning runs (it imports torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pipeline import MissingExtraError
from pipeline.finetune.batching import length_batches, token_lengths
from pipeline.finetune.body import embed, features
from pipeline.finetune.checkpoint import CheckpointStore
from pipeline.finetune.loop import LoopResult, LoopSettings, run_loop
from pipeline.finetune.recipe import Recipe


def contrastive_pairs(labels: np.ndarray, num_iterations: int, max_pairs: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SetFit's pairs as ``(left rows, right rows, target cosine)``, alternating positive and negative,
    at most ``max_pairs`` of them."""
    try:
        from setfit.sampler import ContrastiveDataset
    except ImportError:
        raise MissingExtraError("method 'setfit' needs the setfit package: pip install 'review-transfer[setfit]'") from None
    rows = list(range(len(labels)))
    limit = -1 if max_pairs is None else max_pairs
    pairs = list(ContrastiveDataset(rows, np.asarray(labels).tolist(), False, num_iterations, max_pairs=limit))
    pairs = pairs if max_pairs is None else pairs[:max_pairs]
    left = np.array([p["sentence_1"] for p in pairs], dtype=np.int64)
    right = np.array([p["sentence_2"] for p in pairs], dtype=np.int64)
    return left, right, np.array([p["label"] for p in pairs], dtype=np.float32)


def train_setfit(
    body: Any,
    texts: Sequence[str],
    labels: np.ndarray,
    *,
    recipe: Recipe,
    seed: int,
    settings: LoopSettings,
    store: CheckpointStore | None,
) -> tuple[Any, LoopResult, int]:
    """Contrastively fine-tune ``body`` in place on ``recipe``'s pairs (``num_iterations``, ``max_pairs``) at its
    ``lr`` and ``batch_size``, then fit the logistic-regression head.

    Returns the head as a fitted scikit-learn ``Pipeline`` over the tuned embeddings, the loop's
    result and the number of pairs trained on.
    """
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    torch.manual_seed(seed)
    device = settings.device
    texts = list(texts)
    left, right, target = contrastive_pairs(labels, recipe.num_iterations, recipe.max_pairs)
    lengths = token_lengths(body, texts)
    pair_lengths = np.maximum(lengths[left], lengths[right])
    loss = CosineSimilarityLoss(body)
    target_t = torch.as_tensor(target)

    def loss_fn(idx: np.ndarray) -> torch.Tensor:
        inputs = [features(body, [texts[i] for i in side[idx]], device) for side in (left, right)]
        return loss(inputs, target_t[idx].to(device))

    result = run_loop(
        body, [{"params": list(body.parameters()), "lr": recipe.lr}],
        lambda epoch: length_batches(pair_lengths, recipe.batch_size, seed, epoch), loss_fn, settings, store,
    )
    X = embed(body, texts, device=device, precision=settings.precision)
    clf = LogisticRegression(max_iter=1000).fit(X, np.asarray(labels))
    return Pipeline([("clf", clf)]), result, len(target)
