"""Which legacy code page a line that is not UTF-8 was most likely saved in, for the reader's error.

Excel's plain "CSV" writes the system's code page: cp1252 in Western Europe, cp949 on Korean Windows, cp932
on Japanese and gb18030 (GBK) on Simplified Chinese. Converting with the wrong one still "works" (iconv from
cp1252 turns Korean into ``¹è¼Û``), so the guess reads the bytes in each East Asian code page and keeps one
only when the text comes out in that language's script, with two of its characters in a row (an accented
Latin letter and the byte after it can read as one stray Han character: "Größe"). The order matters: GBK
bytes also decode as EUC-KR (half Hanja, which Korean reviews hardly use), and EUC-KR bytes as GBK (all
Han). Big5 (Traditional Chinese) is not told apart from GBK.
"""

from __future__ import annotations

import unicodedata

def _hangul(c: str) -> bool:
    return "\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e"


def _kana(c: str) -> bool:
    return "\u3041" <= c <= "\u30ff"  # hiragana and full-width katakana


def _han(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff"


# (codec to try, codec to name, language, the language's own script, a mark it must show at least once)
_CANDIDATES = (
    ("euc_kr", "cp949", "Korean", _hangul, _hangul),
    ("cp932", "cp932", "Japanese", lambda c: _kana(c) or _han(c), _kana),
    ("cp949", "cp949", "Korean", _hangul, _hangul),
    ("gb18030", "gb18030", "Chinese", _han, _han),
)
_OWN_SCRIPT_SHARE = 0.9  # of the line's non-ASCII letters
FALLBACK = ("cp1252", "Western European")


def legacy_encoding(raw: bytes) -> tuple[str, str]:
    """(codec, language) that ``raw`` (a line that is not UTF-8) most likely was written in; cp1252 otherwise."""
    for codec, name, language, own, mark in _CANDIDATES:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        letters = [c for c in text if not c.isascii() and unicodedata.category(c).startswith("L")]
        if (any(map(mark, letters)) and sum(map(own, letters)) >= _OWN_SCRIPT_SHARE * len(letters)
                and any(own(a) and own(b) for a, b in zip(text, text[1:]))):
            return name, language
    return FALLBACK
