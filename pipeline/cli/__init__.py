"""The ``review-transfer`` command line: :mod:`.app` (the group, ``main``: the console script
``pipeline.cli:main``), one module per command family (:mod:`.data`, :mod:`.embed`, :mod:`.fit`,
:mod:`.finetune`, :mod:`.compare`, :mod:`.active`, :mod:`.unlabelled`) and the shared options
(:mod:`.options`). Commands parse, build one value, call the package, print; heavy modules are imported
inside them, so ``--help`` imports no numpy.

May import: anything; nothing imports it.
"""

from pipeline.cli.app import main

__all__ = ["main"]
