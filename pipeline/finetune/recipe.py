"""Fine-tuning settings: each method's default :class:`Recipe`, their checks, the epoch count chosen
from the data size, and the validation slice held out of the budget."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.data.dataset import Dataset
from pipeline.encoders.spec import EncoderSpec, parse_spec

METHODS = ("head", "setfit")
ONLY_FOR = {  # settings that belong to one method
    "head": ("head_type", "head_lr", "val_fraction", "patience", "prompt_prior"),
    "setfit": ("num_iterations", "max_pairs"),
}
AUTO_EPOCHS = (3, 10)  # head: fewest and most epochs when ``epochs`` is left to the data...
AUTO_MIN_UPDATES = 120  # ...chosen to give at least this many optimizer updates
MIN_VAL_PER_CLASS = 1  # the validation slice needs at least this many texts of each class...
MIN_FIT_PER_CLASS = 2  # ...and must leave this many of each class to train on


@dataclass(frozen=True)
class Recipe:
    """Hyperparameters of one fine-tuning run; fields a method does not use are ``None``."""

    method: str
    epochs: int | None  # None: by the data size, see :func:`auto_epochs`
    lr: float  # body (encoder) learning rate
    batch_size: int
    max_length: int  # tokens per text; longer texts are truncated (also when predicting)
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    head_type: str | None = None  # head: linear | mlp
    head_lr: float | None = None  # head: learning rate of the new head
    # head: share of the budget held out for early stopping. 0 (default) trains on every label: on RT,
    # 73.8 vs 72.1% at 128 labels and 78.4 vs 77.7% at 1,000 against 0.15 (3 seeds, bench_finetune)
    val_fraction: float | None = None
    patience: int | None = None  # head: epochs without a better validation score before stopping
    # head (linear): start from the default head on the frozen vectors (logreg, its C chosen by cross-validation,
    # with the prompt prior) instead of a plain logreg at C=1
    prompt_prior: bool | None = None
    # keep the word-embedding matrix as it is: a multilingual model's languages share it, so labels in one language
    # cannot move the others' rows; e5 trained 2.5 times faster at the same accuracy (docs/benchmarks/finetune.md)
    freeze_embeddings: bool = False
    num_iterations: int | None = None  # setfit: positive (and as many negative) pairs per text
    max_pairs: int | None = None  # setfit: cap on the number of pairs, bounding the time


@dataclass(frozen=True)
class Runtime:
    """Where and how a fine-tuning run executes; nothing here changes what it learns except precision."""

    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 (auto: the spec's precision option, else by device)
    cache_dir: str | Path | None = None  # work files (the unpacked mpnet, exports) and the bundle's cache
    checkpoint_dir: str | Path | None = None  # default: beside the bundle, ``<out>.ckpt``
    progress: bool = True
    export: str | None = None  # "onnx": also save the tuned encoder as ONNX in the bundle


DEFAULT_RECIPES = {
    "head": Recipe(
        "head", epochs=None, lr=3e-5, batch_size=16, max_length=64,
        head_type="linear", head_lr=1e-3, val_fraction=0.0, patience=2, prompt_prior=False,
    ),
    "setfit": Recipe("setfit", epochs=1, lr=2e-5, batch_size=16, max_length=64, num_iterations=20, max_pairs=10_000),
}
_CHECKS = {  # field -> (test, what it must be)
    "epochs": (lambda v: v >= 1, "at least 1"),
    "lr": (lambda v: v > 0, "above 0"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "max_length": (lambda v: v >= 8, "at least 8"),
    "grad_accum": (lambda v: v >= 1, "at least 1"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "weight_decay": (lambda v: v >= 0, "at least 0"),
    "head_type": (lambda v: v in ("linear", "mlp"), "'linear' or 'mlp'"),
    "head_lr": (lambda v: v > 0, "above 0"),
    "val_fraction": (lambda v: 0 <= v <= 0.5, "between 0 and 0.5"),
    "patience": (lambda v: v >= 1, "at least 1"),
    "num_iterations": (lambda v: v >= 1, "at least 1"),
    "max_pairs": (lambda v: v >= 2, "at least 2"),
}


def make_recipe(method: str, **overrides: Any) -> Recipe:
    """The default :class:`Recipe` of ``method`` with the non-``None`` ``overrides`` applied and checked."""
    if method not in DEFAULT_RECIPES:
        raise OptionError(f"unknown fine-tuning method {method!r}; use one of {', '.join(METHODS)}.")
    base = DEFAULT_RECIPES[method]
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(asdict(base)))
    if unknown:
        raise TypeError(f"unknown fine-tuning setting(s) {unknown}.")
    unused = sorted(k for other, keys in ONLY_FOR.items() if other != method for k in keys if k in given)
    if unused:
        raise OptionError(f"setting(s) {unused} do not apply to method {method!r}.")
    recipe = replace(base, **given)
    for name, (ok, must) in _CHECKS.items():
        value = getattr(recipe, name)
        if value is not None and not ok(value):
            raise OptionError(f"{name} must be {must}, got {value!r}.")
    return recipe


def recipe_for(encoder: str | EncoderSpec, method: str = "head", **overrides: Any) -> Recipe:
    """:func:`make_recipe` for fine-tuning ``encoder``: a ``max_length`` the overrides leave unset comes from
    the spec's own option (``minilm[max_length=128]``), so flags win over spec options."""
    if overrides.get("max_length") is None:
        overrides["max_length"] = parse_spec(encoder).kwargs.get("max_length")
    return make_recipe(method, **overrides)


def auto_epochs(n_train: int, batch_size: int, grad_accum: int = 1) -> int:
    """Epochs giving at least :data:`AUTO_MIN_UPDATES` optimizer updates, within :data:`AUTO_EPOCHS`:
    small budgets get more passes (10 at 128 labels), large ones fewer (3 at 1,000)."""
    updates_per_epoch = math.ceil(math.ceil(n_train / batch_size) / grad_accum)
    low, high = AUTO_EPOCHS
    return min(high, max(low, math.ceil(AUTO_MIN_UPDATES / updates_per_epoch)))


def holdout(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """(fit, validation): a stratified, seeded ``fraction`` of ``train`` held out, or ``(train, None)``
    when the fraction is 0 or the classes are too small to spare a text."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(train.labels, minlength=2)
    n_val = round(len(train) * fraction)
    if fraction == 0 or n_val < 2 or counts.min() < MIN_VAL_PER_CLASS + MIN_FIT_PER_CLASS:
        return train, None
    fit_idx, val_idx = train_test_split(
        np.arange(len(train)), test_size=n_val, stratify=train.labels, random_state=seed
    )
    return train.subset(np.sort(fit_idx)), train.subset(np.sort(val_idx))
