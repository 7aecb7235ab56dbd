"""Stage two end to end (:mod:`.train`): split, sample a budget, embed once through the store, fit heads
(optionally self-trained on unlabelled texts), score and save bundles; the ``fit`` command's whole job
(:mod:`.job`), out of core when the vectors would not fit (:mod:`.out_of_core`); the ``finetune`` command's
job (:mod:`.finetune_job`); retargeting (:mod:`.retarget`, :mod:`.retarget_bundle`).

May import: everything below it: the package root, ``data``, ``encoders``, ``store``, ``heads``, ``bundle``,
``predict``, ``finetune``, ``unlabelled``.
"""
