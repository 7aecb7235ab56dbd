"""The names the command line offers for learning from unlabelled texts: no numpy, so that ``--help``
stays light (the methods themselves are in :mod:`pipeline.unlabelled.adapt` and :mod:`.self_train`)."""

METHODS = ("tsdae", "simcse", "mlm")  # adapt: domain-adaptive pretraining objectives
DEFAULT_METHOD = "simcse"  # chosen on RT's pool validation split; tsdae lost ~10 points there (README)
BALANCES = ("predicted", "equal")  # self-training: the first is the default (chosen on the development target; README)
