"""Active learning: query strategies (:mod:`.strategies`), labelling sessions (:mod:`.labelling`) and the
local label app (:mod:`.label_app`).

May import: the package root, ``data``, ``encoders``, ``store``, ``heads``.
"""
