"""Self-training: a teacher labels unlabelled texts, a student learns from the labels plus the
teacher's pseudo-labels.

Pseudo-labels are never empty: the teacher ranks the unlabelled texts by its probability of each
class, and the most confident ``fraction`` of them is kept, each class in the share the teacher predicts
for it (``balance="predicted"``, the default: no 50/50 prior on a target whose positive rate is not a
half) or half as each class (``balance="equal"``), optionally only above a confidence
``threshold``; with ``rounds`` > 1 the student becomes the next teacher. Two students:

- :func:`self_train_head` — a frozen-encoder scikit-learn head. The teacher's grid point is chosen by
  cross-validation on the labels alone; the student refits that point on labels + pseudo-labels
  (no second search, so a round costs one fit), with the teacher's prompt prior.
- :func:`distil` — a fine-tuned encoder: a fine-tuned teacher (``head`` or ``setfit``) labels the
  unlabelled texts and a fine-tuned ``head`` student trains on labels + pseudo-labels (distillation),
  aiming at the teacher's probabilities (soft targets) unless ``soft`` is off, its training set capped
  so the whole run costs about three teachers (teacher, labelling, student).

Both take unlabelled texts or vectors only: the functions have no parameter through which labels of
the unlabelled set could arrive.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import OptionError
from pipeline.finetune.recipe import Recipe, Runtime, make_recipe, recipe_for
from pipeline.unlabelled.choices import BALANCES
from pipeline.unlabelled.keep_mean import mean_positive, with_mean
from pipeline.data.dataset import Dataset
from pipeline.data.unlabelled import Unlabelled




@dataclass(frozen=True)
class SelfTrainSettings:
    """How pseudo-labels are chosen and learnt."""

    fraction: float = 0.5  # share of the unlabelled texts pseudo-labelled: the most confident of each class
    threshold: float | None = None  # also keep only those whose class probability is at least this
    soft: bool = True  # distillation: the student aims at the teacher's probabilities, not at 0/1
    rounds: int = 1  # teacher -> student passes; each student labels the unlabelled texts for the next
    max_pseudo: int | None = None  # most pseudo-labels per round; None: as the fraction gives
    balance: str = BALANCES[0]  # pseudo-labels per class: "predicted" (the teacher's class shares) or "equal" halves

    @property
    def tag(self) -> str:
        """``[name=value,...]`` of the settings that differ from the defaults ("" if none), for method names."""
        default = asdict(SelfTrainSettings())
        changed = {k: v for k, v in asdict(self).items() if v != default[k]}
        return "[" + ",".join(f"{k}={v}" for k, v in changed.items()) + "]" if changed else ""

    @property
    def key(self) -> str:
        """A short hash of the settings (work files of runs with other settings do not collide)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise OptionError(f"self-training fraction must be in (0, 1], got {self.fraction}.")
        if self.threshold is not None and not 0.5 <= self.threshold < 1:
            raise OptionError(f"self-training threshold must be in [0.5, 1), got {self.threshold}.")
        if self.rounds < 1:
            raise OptionError(f"self-training rounds must be at least 1, got {self.rounds}.")
        if self.max_pseudo is not None and self.max_pseudo < 2:
            raise OptionError(f"max_pseudo must be at least 2, got {self.max_pseudo}.")
        if self.balance not in BALANCES:
            raise OptionError(f"self-training balance must be one of {', '.join(BALANCES)}, got {self.balance!r}.")


