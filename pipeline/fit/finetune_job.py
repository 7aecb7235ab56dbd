"""``finetune`` end to end for one :class:`FinetuneJob`: the source read once and split, then fine-tuning
(:func:`pipeline.finetune.finetune`), or with self-training the teacher, its pseudo-labels and the student
(:func:`pipeline.unlabelled.self_train.distil`). :func:`finetune_source` is what the command calls."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bundle.bundle import Bundle
from pipeline.finetune import Recipe, Runtime
from pipeline.unlabelled.self_train import SelfTrainSettings


@dataclass(frozen=True)
class FinetuneJob:
    """What ``finetune`` does: ``recipe`` applied to ``encoder`` (a spec) on a ``budget`` sample of ``source``
    (read with ``source_options``) drawn with ``seed``, run under ``runtime``, the bundle saved to ``out``.
    With ``self_train`` the tuned model is a teacher whose pseudo-labels on the pool outside the budget and
    the ``unlabelled`` texts train a student (work files in ``OUT.self-train``, removed when it is saved);
    with ``teacher="frozen"`` the teacher is the encoder's frozen default head instead (:mod:`.noisy_student`)."""

    source: str
    encoder: str
    recipe: Recipe
    out: str | Path
    budget: int | None = None
    seed: int = 0
    runtime: Runtime = Runtime()
    self_train: SelfTrainSettings | None = None
    unlabelled: dict[str, list[str]] = field(default_factory=dict)
    source_options: dict[str, Any] = field(default_factory=dict)
    teacher: str = "finetuned"  # with self_train: "finetuned" (distil) or "frozen" (a noisy student)


def finetune_source(job: FinetuneJob, echo: Callable[[str], None] = print) -> Bundle:
    """Run ``job`` and return the saved bundle; ``echo`` hears which unlabelled texts self-training uses."""
    from pipeline.data.dataset import load
    from pipeline.data.unlabelled import describe, for_budget
    from pipeline.finetune import finetune
    from pipeline.fit.train import train_test
    from pipeline.unlabelled.self_train import Teacher, distil

    ds = load(job.source, **job.source_options)
    if job.self_train is None:
        train, test = train_test(ds, job.budget, job.seed)
        return finetune(train, test=test, out=job.out, recipe=job.recipe, encoder=job.encoder, seed=job.seed,
                        runtime=job.runtime)
    train, test, unl = for_budget(ds, job.budget, job.seed, job.unlabelled)
    echo(describe(unl.record))
    if job.teacher == "frozen":
        from pipeline.fit.noisy_student import FrozenTeacher, noisy_student

        teacher = FrozenTeacher(job.encoder, job.runtime.cache_dir, job.source_options)
        return noisy_student(train, unl, teacher=teacher,
                             recipe=job.recipe, settings=job.self_train, out=job.out, seed=job.seed, test=test,
                             runtime=job.runtime)
    work = Path(f"{job.out}.self-train")
    bundle = distil(train, unl, out=job.out, work_dir=work, teacher=Teacher(job.encoder, job.recipe),
                    settings=job.self_train, seed=job.seed, test=test, runtime=job.runtime)
    shutil.rmtree(work, ignore_errors=True)
    return bundle
