"""Method ``head``: a new task head on the pooled sentence embedding, trained end to end.

Linear probing then fine-tuning (LP-FT, Kumar et al. 2022): the head — a logistic regression, or a
one-hidden-layer MLP that gets dropout while fine-tuning — is first fitted with scikit-learn on the
frozen embeddings, copied into torch, and then trained together with the body on binary
cross-entropy, body and head with their own learning rates. Starting from a fitted head gives the
body useful gradients from the first step and keeps the few labels from being spent on the head
alone. Afterwards the head is copied back into the same scikit-learn estimator type, so the bundle
predicts through stage two's code unchanged. Imported only when fine-tuning runs (it imports torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline import OptionError
from pipeline.finetune.batching import length_batches, sorted_batches, token_lengths
from pipeline.finetune.body import EMBED_BATCH, embed, features, sentence_embedding
from pipeline.finetune.checkpoint import CheckpointStore
from pipeline.finetune.loop import LoopResult, LoopSettings, run_loop
from pipeline.finetune.recipe import Recipe

HEAD_TYPES = ("linear", "mlp")
PROBE_C = 1.0  # logistic-regression probe: scikit-learn's default regularisation
MLP_HIDDEN = 256
MLP_ALPHA = 1e-2  # L2 of the MLP probe, as stage two's mlp head default
MLP_DROPOUT = 0.1


class Classifier(nn.Module):
    """Body -> pooled sentence embedding -> head -> one logit per text."""

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body, self.head = body, head

    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        return self.head(sentence_embedding(self.body, inputs)).squeeze(-1)


def train_head(
    body: Any,
    texts: Sequence[str],
    labels: np.ndarray,
    val: tuple[Sequence[str], np.ndarray] | None,
    *,
    recipe: Recipe,
    seed: int,
    settings: LoopSettings,
    store: CheckpointStore | None,
    targets: np.ndarray | None = None,
) -> tuple[Any, LoopResult, dict[str, float]]:
    """Fine-tune ``body`` with a new head (``recipe``: head type, learning rates, batch size) on ``texts``/``labels`` (early stopping on ``val`` when given);
    with ``targets`` (probabilities of the positive class, one per text), the loss aims at those instead
    of the 0/1 labels, which the probe still fits (distillation).

    Returns the head as a fitted scikit-learn ``Pipeline`` over the tuned body's embeddings, the
    loop's result, and the probe's loss and accuracy on ``texts`` (the starting point). ``body`` is
    trained in place.
    """
    from sklearn.metrics import log_loss

    head_type, lr, head_lr, batch_size = recipe.head_type, recipe.lr, recipe.head_lr, recipe.batch_size
    device = settings.device
    texts, labels = list(texts), np.asarray(labels)
    frozen = embed(body, texts, device=device, precision=settings.precision)
    probe = prompted_probe(body, frozen, labels, seed, settings) if recipe.prompt_prior and head_type == "linear" \
        else fit_probe(head_type, frozen, labels, seed)
    start = {"train_loss": float(log_loss(labels, probe.predict_proba(frozen))), "train_accuracy": probe.score(frozen, labels)}
    torch.manual_seed(seed)
    model = Classifier(body, to_torch(probe)).to(device)
    y = torch.as_tensor(labels if targets is None else targets, dtype=torch.float32)
    lengths = token_lengths(body, texts)

    def loss_fn(idx: np.ndarray) -> torch.Tensor:
        logits = model(features(body, [texts[i] for i in idx], device)).float()
        return nn.functional.binary_cross_entropy_with_logits(logits, y[idx].to(device))

    def validate() -> dict[str, float]:
        return _validate(model, val[0], val[1], settings)

    groups = [
        {"params": list(model.body.parameters()), "lr": lr},
        {"params": list(model.head.parameters()), "lr": head_lr},
    ]
    result = run_loop(
        model, groups, lambda epoch: length_batches(lengths, batch_size, seed, epoch), loss_fn, settings, store,
        validate if val is not None else None,
    )
    return to_sklearn(model.head), result, start


def fit_probe(head_type: str, X: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """The head fitted on frozen embeddings: ``LogisticRegression`` (linear) or ``MLPClassifier`` (mlp)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if head_type == "linear":
        clf = LogisticRegression(C=PROBE_C, max_iter=1000)
    elif head_type == "mlp":
        clf = MLPClassifier((MLP_HIDDEN,), alpha=MLP_ALPHA, max_iter=300, random_state=seed)
    else:
        raise OptionError(f"unknown head type {head_type!r}; use one of {', '.join(HEAD_TYPES)}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a rough start is enough: fine-tuning follows
        return clf.fit(X, y)


def prompted_probe(body: Any, X: np.ndarray, y: np.ndarray, seed: int, settings: LoopSettings) -> Any:
    """The default head fitted on frozen embeddings ``X``: logreg, C by cross-validation, with the prompt
    prior (:mod:`pipeline.heads.prompts`, the prompts embedded by ``body``), as a ``LogisticRegression`` on
    the rows as given (the body's rows are unit length, so a leading ``Normalizer`` changes nothing)."""
    from pipeline.heads.prompts import DEFAULT, direction
    from pipeline.heads.registry import FitOptions, fit_head

    if not np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-3):
        return fit_probe("linear", X, y, seed)  # the default head scales unnormalised rows: no linear copy
    u = direction(embed(body, DEFAULT.texts, device=settings.device, precision=settings.precision),
                  len(DEFAULT.positive))
    clf = fit_head("logreg", X, y, FitOptions(seed=seed, prompt_direction=u)).estimator[-1]
    return clf if type(clf).__name__ == "LogisticRegression" else fit_probe("linear", X, y, seed)


