"""``label``: a local labelling page (FastAPI + uvicorn in :mod:`.app`, plain HTML/JS in ``static/``, no build step).

:mod:`.session` holds the labels, the model and the tabs' leases; :mod:`.store` the durable labels file.
The package calls :mod:`pipeline.active` and :mod:`pipeline.heads`, nothing else of the pipeline.
"""
