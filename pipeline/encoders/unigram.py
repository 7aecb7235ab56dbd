"""A SentencePiece unigram tokenizer in plain Python, for a cold start: it loads e5's 250,002 pieces in
about a tenth of the time ``tokenizers`` takes to build its model from ``tokenizer.json`` (0.5 s here),
and cuts a few texts as fast. Bulk encoding keeps ``tokenizers``.

It reproduces the port's ``tokenizer.json`` (:func:`pipeline.encoders.multilingual_port.tokenizer_json`)
without special tokens: runs of spaces collapsed, spaces turned into ``▁`` with one in front, the text split
before each ``▁``, and each word cut by Viterbi into the pieces of highest total score; a character no
piece covers becomes ``<unk>`` (score: the lowest piece score minus 10), and unknown runs fuse into one.
The pieces, their scores and the unknown id are kept beside ``tokenizer.json`` as ``pieces.txt`` and
``unigram.npz`` (:func:`write_tables`), written once from it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PIECES, SCORES = "pieces.txt", "unigram.npz"
META_SPACE = "\u2581"
UNK_PENALTY = 10.0
_SPACES = re.compile(" {2,}")
_WORDS = re.compile(f"(?={META_SPACE})")


class Unigram:
    """Content ids of texts, as the port's ``tokenizers`` model gives them without special tokens."""

    def __init__(self, pieces: Sequence[str], scores: Sequence[float], unk_id: int) -> None:
        self.ids = dict(zip(pieces, range(len(pieces))))
        self.scores = list(map(float, scores))
        self.unk_id = unk_id
        self.unk_score = min(self.scores) - UNK_PENALTY
        self.longest = max(map(len, pieces))

    @classmethod
    def load(cls, folder: Path) -> Unigram:
        """The tables :func:`write_tables` wrote into ``folder``."""
        pieces = (folder / PIECES).read_text(encoding="utf-8").split("\n")
        with np.load(folder / SCORES, allow_pickle=False) as z:
            return cls(pieces, z["scores"].tolist(), int(z["unk_id"]))

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        text = _SPACES.sub(" ", text).replace(" ", META_SPACE)
        if not text.startswith(META_SPACE):
            text = META_SPACE + text
        return [i for word in _WORDS.split(text) if word for i in self._viterbi(word)]

    def _viterbi(self, word: str) -> list[int]:
        n, ids, scores = len(word), self.ids, self.scores
        best = [0.0] + [-np.inf] * n
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        for i in range(n):
            here, single = best[i], False
            for j in range(i + 1, min(n, i + self.longest) + 1):
                piece = ids.get(word[i:j])
                if piece is not None:
                    single |= j == i + 1
                    score = here + scores[piece]
                    if score > best[j]:
                        best[j], back[j] = score, (i, piece)
            if not single and here + self.unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = here + self.unk_score, (i, self.unk_id)
        out: list[int] = []
        j = n
        while j > 0:
            i, piece = back[j]
            if not (piece == self.unk_id and out and out[-1] == self.unk_id):  # unknown runs fuse
                out.append(piece)
            j = i
        return out[::-1]


def write_tables(folder: Path) -> None:
    """Write ``pieces.txt`` and ``unigram.npz`` beside ``folder``'s ``tokenizer.json`` (each renamed into place)."""
    model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    pieces = [p for p, _ in model["vocab"]]
    if any("\n" in p for p in pieces):
        raise ValueError(f"{folder}: a piece holds a line break; the tables cannot keep it.")
    tmp = folder / f".{PIECES}.{os.getpid()}"
    tmp.write_text("\n".join(pieces), encoding="utf-8")
    os.replace(tmp, folder / PIECES)
    tmp = folder / f".{os.getpid()}.{SCORES}"
    with open(tmp, "wb") as f:
        np.savez(f, scores=np.array([s for _, s in model["vocab"]], dtype=np.float64), unk_id=np.int64(model["unk_id"]))
    os.replace(tmp, folder / SCORES)
