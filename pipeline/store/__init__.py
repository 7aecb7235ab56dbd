"""The embedding store: HDF5 files, one per encoder fingerprint, rows keyed by text hash (:mod:`.cache`,
``EmbeddingCache``), the scikit-learn ``Embedder`` that reads through it (:mod:`.embedder`), streamed
filling from files (:mod:`.stream`) and on a Ray cluster (:mod:`.ray_fill`), the ``embed`` command's
work (:mod:`.embed`), and the exports and converted models ``cache rm`` removes with a store (:mod:`.derived`).

May import: the package root, ``data``, ``encoders`` (encoders never import the store).
"""
