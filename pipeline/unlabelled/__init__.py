"""Learning from unlabelled texts (which texts: :mod:`pipeline.data.unlabelled`): self-training and distillation
(:mod:`.self_train`) and domain-adaptive pretraining of an encoder (:mod:`.adapt`; the ``adapt`` command's job in :mod:`.adapt_job`).

Everything here receives unlabelled texts (or their vectors) only: labels of the unlabelled set are
never passed in, so they cannot be read.

May import: the package root, ``data``, ``encoders``, ``store``, ``heads``, ``bundle``, ``finetune``.
"""