def select_pseudo(p_pos: np.ndarray, settings: SelfTrainSettings, cap: int | None = None,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices, 0/1 pseudo-labels) of unlabelled texts with teacher probabilities of positive ``p_pos``.

    ``settings.fraction`` of the texts, the surest of each class: with ``balance="equal"`` the ``k``
    most positive and ``k`` most negative (``k`` half the fraction, at least one each while there are
    two texts), less those under ``settings.threshold``, then as many of each class as the scarcer has;
    with ``"predicted"`` each class gets the fraction of the texts the teacher assigns to it (p >= 0.5
    positive), so the pseudo-labels keep the teacher's class rates instead of forcing 50/50. Over
    ``cap`` (or ``settings.max_pseudo``) a seeded random draw keeps ``cap`` of them in the same class
    proportions, so a small fraction means the most confident and a large one a spread of confidence.
    """
    p_pos = np.asarray(p_pos, dtype=np.float64)
    order = np.argsort(-p_pos, kind="stable")
    if settings.balance == "equal":
        k_pos = k_neg = min(len(p_pos) // 2, max(1, int(settings.fraction * len(p_pos) / 2)))
    else:
        n_pos = int((p_pos >= 0.5).sum())
        k_pos, k_neg = (min(n, max(1, int(settings.fraction * n))) for n in (n_pos, len(p_pos) - n_pos))
    pos, neg = order[:k_pos], order[::-1][:k_neg]
    if settings.threshold is not None:
        pos, neg = pos[p_pos[pos] >= settings.threshold], neg[p_pos[neg] <= 1 - settings.threshold]
    if settings.balance == "equal":
        pos, neg = pos[:min(len(pos), len(neg))], neg[:min(len(pos), len(neg))]
    limit = min((c for c in (cap, settings.max_pseudo) if c is not None), default=None)
    if limit is not None and len(pos) + len(neg) > limit:
        rng = np.random.default_rng(seed)
        keep_pos = limit // 2 if settings.balance == "equal" else round(limit * len(pos) / (len(pos) + len(neg)))
        keep_neg = keep_pos if settings.balance == "equal" else limit - keep_pos
        pos, neg = (np.sort(rng.choice(side, n, replace=False)) for side, n in ((pos, keep_pos), (neg, keep_neg)))
    idx = np.concatenate([neg, pos])
    return idx, np.concatenate([np.zeros(len(neg), np.int64), np.ones(len(pos), np.int64)])


def round_record(p_pos: np.ndarray, idx: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Pseudo-label counts of a round, and the teacher's least confidence among those kept."""
    sure = np.maximum(p_pos[idx], 1 - p_pos[idx])
    return {"pseudo_labels": int(len(idx)), "positive": int(y.sum()), "negative": int(len(y) - y.sum()),
            "least_confidence": round(float(sure.min()), 4) if len(idx) else None,
            "predicted_positive": int((p_pos >= 0.5).sum()), "unlabelled": int(len(p_pos))}


