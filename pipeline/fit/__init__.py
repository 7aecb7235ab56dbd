"""Stage two end to end (:mod:`.train`): split, sample a budget, embed once through the store, fit heads
(optionally self-trained on unlabelled texts), score and save bundles.

May import: everything below it: the package root, ``data``, ``encoders``, ``store``, ``heads``, ``bundle``,
``predict``, ``unlabelled``.
"""
