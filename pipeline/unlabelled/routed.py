"""Self-training a routed head (:mod:`pipeline.heads.routed`): each language side's head is self-trained on the
unlabelled texts of its side, so a Chinese head learns from Chinese texts and the English head from English ones."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.heads.registry import FitOptions
from pipeline.heads.routed import joined
from pipeline.unlabelled.self_train import SelfTrainSettings, self_train_head


def self_train_routed(head: str, X: np.ndarray, y: np.ndarray, X_unlabelled: np.ndarray, layout: Any, *,
                      settings: SelfTrainSettings = SelfTrainSettings(),
                      options: FitOptions = FitOptions()) -> tuple[Any, dict[str, Any]]:
    """:func:`~pipeline.unlabelled.self_train.self_train_head` of each side on its columns: the labelled rows
    are all of ``X`` for both, the unlabelled rows those whose English flag puts them on that side. The
    ``prompt_direction`` of ``options`` is a pair, one per side. Returns the joined head and the English
    side's record with the other side's under ``other``."""
    english_rows = np.asarray(X_unlabelled)[:, layout.flag] >= 0.5
    directions = options.prompt_direction or (None, None)
    sides = [self_train_head(head, X[:, list(cols)], y, X_unlabelled[rows][:, list(cols)], settings=settings,
                             options=replace(options, prompt_direction=u))
             for cols, rows, u in zip((layout.english, layout.other), (english_rows, ~english_rows), directions)]
    (english, english_record), (other, other_record) = sides
    return joined(english, other, layout, X), {**english_record, "other": other_record}


def self_train_any(head: str, X: np.ndarray, y: np.ndarray, X_unlabelled: np.ndarray, layout: Any = None, *,
                   settings: SelfTrainSettings = SelfTrainSettings(),
                   options: FitOptions = FitOptions()) -> tuple[Any, dict[str, Any]]:
    """:func:`self_train_routed` with a ``layout`` (a routed encoder's vectors), else plain ``self_train_head``:
    what :func:`pipeline.heads.routed.fit_any` is to fitting."""
    if layout is None:
        return self_train_head(head, X, y, X_unlabelled, settings=settings, options=options)
    return self_train_routed(head, X, y, X_unlabelled, layout, settings=settings, options=options)
