"""``label``: a local labelling page (FastAPI + uvicorn in :mod:`.app`, plain HTML/JS in ``static/``, no build step).

:mod:`.session` holds the labels, the model and the tabs' leases; :mod:`.store` the durable labels file.
The package calls :mod:`pipeline.active.strategies` and :mod:`pipeline.heads.registry`, nothing else of the pipeline.

Part of ``active``: may import what ``active`` may.
"""
