"""``finetune --self-train --teacher frozen``: a noisy student. The frozen encoder's default head (logreg with the
prompt prior), self-trained on the unlabelled texts as ``fit --self-train`` does, labels those texts; the encoder
is then fine-tuned (method ``head``) on the labels plus the teacher's surest pseudo-labels, aiming at its
probabilities (``soft``) or its 0/1 labels. At 16-32 labels the frozen teacher is stronger than one fine-tuned on
the labels alone, which is what ``distil``'s fine-tuned teacher is."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bundle.bundle import Bundle
from pipeline.data.dataset import Dataset
from pipeline.data.unlabelled import Unlabelled
from pipeline.finetune import Recipe, Runtime
from pipeline.unlabelled.self_train import SelfTrainSettings

# pseudo-labels the student trains on when --max-pseudo is not given: chosen on RT's validation split at 32
# labels (docs/benchmarks/finetune.md); one epoch over them costs about 0.2 CPU s a text on one core
DEFAULT_PSEUDO = 512


@dataclass(frozen=True)
class FrozenTeacher:
    """The teacher's encoder (``spec``, as ``fit`` picks its backend on ``texts``) and where vectors are cached."""

    spec: str
    cache_dir: str | Path | None = None
    source_options: dict[str, Any] | None = None


def teacher_probabilities(train: Dataset, unlabelled: list[str], teacher: FrozenTeacher,
                          seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(probability of positive for each unlabelled text, record): the frozen default head, self-trained on
    ``unlabelled`` with the default settings, fitted on ``train``'s labels and vectors."""
    from pipeline.encoders.auto import command_encoder
    from pipeline.encoders.spec import parse_spec
    from pipeline.heads.prompts import DEFAULT as PROMPTS
    from pipeline.heads.prompts import encoded_direction
    from pipeline.heads.registry import DEFAULT_HEAD, FitOptions
    from pipeline.paths import cache_dir_or_default
    from pipeline.store.cache import EmbeddingCache
    from pipeline.unlabelled.self_train import self_train_head

    start = time.perf_counter()
    cache_dir = cache_dir_or_default(teacher.cache_dir)
    texts = list(train.texts) + list(unlabelled)
    options = {"work_dir": cache_dir, "source_options": teacher.source_options or {}}
    encoder, _ = command_encoder(teacher.spec, parse_spec(teacher.spec), texts, options, backend=None, quantize=None)
    X = EmbeddingCache(cache_dir).vectors(encoder, texts)
    fit_options = FitOptions(groups=train.groups, seed=seed,
                             prompt_direction=encoded_direction(PROMPTS, encoder, cache_dir))
    fitted, record = self_train_head(DEFAULT_HEAD, X[: len(train)], train.labels, X[len(train):],
                                     options=fit_options)
    p_pos = fitted.estimator.predict_proba(X[len(train):])[:, 1]
    record["teacher"].update(kind="frozen, self-trained", encoder=str(encoder.spec),
                             seconds=round(time.perf_counter() - start, 2))
    return p_pos, record["teacher"]


def noisy_student(train: Dataset, unlabelled: Unlabelled, *, teacher: FrozenTeacher, recipe: Recipe,
                  settings: SelfTrainSettings, out: str | Path, seed: int = 0, test: Dataset | None = None,
                  runtime: Runtime = Runtime()) -> Bundle:
    """Frozen teacher -> ``settings.max_pseudo`` (default :data:`DEFAULT_PSEUDO`) pseudo-labels drawn from its surest
    ``settings.fraction`` -> ``recipe`` fine-tuning of ``teacher.spec`` on labels + pseudo-labels (``epochs``
    default 1), saved at ``out``; the manifest's ``self_train`` records the teacher and the pseudo-labels, its
    ``unlabelled`` where the texts came from."""
    from pipeline.bundle.bundle import ENCODER_DIR
    from pipeline.finetune import finetune
    from pipeline.unlabelled.self_train import round_record, student_set, select_pseudo

    settings = settings if settings.max_pseudo else replace(settings, max_pseudo=DEFAULT_PSEUDO)
    recipe = recipe if recipe.epochs else replace(recipe, epochs=1)
    p_pos, teacher_record = teacher_probabilities(train, unlabelled.texts, teacher, seed)
    idx, y_pseudo = select_pseudo(p_pos, settings, seed=seed)
    student_train, targets = student_set(train, unlabelled.texts, idx, y_pseudo, p_pos if settings.soft else None)
    student = finetune(student_train, test=test, out=out, recipe=recipe, encoder=teacher.spec, seed=seed,
                       runtime=runtime, targets=targets)
    student_seconds = student.manifest["finetune"]["fit_seconds"]
    student.manifest["self_train"] = {
        "teacher": teacher_record, "student": {"kind": "finetune", "method": "head", "epochs": recipe.epochs},
        **asdict(settings), "rounds_run": [round_record(p_pos, idx, y_pseudo)],
        "seconds": round(teacher_record["seconds"] + student_seconds, 2),
        "cost_vs_teacher": round(student_seconds / max(teacher_record["seconds"], 1e-9), 2),
    }
    student.manifest["unlabelled"] = unlabelled.record
    student.save(student.path, encoder_dir=student.path / ENCODER_DIR)
    return student
