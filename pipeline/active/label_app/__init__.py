"""``label``: a local labelling page (FastAPI + uvicorn in :mod:`.app`, plain HTML/JS in ``static/``, no build step).

:mod:`.session` opens a labelling job (:func:`~.session.open_session`: labels so far, vectors through
:mod:`pipeline.active.labelling`) and holds the labels, the model and the tabs' leases; :mod:`.store` the durable
labels file.

Part of ``active``: may import what ``active`` may.
"""
