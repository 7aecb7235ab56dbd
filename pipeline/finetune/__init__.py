"""Optional stage: end-to-end fine-tuning of a sentence encoder, saved as a stage-two model bundle.

Two methods, trained on the same budget samples as the frozen heads:

- ``head`` — a new task head (linear or a small MLP) on the pooled embedding, back-propagated through
  the whole network with binary cross-entropy for a number of epochs set by the budget size; with
  ``val_fraction``, early stopping on a stratified validation slice restores the best epoch's weights.
- ``setfit`` — SetFit: contrastive fine-tuning on same/different-label pairs, then logistic regression.

The result is a :class:`~pipeline.bundle.bundle.Bundle` whose ``encoder/`` holds the tuned weights
(safetensors) as spec ``st:encoder``; the fingerprint hashes those weights, so no cache of the frozen
encoder is ever served for it, and ``predict``/``evaluate`` use it unchanged. Texts are cut at the
recipe's ``max_length`` in training; when predicting, longer texts are read whole through windows of
that length (``long_text: auto``, chunk-mean), which the manifest records. A killed run resumes
from its checkpoint directory (default ``<out>.ckpt``), removed once the bundle is saved.
The runs live in :mod:`pipeline.finetune.run`; torch and friends are imported only when
:func:`finetune` runs.

May import: the package root, ``data``, ``encoders``, ``store``, ``heads``, ``bundle``, ``predict``.
"""

from pipeline.finetune.recipe import DEFAULT_RECIPES, METHODS, Recipe, Runtime, auto_epochs, holdout, make_recipe, recipe_for
from pipeline.finetune.run import PREDICT_LONG_TEXT, default_checkpoint_dir, finetune, finetune_and_score, run_key

__all__ = [
    "DEFAULT_RECIPES", "METHODS", "PREDICT_LONG_TEXT", "Recipe", "Runtime", "auto_epochs", "recipe_for", "default_checkpoint_dir", "finetune",
    "finetune_and_score", "holdout", "make_recipe", "run_key",
]
