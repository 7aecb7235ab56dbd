"""Stage two end to end (:mod:`.train`): split, sample a budget, embed once through the store, fit heads
(optionally self-trained on unlabelled texts), score and save bundles; the ``fit`` command's whole job
(:mod:`.job`), out of core when the vectors would not fit (:mod:`.out_of_core`); retargeting (:mod:`.retarget`).

May import: everything below it: the package root, ``data``, ``encoders``, ``store``, ``heads``, ``bundle``,
``predict``, ``unlabelled``.
"""
