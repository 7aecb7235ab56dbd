"""Using a bundle: predicting (:mod:`.predict`), evaluating on labelled data (:mod:`.evaluate`), class-prior
estimation and adaptation (:mod:`.prior`), the domain-shift check (:mod:`.shift`) and the metrics (:mod:`.metrics`).

May import: the package root, ``data``, ``encoders``, ``store``, ``heads``, ``bundle``.
"""