def to_torch(clf: Any) -> nn.Module:
    """A torch head computing the logit of a fitted binary ``LogisticRegression`` or ``MLPClassifier``
    (the MLP gains dropout, active only in training)."""
    from sklearn.linear_model import LogisticRegression

    def linear(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
        layer = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        return layer

    if isinstance(clf, LogisticRegression):
        return linear(clf.coef_, clf.intercept_)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    return nn.Sequential(linear(w1.T, b1), nn.ReLU(), nn.Dropout(MLP_DROPOUT), linear(w2.T, b2))


def to_sklearn(head: nn.Module) -> Any:
    """The trained ``head`` as a fitted scikit-learn ``Pipeline([("clf", estimator)])`` with the same
    outputs: a linear head becomes ``LogisticRegression``, the MLP an ``MLPClassifier``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelBinarizer

    classes = np.array([0, 1])
    if isinstance(head, nn.Linear):
        clf = LogisticRegression(C=PROBE_C)
        clf.coef_, clf.intercept_ = _array(head.weight).reshape(1, -1), _array(head.bias).reshape(1)
        clf.n_iter_ = np.array([0], dtype=np.int32)
        n_features = head.in_features
    else:
        first, last = head[0], head[-1]
        clf = MLPClassifier((first.out_features,), alpha=MLP_ALPHA)
        clf.coefs_ = [_array(first.weight).T.copy(), _array(last.weight).T.copy()]
        clf.intercepts_ = [_array(first.bias), _array(last.bias)]
        clf.n_layers_, clf.n_outputs_, clf.out_activation_ = 3, 1, "logistic"
        clf._label_binarizer = LabelBinarizer().fit(classes)
        n_features = first.in_features
    clf.classes_, clf.n_features_in_ = classes, n_features
    return Pipeline([("clf", clf)])


def _validate(model: Classifier, texts: Sequence[str], labels: np.ndarray, settings: LoopSettings) -> dict[str, float]:
    """BCE loss and accuracy of ``model`` on a held-out set."""
    from pipeline.encoders.device import autocast

    texts = list(texts)
    logits = torch.zeros(len(texts))
    model.eval()
    with torch.inference_mode(), autocast(settings.device, settings.precision):
        for idx in sorted_batches(token_lengths(model.body, texts), EMBED_BATCH):
            logits[idx] = model(features(model.body, [texts[i] for i in idx], settings.device)).float().cpu()
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
    accuracy = ((logits > 0).float() == y).float().mean()
    return {"loss": float(loss), "accuracy": float(accuracy)}


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()
