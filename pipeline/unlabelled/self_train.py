"""Self-training: a teacher labels unlabelled texts, a student learns from the labels plus the
teacher's confident pseudo-labels.

Pseudo-labels are class-balanced (as many positives as negatives, the most confident of each) and
kept only above a confidence ``threshold``; with ``rounds`` > 1 the student becomes the next
teacher. Two students:

- :func:`self_train_head` — a frozen-encoder scikit-learn head. The teacher's grid point is chosen by
  cross-validation on the labels alone; the student refits that point on labels + pseudo-labels
  (no second search, so a round costs one fit).
- :func:`distil` — a fine-tuned encoder: a fine-tuned teacher (``head`` or ``setfit``) labels the
  unlabelled texts and a fine-tuned ``head`` student trains on labels + pseudo-labels (distillation),
  its size capped so the whole run costs about three teachers (teacher, labelling, student).

Both take unlabelled texts or vectors only: the functions have no parameter through which labels of
the unlabelled set could arrive.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.data import Dataset

@dataclass(frozen=True)
class SelfTrainSettings:
    """How pseudo-labels are chosen."""

    threshold: float = 0.9  # keep pseudo-labels whose probability of the class is at least this
    rounds: int = 1  # teacher -> student passes; each student labels the unlabelled texts for the next
    max_pseudo: int | None = None  # most pseudo-labels per round (half per class); None: all confident ones

    def __post_init__(self) -> None:
        if not 0.5 <= self.threshold < 1:
            raise OptionError(f"self-training threshold must be in [0.5, 1), got {self.threshold}.")
        if self.rounds < 1:
            raise OptionError(f"self-training rounds must be at least 1, got {self.rounds}.")
        if self.max_pseudo is not None and self.max_pseudo < 2:
            raise OptionError(f"max_pseudo must be at least 2, got {self.max_pseudo}.")


def select_pseudo(p_pos: np.ndarray, threshold: float, max_pseudo: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices, 0/1 pseudo-labels): the most confident ``k`` of each class with confidence >= ``threshold``,
    ``k`` the smaller class's count (and at most ``max_pseudo // 2``), so the pseudo-labels are balanced."""
    p_pos = np.asarray(p_pos, dtype=np.float64)
    pos = np.flatnonzero(p_pos >= threshold)
    neg = np.flatnonzero(p_pos <= 1 - threshold)
    k = min(len(pos), len(neg))
    if max_pseudo is not None:
        k = min(k, max_pseudo // 2)
    pos = pos[np.argsort(-p_pos[pos], kind="stable")[:k]]
    neg = neg[np.argsort(p_pos[neg], kind="stable")[:k]]
    idx = np.concatenate([neg, pos])
    return idx, np.concatenate([np.zeros(k, np.int64), np.ones(k, np.int64)])


def _round_record(p_pos: np.ndarray, idx: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return {"pseudo_labels": int(len(idx)), "positive": int(y.sum()), "negative": int(len(y) - y.sum()),
            "confident_positive": int((p_pos >= 0.5).sum()), "unlabelled": int(len(p_pos))}


def self_train_head(
    head: str,
    X: np.ndarray,
    y: np.ndarray,
    X_unlabelled: np.ndarray,
    *,
    settings: SelfTrainSettings = SelfTrainSettings(),
    groups: Any = None,
    class_weight: str | None = None,
    seed: int = 0,
    folds: Any = None,
    n_jobs: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Self-train stage-two head ``head`` on labelled vectors ``X, y`` and unlabelled vectors.

    Returns the student as a :class:`~pipeline.heads.FittedHead` (``fit_seconds`` covers teacher and
    students) and the record for the bundle manifest: teacher, settings and per-round pseudo-label counts.
    """
    from dataclasses import replace

    from pipeline.heads import build_head, fit_head, unit_rows

    start = time.perf_counter()
    teacher = fit_head(head, X, y, groups=groups, class_weight=class_weight, seed=seed, folds=folds, n_jobs=n_jobs)
    teacher_seconds = time.perf_counter() - start
    current, rounds = teacher.estimator, []
    for _ in range(settings.rounds):
        p_pos = current.predict_proba(X_unlabelled)[:, 1] if len(X_unlabelled) else np.zeros(0)
        idx, y_pseudo = select_pseudo(p_pos, settings.threshold, settings.max_pseudo)
        rounds.append(_round_record(p_pos, idx, y_pseudo))
        if not len(idx):
            break
        student = build_head(head, teacher.params, class_weight=class_weight, seed=seed, n_train=len(y) + len(idx),
                             unit=unit_rows(X))  # the teacher's preprocessing: unscaled on unit-length rows
        current = student.fit(np.vstack([X, X_unlabelled[idx]]), np.concatenate([y, y_pseudo]))
    seconds = time.perf_counter() - start
    record = {
        "teacher": {"kind": "frozen", "head": head, "params": teacher.params, "cv_accuracy": teacher.cv_accuracy,
                    "seconds": round(teacher_seconds, 3)},
        **asdict(settings), "rounds_run": rounds, "seconds": round(seconds, 3),
        "cost_vs_teacher": round(seconds / max(teacher_seconds, 1e-9), 2),
    }
    fitted = replace(teacher, estimator=current, fit_seconds=seconds,
                     search=f"{teacher.search}; self-trained, {len(rounds)} round(s)")
    return fitted, record


def distil(
    train: Dataset,
    unlabelled: list[str],
    *,
    out: str | Path,
    work_dir: str | Path,
    encoder: str = "minilm",
    teacher_method: str = "head",
    student_from: str = "teacher",
    settings: SelfTrainSettings = SelfTrainSettings(),
    seed: int = 0,
    test: Dataset | None = None,
    unlabelled_record: dict[str, Any] | None = None,
    device: str = "auto",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    **recipe: Any,
) -> Any:
    """Fine-tuned teacher -> pseudo-labels of ``unlabelled`` -> fine-tuned ``head`` student, saved at ``out``.

    The teacher (``teacher_method`` on ``train``, kept under ``work_dir`` so a killed run resumes) labels
    the unlabelled texts; the student, a ``head`` fine-tuning of the teacher's tuned encoder
    (``student_from="teacher"``) or of ``encoder`` afresh (``"base"``), trains for one epoch on the labels
    plus balanced confident pseudo-labels. Unless ``settings.max_pseudo`` says otherwise, the
    pseudo-labels are capped at the teacher's number of training passes (epochs x labels, or the texts
    of its setfit pairs) less the labels, so the student
    costs about one teacher; the run's cost (teacher, labelling, students) is recorded against the teacher's.
    A teacher already saved under ``work_dir`` by a killed run of the same data is reused. ``recipe``
    settings apply to the teacher; with ``test``, both are scored on it. Returns the student bundle,
    whose manifest has a ``self_train`` entry (and ``unlabelled``: ``unlabelled_record``).
    """
    from dataclasses import replace

    from pipeline.bundle import ENCODER_DIR
    from pipeline.finetune import finetune

    if student_from not in ("teacher", "base"):
        raise OptionError(f"student_from must be 'teacher' or 'base', got {student_from!r}.")

    work_dir = Path(work_dir)
    teacher = _finished_teacher(work_dir / "teacher", train, encoder, teacher_method, seed) or finetune(
        train, out=work_dir / "teacher", encoder=encoder, method=teacher_method, seed=seed, test=test,
        device=device, precision=precision, cache_dir=cache_dir, progress=progress, **recipe)
    teacher_seconds = teacher.manifest["finetune"]["fit_seconds"]
    details = teacher.manifest["finetune"]  # texts the teacher trained on: epochs x labels, or setfit's pairs
    passes = 2 * details["pairs"] if "pairs" in details else len(train) * details["recipe"]["epochs"]
    cap = settings.max_pseudo if settings.max_pseudo is not None else max(2, passes - len(train))
    current, rounds, seconds = teacher, [], teacher_seconds
    for r in range(settings.rounds):
        start = time.perf_counter()
        p_pos = current.head.predict_proba(current.get_encoder().encode(unlabelled))[:, 1] if unlabelled else np.zeros(0)
        idx, y_pseudo = select_pseudo(p_pos, settings.threshold, cap)
        rounds.append({**_round_record(p_pos, idx, y_pseudo), "label_seconds": round(time.perf_counter() - start, 2)})
        seconds += time.perf_counter() - start
        if not len(idx):
            break
        student_train = replace(
            train, texts=train.texts + [unlabelled[i] for i in idx], labels=np.concatenate([train.labels, y_pseudo]),
            groups=None if train.groups is None else list(train.groups) + [None] * len(idx))
        last = r == settings.rounds - 1
        start_from = encoder if student_from == "base" else f"st:{current.path / ENCODER_DIR}"
        current = finetune(student_train, out=Path(out) if last else work_dir / f"student-{r}", encoder=start_from,
                           method="head", seed=seed, epochs=1, test=test if last else None, device=device,
                           precision=precision, cache_dir=cache_dir, progress=progress,
                           checkpoint_dir=work_dir / f"student-{r}.ckpt")
        seconds += current.manifest["finetune"]["fit_seconds"]
    if current is teacher:  # no confident pseudo-label: the teacher is the result
        teacher.save(Path(out), encoder_dir=teacher.path / ENCODER_DIR)
    current.manifest["self_train"] = {
        "teacher": {"kind": "finetune", "method": teacher_method, "encoder": encoder, "seconds": teacher_seconds,
                    "labels": len(train), "test_metrics": teacher.manifest["metrics"]["test"]},
        "student": {"kind": "finetune", "method": "head", "epochs": 1, "from": student_from},
        **asdict(settings), "pseudo_cap": cap, "rounds_run": rounds, "seconds": round(seconds, 2),
        "cost_vs_teacher": round(seconds / max(teacher_seconds, 1e-9), 2),
    }
    if unlabelled_record is not None:
        current.manifest["unlabelled"] = unlabelled_record
    current.save(current.path, encoder_dir=current.path / ENCODER_DIR)  # re-save with the record
    return current


def _finished_teacher(path: Path, train: Dataset, encoder: str, method: str, seed: int) -> Any:
    """The teacher bundle a killed run already saved at ``path``, if it was trained on ``train`` the same way."""
    from pipeline.bundle import Bundle, BundleError

    try:
        bundle = Bundle.load(path)
    except (BundleError, OSError):
        return None
    m = bundle.manifest
    same = (m["train"]["hash"] == train.fingerprint() and m["train"]["seed"] == seed
            and m["head"]["name"] == f"finetune-{method}" and m.get("finetune", {}).get("base_encoder") == encoder)
    return bundle if same else None
