"""Self-training a routed head (:mod:`pipeline.heads.routed`): each language side's head is self-trained on the
unlabelled texts of its side, so a Chinese head learns from Chinese texts and the English head from English ones.

An other side that reads its languages by transfer from English labels self-trains as ``fit`` fits it
(:func:`~pipeline.heads.routed.other_head`), and its student keeps the teacher's mean probability of positive on
the side's texts (:mod:`pipeline.unlabelled.keep_mean`): otherwise it learns the pseudo-labels' class balance as a
bias of the new language, and lost 5 points on Chinese with 1,000 English labels (docs/benchmarks/unlabelled.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.heads.registry import FitOptions
from pipeline.heads.routed import english_reads, joined, other_head, transfers
from pipeline.unlabelled.self_train import SelfTrainSettings, self_train_head


def self_train_routed(head: str, X: np.ndarray, y: np.ndarray, X_unlabelled: np.ndarray, layout: Any, *,
                      settings: SelfTrainSettings = SelfTrainSettings(),
                      options: FitOptions = FitOptions()) -> tuple[Any, dict[str, Any]]:
    """:func:`~pipeline.unlabelled.self_train.self_train_head` of each side on its columns: the labelled rows
    are all of ``X`` for both, the unlabelled rows those whose English flag puts them on that side. The
    ``prompt_direction`` of ``options`` is a pair, one per side. A side that reads by transfer
    (:func:`~pipeline.heads.routed.transfers`) self-trains its :func:`~pipeline.heads.routed.other_head` and its
    students keep the teacher's mean. Returns the joined head and the English side's record with the other side's
    under ``other``."""
    english_rows = np.asarray(X_unlabelled)[:, layout.flag] >= 0.5
    directions = options.prompt_direction or (None, None)
    heads, keep = (head, other_head(head, X, layout)), (False, transfers(head, X, layout))
    english_cols, english_direction, summing = english_reads(head, X, layout, directions[0])
    sides = [self_train_head(name, X[:, list(cols)], y, X_unlabelled[rows][:, list(cols)], settings=settings,
                             options=replace(options, prompt_direction=u), keep_mean=k)
             for name, cols, rows, u, k in zip(heads, (english_cols, layout.other), (english_rows, ~english_rows),
                                               (english_direction, directions[1]), keep)]
    (english, english_record), (other, other_record) = sides
    return joined(english, other, layout, X, summing=summing), {**english_record, "other": other_record}


def self_train_any(head: str, X: np.ndarray, y: np.ndarray, X_unlabelled: np.ndarray, layout: Any = None, *,
                   settings: SelfTrainSettings = SelfTrainSettings(),
                   options: FitOptions = FitOptions()) -> tuple[Any, dict[str, Any]]:
    """:func:`self_train_routed` with a ``layout`` (a routed encoder's vectors), else plain ``self_train_head``:
    what :func:`pipeline.heads.routed.fit_any` is to fitting."""
    if layout is None:
        return self_train_head(head, X, y, X_unlabelled, settings=settings, options=options)
    return self_train_routed(head, X, y, X_unlabelled, layout, settings=settings, options=options)
