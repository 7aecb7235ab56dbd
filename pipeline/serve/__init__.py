"""``serve``: a bundle behind a small HTTP API (FastAPI + uvicorn), micro-batched, with metrics.

:mod:`.run` starts it, :mod:`.app` is the API, :mod:`.batcher` groups concurrent requests into one
encoder call, :mod:`.model` holds the verified bundle, :mod:`.metrics` the Prometheus metrics,
:mod:`.config` the settings. The request guards (body cap, Host check, bearer token) are
:mod:`pipeline.guards`, at the package root because ``label`` uses them too.

May import: the package root, ``data``, ``encoders``, ``store``, ``heads``, ``bundle``, ``predict``; only
``cli`` imports it.
Nothing here is imported at the top of the CLI: FastAPI, uvicorn and the bundle load only in ``serve``.
"""
