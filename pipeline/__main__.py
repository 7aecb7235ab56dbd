"""``python -m pipeline`` runs the ``review-transfer`` command line."""

from pipeline.cli import main

main()
