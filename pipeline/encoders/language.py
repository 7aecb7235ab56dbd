"""Does an encoder read the language of these texts? A cheap check, and one warning when it does not.

Every packaged encoder but the multilingual one was trained on English. Fed Chinese, GloVe sees a row of
unknown words and mpnet a string of rare sub-words; both still return vectors, and a head scores them
at chance. :func:`check` says which share of the texts lie outside the encoder's language:

- word vectors (GloVe, word2vec files, ``w2v-train``): texts whose word tokens are mostly out of
  the vocabulary (GloVe 6B knows most Spanish or French words, so it gets the next check too);
- packaged English models (``minilm``, ``mpnet``, ``wordllama``, ``glove-6b-50d``): texts whose letters
  are mostly not Latin (Hangul, Han, kana, Cyrillic, Arabic, ...), or Latin texts that a language
  identifier reads as another language (:func:`english`, newest version);
- multilingual encoders and models the user names (``st:``, ``hf:``): not checked (``None``).

Texts with no letters (emoji, numbers) count for neither side. At most :data:`SAMPLE` texts, evenly
spaced, are looked at, so the check costs milliseconds at any size. :func:`warn` issues one
:class:`LanguageWarning` line when most texts are outside (share > :data:`THRESHOLD`), naming the
multilingual encoder; :mod:`pipeline.store.cache` calls it for every command that embeds.

:func:`english` is the same test text by text: a routed encoder (:mod:`pipeline.encoders.routed`) sends each
text to its English or its other-language side with it. The test is versioned (:data:`CHECKS`), since a routed
bundle must route as it did when it was fitted: version 3 also takes a text with letters of another script and no
English function word for non-English (a Chinese review written mostly in Latin brand names, ``VISTA Ultimate
SP1``), which version 2 sent to the English side. Version 4 keeps version 3's script tests and asks a language
identifier (:mod:`pipeline.encoders.identify`, fastText's ``lid.176``) about every other text with letters in place
of the function-word count, which missed short reviews with no counted word (``Horrible. À éviter.``). Version 5
adds word lists of English and seven other languages where the identifier is unsure
(:func:`pipeline.encoders.identify.reads_english`): it read ``Langweilig, leider.`` as English and ``Spectacular.``
as not. The language warning uses the newest version.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SAMPLE = 2000
CHECKS = (2, 3, 4, 5)  # versions of the English test text by text (:func:`english`), oldest first; the last is the newest
THRESHOLD = 0.5  # warn when more than this share of texts is outside the encoder's language
MULTILINGUAL = "multilingual"  # the spec to suggest (the default): English texts through mpnet, the rest through e5
ENGLISH_KINDS = ("minilm", "mpnet", "wordllama", "glove-6b-50d")  # packaged models trained on English text
LATIN_END = 0x250  # Basic Latin .. Latin Extended-B
WORD_RE = re.compile(r"[^\W\d_]+")
# Common English function words, and those of six other Latin-script languages that are not English words.
ENGLISH = frozenset(
    "the a an and or but of to in on at for with from by this that these those is are was were be been it its "
    "i you he she we they my your his her our their me him us them not no very so too just than then there "
    "have has had do does did will would can could should what which who all more most much only also".split())
OTHER = frozenset(
    # French
    "le la les une des du et est dans pour pas avec sur ce cette ces qui que très mais ou il elle nous vous "
    "ils sont été être au aux mon ma mes sa ses leur je tu ne même bien trop peu "
    # German
    "der das und ist nicht ein eine einen mit sich auch auf für von dem den zu im ich sie wir es sehr aber "
    "oder wie noch nur schon kein keine sind haben wird "
    # Spanish / Portuguese / Italian
    "el los las una y es en por con para lo del al se muy pero como más mas está esta este eso nada fue son "
    "o um uma os não com muito foi é são il di che non è sono della gli molto questo "
    # Dutch
    "het een en niet dat op zijn ik je ze wij maar voor met ook als nog bij naar heel erg goed".split()
) - ENGLISH


class LanguageWarning(UserWarning):
    """Most texts look like they are in a language the encoder was not trained on."""


@dataclass(frozen=True)
class LanguageCheck:
    """``outside`` of ``checked`` texts (those with letters) look outside the encoder's language."""

    spec: str
    checked: int
    outside: int
    how: str  # "unknown words", "script/language ID", or both joined by " or "

    @property
    def share(self) -> float:
        return self.outside / self.checked if self.checked else 0.0

    def as_dict(self) -> dict[str, Any]:
        """For JSON reports: the share and counts (``outside_language``)."""
        return {"share": round(self.share, 4), "outside": self.outside, "checked": self.checked, "how": self.how}

    def message(self) -> str:
        """One line for people."""
        if self.how == "unknown words":  # word vectors from a file or trained on a source: any language
            what = "are mostly words it does not know; its vocabulary is not theirs"
        else:
            what = "do not look English; this encoder reads English"
        return (f"{self.spec}: {self.outside} of {self.checked} texts ({self.share:.0%}) {what}. For other languages "
                f"use --encoder {MULTILINGUAL}, the default (English texts through mpnet, the rest through "
                "multilingual-e5-small, ~100 languages).")


