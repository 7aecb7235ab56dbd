"""How many words a text weighs, in scripts written with or without spaces between words."""

from __future__ import annotations

import re

# scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar): each character counts as
# half a word, so a 600-character Chinese review (about 420 of e5's word pieces, as many as a 260-word English
# one) weighs about 300 words, not the 1 to 5 its spaces make; texts with none of them count as before
UNSPACED = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
UNSPACED_PER_WORD = 2


def words_of(text: str) -> float:
    """How many words ``text`` weighs: its space-separated words, plus half a word per character of a script
    written without spaces (:data:`UNSPACED`)."""
    return len(text.split()) + len(UNSPACED.findall(text)) / UNSPACED_PER_WORD


def has_unspaced(text: str) -> bool:
    """Whether ``text`` holds a character of a script written without spaces (:data:`UNSPACED`)."""
    return UNSPACED.search(text) is not None
