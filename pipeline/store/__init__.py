"""The embedding store: HDF5 files, one per encoder fingerprint, rows keyed by text hash (:mod:`.cache`,
``EmbeddingCache``), the scikit-learn ``Embedder`` that reads through it (:mod:`.embedder`) and streamed
filling from files (:mod:`.stream`).

May import: the package root, ``data``, ``encoders`` (encoders never import the store).
"""
