"""The ``review-transfer`` command line: :mod:`.main` (the group), one module per command family
(:mod:`.data`, :mod:`.embed`, :mod:`.fit`, :mod:`.finetune`, :mod:`.compare`, :mod:`.active`,
:mod:`.unlabelled`) and the shared options (:mod:`.options`). Commands parse, call the package, print;
heavy modules are imported inside them.

May import: anything; nothing imports it.
"""