def check(encoder: Any, texts: Sequence[str]) -> LanguageCheck | None:
    """How many of ``texts`` lie outside ``encoder``'s language; None when the encoder is multilingual or
    of a kind this check knows nothing about (a model the user named)."""
    parts = getattr(encoder, "parts", None)
    if parts is not None:
        found = []
        for part in sorted(parts, key=lambda p: not getattr(p, "multilingual", False)):  # the free answers first
            one = check(part, texts)
            if one is None:
                return None  # a multilingual or unknown part may read them
            found.append(one)
        return max(found, key=lambda c: c.share)
    if getattr(encoder, "multilingual", False):
        return None
    some = sample(texts)
    kind = _kind(encoder)
    index = getattr(encoder, "_index", None) if kind != "wordllama" else None
    english = kind in ENGLISH_KINDS
    if index is None and not english:
        return None
    verdicts = [_either(_unknown_words(t, index) if index is not None else None,
                        _not_english(t) if english else None) for t in some]
    decided = [v for v in verdicts if v is not None]
    how = " or ".join(h for h, on in (("unknown words", index is not None), ("script/language ID", english)) if on)
    return LanguageCheck(encoder.spec, len(decided), sum(decided), how)


def _either(a: bool | None, b: bool | None) -> bool | None:
    return None if a is None and b is None else bool(a) or bool(b)


_WARNED: set[str] = set()  # the encoder specs warned of in this process


def warn(encoder: Any, texts: Sequence[str]) -> LanguageCheck | None:
    """:func:`check`, and one :class:`LanguageWarning` when most texts are outside (once per encoder in a process,
    so a study that reads its pool, its samples and its test sets with one encoder says it once)."""
    found = check(encoder, texts)
    if found is not None and found.share > THRESHOLD and found.spec not in _WARNED:
        _WARNED.add(found.spec)
        warnings.warn(found.message(), LanguageWarning, stacklevel=3)
    return found


def english(texts: Sequence[str], version: int = CHECKS[-1]) -> list[bool]:
    """Whether each text reads as English (texts with no letter count as English): mostly Latin letters; from
    ``version`` 3 on, also an English function word wherever a letter of another script appears; then, up to
    version 3, no more common French, German, Spanish, Dutch, Italian or Portuguese function words than English
    ones; in version 4, English at least :data:`~pipeline.encoders.identify.ENGLISH_FLOOR` likely to the
    language identifier; from version 5, that and word lists together
    (:func:`~pipeline.encoders.identify.reads_english`)."""
    if version not in CHECKS:
        raise ValueError(f"English check version {version!r} is not one of {CHECKS}")
    return [not _not_english(t, version) for t in texts]


def letterless(texts: Sequence[str]) -> list[int]:
    """The indices of the non-empty ``texts`` with no letter (emoji, numbers, punctuation only: ``👍👍``, ``10/10``),
    which :func:`english` counts as English and the language check counts for neither side."""
    return [i for i, t in enumerate(texts) if t.strip() and not any(c.isalpha() for c in t)]


def english_share(texts: Sequence[str]) -> float:
    """The share of ``texts`` that reads as English (:func:`english`, newest version), counted on
    :func:`sample`; 1.0 with no text."""
    looked = sample(texts)
    return sum(english(looked)) / len(looked) if looked else 1.0


def sample(texts: Sequence[str]) -> list[str]:
    """At most :data:`SAMPLE` of ``texts``, evenly spaced (all of them when fewer)."""
    n = len(texts)
    if n <= SAMPLE:
        return list(texts)
    step = n / SAMPLE
    return [texts[int(i * step)] for i in range(SAMPLE)]


def _kind(encoder: Any) -> str:
    from pipeline.encoders.spec import parse_spec

    try:
        return parse_spec(encoder.spec).kind
    except Exception:  # a spec string this version cannot parse: unknown kind
        return ""


def _unknown_words(text: str, index: Any) -> bool | None:
    """Whether most word tokens of ``text`` are out of the vocabulary; None with no word."""
    from pipeline.encoders.static import tokenize

    words = [t for t in tokenize(text) if WORD_RE.fullmatch(t)]
    if not words:
        return None
    return sum(w not in index for w in words) > len(words) / 2


@functools.lru_cache(maxsize=1 << 17)  # a text routed twice in one command (its count, then its vectors) is read once
def _not_english(text: str, version: int = CHECKS[-1]) -> bool | None:
    """Whether ``text`` is mostly in a non-Latin script, or (``version`` 3 on) has a letter of a non-Latin script
    and no English function word, or has more non-English than English function words (up to version 3) or is
    under the identifier's English floor (version 4) or is not English to the identifier and word lists together
    (version 5); None with no letter."""
    if not any(c.isalpha() for c in text):
        return None
    if _other_script(text, version):
        return True
    if version >= 5:
        from pipeline.encoders.identify import reads_english

        return not reads_english(text)
    if version == 4:
        from pipeline.encoders.identify import ENGLISH_FLOOR, english_score

        return english_score(text) < ENGLISH_FLOOR  # remembered: version 5's verdict reads the same score
    words = WORD_RE.findall(text.lower())
    return sum(w in OTHER for w in words) > sum(w in ENGLISH for w in words)


def likely_english(texts: Sequence[str], version: int = CHECKS[-1]) -> list[bool]:
    """A quick guess at :func:`english` for each text: version 4's test (the language identifier alone, without
    version 5's word lists) for ``version`` 5, the test itself before. A routed encoder starts loading its English
    side for these texts while the full test runs."""
    return english(texts, min(version, 4) if version in CHECKS else version)


def _other_script(text: str, version: int) -> bool:
    """Whether ``text``'s letters alone make it not English under ``version``: mostly of a non-Latin script, or (from
    version 3) with a letter of one and no English function word."""
    letters = [c for c in text if c.isalpha()]
    latin = sum(ord(c) < LATIN_END for c in letters)
    if latin < len(letters) / 2:
        return True
    return version >= 3 and latin < len(letters) and not any(w in ENGLISH for w in WORD_RE.findall(text.lower()))
