"""The names the command line offers for active learning, with what each means: no numpy, so that
``--help`` stays light (the strategies themselves are in :mod:`pipeline.active.strategies`)."""

STRATEGIES = {
    "random": "a uniform random draw",
    "margin": "the least certain texts (P(positive) nearest 0.5)",
    "diverse": "k-means++ seeding weighted by typicality: far from every text labelled or picked, like many others",
    "hybrid": "diverse among the uncertain: k-means over the 10 x k least certain, the text nearest each centre",
    "typical-margin": "k-means++ draws weighted by typicality and uncertainty, alternating the predicted classes",
}
DEFAULT_STRATEGY = "typical-margin"  # suggest and label: the best on the validation split (README)
REFITS = {  # compare --query: how the head is fitted on each sample
    "cv": "the grid point chosen by cross-validation, as plain compare cells",
    "default": "the head's fixed defaults (CV on an actively chosen sample is biased: it is not i.i.d.)",
}
DEFAULT_REFIT = "default"  # chosen on the validation split, as the QuerySettings defaults