def self_train_head(
    head: Any,
    X: np.ndarray,
    y: np.ndarray,
    X_unlabelled: np.ndarray,
    *,
    settings: SelfTrainSettings = SelfTrainSettings(),
    options: Any = None,
    keep_mean: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Self-train stage-two head ``head`` (a registered name or a :class:`~pipeline.heads.registry.HeadSpec`) on
    labelled vectors ``X, y`` and unlabelled vectors.

    ``prompt_direction`` gives the teacher its prompt prior (:mod:`pipeline.heads.prompts`), and the students keep
    it, at the strength of their own training size (labels + pseudo-labels): without it, a student learnt from
    about 250 target texts lost 3-4 points on Chinese and Spanish reviews with 128 English labels. With
    ``keep_mean`` each student keeps the teacher's mean probability of positive on the unlabelled texts
    (:func:`pipeline.unlabelled.keep_mean.with_mean`: for labels and unlabelled texts of two kinds, such as
    English labels and Chinese texts).

    Returns the student as a :class:`~pipeline.heads.registry.FittedHead` (``fit_seconds`` covers teacher and
    students) and the record for the bundle manifest: teacher, settings and per-round pseudo-label counts.
    """

    from pipeline.heads.registry import FitOptions, fit_head

    o = options if options is not None else FitOptions()
    seed = o.seed
    start = time.perf_counter()
    teacher = fit_head(head, X, y, o)
    teacher_seconds = time.perf_counter() - start
    current, rounds = teacher.estimator, []
    teacher_mean = mean_positive(teacher.estimator, X_unlabelled) if keep_mean else None
    for _ in range(settings.rounds):
        p_pos = current.predict_proba(X_unlabelled)[:, 1] if len(X_unlabelled) else np.zeros(0)
        idx, y_pseudo = select_pseudo(p_pos, settings, seed=seed)
        rounds.append(round_record(p_pos, idx, y_pseudo))
        if not len(idx):
            break
        X_student, y_student = np.vstack([X, X_unlabelled[idx]]), np.concatenate([y, y_pseudo])
        current = _refit_student(head, teacher.params, X_student, y_student, o)
        if teacher_mean is not None:
            rounds[-1]["intercept_shift"] = round(with_mean(current, X_unlabelled, teacher_mean), 4)
    seconds = time.perf_counter() - start
    record = {
        "teacher": {"kind": "frozen", "head": getattr(head, "name", head), "params": teacher.params, "cv_accuracy": teacher.cv_accuracy,
                    "seconds": round(teacher_seconds, 3)},
        **asdict(settings), "rounds_run": rounds, "seconds": round(seconds, 3),
        "cost_vs_teacher": round(seconds / max(teacher_seconds, 1e-9), 2),
        **({"teacher_mean": round(teacher_mean, 4)} if teacher_mean is not None else {}),
    }
    fitted = replace(teacher, estimator=current, fit_seconds=seconds,
                     search=f"{teacher.search}; self-trained, {len(rounds)} round(s)")
    return fitted, record


def _refit_student(head: Any, params: dict[str, Any], X: np.ndarray, y: np.ndarray, options: Any) -> Any:
    """A student: ``head`` at the teacher's grid point ``params``, refitted on ``X, y`` (labels + pseudo-labels)
    with no search, the teacher's preprocessing (unscaled on unit-length rows) and the teacher's prompt prior
    (``options.prompt_direction``, for prompted heads) at the strength of ``len(y)`` training rows."""
    from pipeline.heads.registry import FitOptions, HeadSpec, build_head, fit_head, get_head, unit_rows

    unit, spec = unit_rows(X), head if isinstance(head, HeadSpec) else get_head(head)
    if options.prompt_direction is None or not spec.prompted:
        student = build_head(spec.name, params, class_weight=options.class_weight, seed=options.seed, n_train=len(y),
                             unit=unit)
        return student.fit(X, y)
    spec = replace(spec.for_rows(unit), default=dict(params), unit_default=None, spread_scaled=None)
    return fit_head(spec, X, y,
                    FitOptions(class_weight=options.class_weight, seed=options.seed,
                               prompt_direction=options.prompt_direction), selection=None).estimator


@dataclass(frozen=True)
class Teacher:
    """The fine-tuned teacher of :func:`distil`, and where its student starts."""

    encoder: str = "minilm"
    recipe: Recipe | None = None  # the teacher's method and settings; default: recipe_for(encoder)
    student_from: str = "teacher"  # the student fine-tunes the teacher's tuned encoder, or "base": ``encoder``


def distil(
    train: Dataset,
    unlabelled: Unlabelled,
    *,
    out: str | Path,
    work_dir: str | Path,
    teacher: Teacher = Teacher(),
    settings: SelfTrainSettings = SelfTrainSettings(),
    seed: int = 0,
    test: Dataset | None = None,
    runtime: Runtime = Runtime(),
) -> Any:
    """Fine-tuned teacher -> pseudo-labels of ``unlabelled.texts`` -> fine-tuned ``head`` student, saved at ``out``.

    The teacher (``teacher.recipe`` on ``train``, kept under ``work_dir`` so a killed run resumes) labels
    the texts (:func:`select_pseudo`, at most :func:`_pseudo_cap`); the student, a ``head`` fine-tuning of
    the teacher's tuned encoder (``teacher.student_from="teacher"``) or of ``teacher.encoder`` (``"base"``), trains one epoch on the labels plus those texts (soft targets if ``settings.soft``). With
    ``test``, both are scored on it. Returns the student bundle; its manifest's ``self_train`` records
    the teacher, the rounds and the cost against the teacher, its ``unlabelled`` where the texts came from
    (``unlabelled.record``, when not empty).
    """
    from pipeline.bundle.bundle import ENCODER_DIR
    from pipeline.data.unlabelled import texts_hash

    if teacher.student_from not in ("teacher", "base"):
        raise OptionError(f"student_from must be 'teacher' or 'base', got {teacher.student_from!r}.")
    work_dir = Path(work_dir)
    runtime = replace(runtime, checkpoint_dir=None, export=None)
    plan, teacher = teacher, _teacher(train, work_dir / "teacher", teacher, seed, test, runtime)
    # the student: one epoch of head fine-tuning, reading texts as the teacher does
    student_recipe = make_recipe("head", epochs=1, max_length=teacher.manifest["finetune"]["recipe"]["max_length"])
    teacher_seconds = seconds = teacher.manifest["finetune"]["fit_seconds"]
    cap, current, rounds = _pseudo_cap(teacher.manifest["finetune"], len(train)), teacher, []
    corpus = texts_hash(unlabelled.texts)[:10]
    for r in range(settings.rounds):
        start = time.perf_counter()
        p_pos = _pool_probabilities(current, unlabelled.texts)
        idx, y_pseudo = select_pseudo(p_pos, settings, cap, seed)
        rounds.append({**round_record(p_pos, idx, y_pseudo), "label_seconds": round(time.perf_counter() - start, 2)})
        seconds += time.perf_counter() - start
        if not len(idx):
            break
        student_train, targets = student_set(train, unlabelled.texts, idx, y_pseudo, p_pos if settings.soft else None)
        last, name = r == settings.rounds - 1, f"student-{r}-{settings.key}-{corpus}"  # other settings, texts: files
        current = _student(student_train, targets, Path(out) if last else work_dir / name,
                           plan.encoder if plan.student_from == "base" else f"st:{current.path / ENCODER_DIR}",
                           student_recipe, seed, test if last else None,
                           replace(runtime, checkpoint_dir=work_dir / f"{name}.ckpt"))
        seconds += current.manifest["finetune"]["fit_seconds"]
    if current is teacher:  # no text to pseudo-label: the teacher is the result
        teacher.save(Path(out), encoder_dir=teacher.path / ENCODER_DIR)
    current.manifest["self_train"] = {
        "teacher": _teacher_record(teacher), "student": {"kind": "finetune", "method": "head", "epochs": 1,
                                                         "from": plan.student_from},
        **asdict(settings), "pseudo_cap": cap, "rounds_run": rounds, "seconds": round(seconds, 2),
        "cost_vs_teacher": round(seconds / max(teacher_seconds, 1e-9), 2),
    }
    if unlabelled.record:
        current.manifest["unlabelled"] = unlabelled.record
    current.save(current.path, encoder_dir=current.path / ENCODER_DIR)  # re-save with the record
    return current


def _teacher(train: Dataset, path: Path, plan: Teacher, seed: int, test: Dataset | None, runtime: Runtime) -> Any:
    """The teacher bundle at ``path``: one a killed run already saved there for the same data, or a new
    fine-tuning (``plan.recipe`` on ``train``, scored on ``test``)."""
    from pipeline.bundle.bundle import Bundle, BundleError
    from pipeline.finetune import finetune

    recipe = plan.recipe if plan.recipe is not None else recipe_for(plan.encoder)
    method, encoder = recipe.method, plan.encoder

    try:
        bundle = Bundle.load(path)
        m = bundle.manifest
        if (m["train"]["hash"] == train.fingerprint() and m["train"]["seed"] == seed
                and m["head"]["name"] == f"finetune-{method}" and m.get("finetune", {}).get("base_encoder") == encoder):
            return bundle
    except (BundleError, OSError):
        pass
    return finetune(train, out=path, recipe=recipe, encoder=encoder, seed=seed, test=test, runtime=runtime)


def _teacher_record(teacher: Any) -> dict[str, Any]:
    """What the manifest's ``self_train.teacher`` says of a fine-tuned teacher bundle."""
    m = teacher.manifest
    return {"kind": "finetune", "method": m["head"]["name"].removeprefix("finetune-"),
            "encoder": m["finetune"]["base_encoder"], "seconds": m["finetune"]["fit_seconds"],
            "labels": m["train"]["size"], "test_metrics": m["metrics"]["test"]}


def _pseudo_cap(details: dict[str, Any], n_labels: int) -> int:
    """Pseudo-labels that cost the student about what the teacher cost: the teacher's training passes
    (``details``: its manifest's ``finetune``; setfit's pair texts, or epochs x labels) less the labels."""
    passes = 2 * details["pairs"] if "pairs" in details else n_labels * details["recipe"]["epochs"]
    return max(2, passes - n_labels)


def _pool_probabilities(bundle: Any, texts: list[str]) -> np.ndarray:
    """``bundle``'s probability of positive for each of ``texts``, kept beside the bundle under the tuned
    encoder's fingerprint and the texts' hash (a rerun, or another student of the same teacher, reads it
    instead of encoding the texts again)."""
    from pipeline.data.unlabelled import texts_hash

    if not texts:
        return np.zeros(0)
    key = f"{bundle.manifest['encoder']['fingerprint'][:16]}-{texts_hash(texts)[:16]}"
    saved = bundle.path.with_name(f"{bundle.path.name}.proba-{key}.npy")
    if saved.exists():
        return np.load(saved)
    p_pos = bundle.head.predict_proba(bundle.get_encoder().encode(texts))[:, 1]
    tmp = saved.with_suffix(".tmp.npy")
    np.save(tmp, p_pos)
    tmp.replace(saved)
    return p_pos


def student_set(train: Dataset, unlabelled: list[str], idx: np.ndarray, y_pseudo: np.ndarray,
                 p_pos: np.ndarray | None) -> tuple[Dataset, np.ndarray | None]:
    """The student's training set (labels, then the pseudo-labelled texts) and, given the teacher's
    probabilities ``p_pos``, its soft targets (the labels as 0/1, the pseudo-labelled texts as ``p_pos``)."""
    from dataclasses import replace

    student = replace(
        train, texts=train.texts + [unlabelled[i] for i in idx], labels=np.concatenate([train.labels, y_pseudo]),
        groups=None if train.groups is None else list(train.groups) + [None] * len(idx))
    targets = None if p_pos is None else np.concatenate([train.labels, p_pos[idx]]).astype(np.float32)
    return student, targets


def _student(train: Dataset, targets: np.ndarray | None, out: Path, start_from: str, recipe: Recipe, seed: int,
             test: Dataset | None, runtime: Runtime) -> Any:
    """The student: ``recipe`` fine-tuning of ``start_from`` on ``train`` (aiming at ``targets`` if given)."""
    from pipeline.finetune import finetune

    return finetune(train, out=out, recipe=recipe, encoder=start_from, seed=seed, test=test, runtime=runtime,
                    targets=targets)
