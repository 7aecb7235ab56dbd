"""Word frequencies in English and seven other Latin-script languages, as evidence of a short text's language.

The lists are the ``small`` word-frequency files of the ``wordfreq`` 3.1.1 wheel (Apache-2.0 code; its data are
CC BY-SA 4.0, Speer 2022): every word at or above a Zipf frequency of 3 (once per million words) in each
language, gathered from subtitles, Wikipedia, news, books, web text, Twitter and Reddit. Only the data files are
read (with ``msgpack``); the ``wordfreq`` package itself is never imported. The eight lists load in about 0.15 s.

:func:`english_margin` is a unigram language model's verdict: how many times (in powers of ten) likelier a text's
words are under English than under the likeliest of the other languages. fastText's identifier is unsure on texts
of one to three words (``Spectacular.``, ``Langweilig, leider.``), where a word list still knows each word;
:func:`pipeline.encoders.identify.reads_english` adds the two.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import re
from pathlib import Path

from pipeline import MissingExtraError

PACKAGE = "wordfreq"  # the wheel holding the lists (and the pin in setup.cfg)
VERSION = "3.1.1"
LANGUAGES = ("en", "de", "fr", "es", "nl", "it", "pt", "sv")  # English first; the others e5 reads, on the dev set
# A word missing from a list counts as this Zipf frequency: one below the lists' cut (3, once per million words).
UNKNOWN_ZIPF = 2.0
WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")  # letters, with one inner apostrophe (don't, l'auteur)


def data_dir() -> Path:
    """Where the installed ``wordfreq`` keeps its lists; one line naming the fix when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    folder = Path(locations[0], "data") if locations else None
    if folder is None or not all((folder / f"small_{lang}.msgpack.gz").is_file() for lang in LANGUAGES):
        raise MissingExtraError(f"the word lists of the {PACKAGE} package are not installed; routing by language needs "
                                f"them: pip install {PACKAGE}=={VERSION} (or make install).")
    return folder


def read_list(path: Path) -> dict[str, float]:
    """One ``small_XX.msgpack.gz`` file as {word: Zipf frequency}: a header, then buckets of words, bucket ``i``
    holding the words at 10^(-i/100) of all words (Zipf 9 - i/100)."""
    import msgpack

    header, *buckets = msgpack.unpackb(gzip.decompress(path.read_bytes()), raw=False)
    if header.get("format") != "cB":
        raise MissingExtraError(f"{path}: not a wordfreq cB list ({header}); pip install {PACKAGE}=={VERSION}.")
    found: dict[str, float] = {}
    for i, words in enumerate(buckets):
        for word in words:
            found.setdefault(word, 9 - i / 100)
    return found


@functools.lru_cache(maxsize=1)
def frequencies() -> dict[str, dict[str, float]]:
    """{language: {word: Zipf frequency}} for :data:`LANGUAGES`, loaded once per process."""
    folder = data_dir()
    return {lang: read_list(folder / f"small_{lang}.msgpack.gz") for lang in LANGUAGES}


def english_margin(text: str) -> float:
    """log10 of how much likelier ``text``'s words (lower-cased) are under English than under the likeliest other
    language of :data:`LANGUAGES`, each word at its Zipf frequency (:data:`UNKNOWN_ZIPF` when a list lacks it);
    0.0 with no word."""
    words = WORD_RE.findall(text.lower().replace("’", "'"))
    if not words:
        return 0.0
    lists = frequencies()
    scores = {lang: sum(lists[lang].get(w, UNKNOWN_ZIPF) for w in words) for lang in LANGUAGES}
    return scores[LANGUAGES[0]] - max(scores[lang] for lang in LANGUAGES[1:])
