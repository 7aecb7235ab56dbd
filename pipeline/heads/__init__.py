"""Stage-two heads on cached vectors: the registry, grids and selection by CV (:mod:`.registry`), the
numpy-only linear head (:mod:`.linear`), the linear SVM (:mod:`.linear_svm`), Platt calibration
(:mod:`.calibration`), the prompt prior (:mod:`.prompts`) and out-of-core SGD (:mod:`.out_of_core`).

May import: the package root, ``data``, ``encoders``, ``store``.
"""
