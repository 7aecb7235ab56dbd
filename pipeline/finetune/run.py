"""Fine-tuning runs: :func:`finetune` (train, then save a bundle with the tuned weights) and
:func:`finetune_and_score` (for experiment grids). The pieces live beside it: ``recipe`` (settings),
``body`` (load the encoder network), ``head``/``setfit`` (the two methods), ``loop`` (the training
loop with checkpoints), ``checkpoint`` and ``batching``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import OptionError
from pipeline.data.readers import DataError
from pipeline.data.dataset import Dataset
from pipeline.encoders.spec import EncoderSpec, check_files, parse_spec
from pipeline.finetune.export import EXPORTS, export_tuned
from pipeline.finetune.recipe import MIN_FIT_PER_CLASS, Recipe, Runtime, auto_epochs, holdout, recipe_for

if TYPE_CHECKING:
    from pipeline.bundle.bundle import Bundle

logger = logging.getLogger("pipeline.finetune")

# long-text strategy of a tuned encoder when predicting: texts within the training window get the
# vectors the head was trained on; longer ones are averaged over windows of it instead of cut
PREDICT_LONG_TEXT = "auto"


def default_checkpoint_dir(out: str | Path) -> Path:
    """Where a run writing bundle ``out`` keeps its checkpoint: the sibling ``<out>.ckpt``."""
    out = Path(out)
    return out.parent / f"{out.name}.ckpt"


def finetune(
    train: Dataset,
    *,
    out: str | Path,
    recipe: Recipe | None = None,
    encoder: str | EncoderSpec = "minilm",
    seed: int = 0,
    test: Dataset | None = None,
    runtime: Runtime = Runtime(),
    targets: np.ndarray | None = None,
) -> Bundle:
    """Fine-tune ``encoder`` on the labelled ``train`` set with ``recipe`` and save the bundle to ``out``.

    ``train`` is the label budget (e.g. :func:`pipeline.data.dataset.sample_budget` of the pool); ``recipe``
    (default: :func:`recipe_for` the encoder, method ``head``) holds the method and its settings
    (:func:`~pipeline.finetune.recipe.make_recipe`; ``epochs=None`` is chosen by the data size). With ``test``, the manifest records
    test metrics. Rerunning the same call after a kill resumes from the checkpoint in
    ``runtime.checkpoint_dir`` (default :func:`default_checkpoint_dir`). Returns the saved
    :class:`~pipeline.bundle.bundle.Bundle` (``runtime.cache_dir`` is its embedding cache for ``predict``).
    ``runtime.export`` (``onnx`` or ``int8``, :mod:`.export`) also saves the tuned encoder's export in the bundle
    (probed against its torch fp32 vectors), so ``predict`` runs it without torch. ``targets`` (method ``head``, no validation slice):
    each training text's probability of the positive class, trained on in place of its 0/1 label
    (distillation's soft labels; the probe still fits the labels).
    """
    from pipeline.bundle.bundle import check_out_dir
    from pipeline.finetune.body import check_finetunable, freeze_word_embeddings, load_body, resolve_runtime

    spec = parse_spec(encoder)
    check_finetunable(spec)
    check_files(spec)
    options = spec.kwargs  # minilm[max_length=128,precision=fp32,long=head-tail]: flags win over them
    precision = runtime.precision if runtime.precision != "auto" else options.get("precision", "auto")
    recipe = recipe if recipe is not None else recipe_for(spec)
    _check_train(train)
    targets = _check_targets(targets, train, recipe)
    if runtime.export not in (None, *EXPORTS):
        raise OptionError(f"unknown export {runtime.export!r}; use --export {' or '.join(EXPORTS)} (or leave it out).")
    if "layers" in options and recipe.method != "head":
        raise OptionError(f"{spec}: layers is fine-tuned by method head; drop layers or --method setfit.")
    out = Path(out)
    check_out_dir(out)
    device, precision = resolve_runtime(runtime.device, precision)
    fit_set, val = holdout(train, recipe.val_fraction or 0.0, seed)
    if recipe.epochs is None:
        recipe = replace(recipe, epochs=auto_epochs(len(fit_set), recipe.batch_size, recipe.grad_accum))
    run = _Run(str(spec), recipe, seed, device, precision, runtime.progress, val is not None, targets)
    checkpoint_dir = runtime.checkpoint_dir
    store = run.checkpoints(Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir(out), train)
    logger.info(
        "fine-tuning %s (method %s) on %d labels%s, %s %s", run.encoder, recipe.method, len(fit_set),
        f" + {len(val)} for validation" if val is not None else "", device, precision,
    )
    start = time.perf_counter()
    layers = {"layers": options["layers"]} if "layers" in options else {}  # the pooling trained through
    body = load_body(EncoderSpec(spec.name).with_options(layers), max_length=recipe.max_length, device=device,
                     work_dir=runtime.cache_dir)
    if recipe.freeze_embeddings:
        freeze_word_embeddings(body)
    head, result, details = _train(body, train, fit_set, val, run, store)
    details.update(
        base_encoder=run.encoder, recipe=asdict(recipe), device=device, precision=precision, history=result.history,
        best_epoch=result.best_epoch, resumed_from=result.resumed_from,
        fit_seconds=round(time.perf_counter() - start, 2),
    )
    bundle = _save_bundle(_Tuned(body, head, details), train, test, out, seed=seed, options=options, runtime=runtime)
    store.remove()
    return bundle


@dataclass(frozen=True)
class _Run:
    """The settings of one fine-tuning run, resolved (epochs, device, precision)."""

    encoder: str
    recipe: Recipe
    seed: int
    device: str
    precision: str
    progress: bool
    validated: bool  # a validation slice is held out: patience applies
    targets: np.ndarray | None = None  # head: soft targets, one per training text (distillation)

    def checkpoints(self, directory: Path, train: Dataset) -> Any:
        """The run's :class:`~pipeline.finetune.checkpoint.CheckpointStore` (it resumes only this run)."""
        from pipeline.finetune.checkpoint import CheckpointStore

        return CheckpointStore(directory, run_key(train, self.encoder, self.recipe, self.seed, self.device,
                                                  self.precision, self.targets))

    def loop_settings(self) -> Any:
        """The :class:`~pipeline.finetune.loop.LoopSettings` of the recipe on this device."""
        from pipeline.finetune.loop import LoopSettings

        r = self.recipe
        return LoopSettings(epochs=r.epochs, grad_accum=r.grad_accum, warmup_ratio=r.warmup_ratio,
                            weight_decay=r.weight_decay, patience=r.patience if self.validated else None,
                            device=self.device, precision=self.precision, progress=self.progress)


def _train(body: Any, train: Dataset, fit_set: Dataset, val: Dataset | None, run: _Run,
           store: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(head, loop result, method details): train ``body`` with the run's method (``head``: on ``fit_set``,
    validated on ``val``; ``setfit``: on pairs of all of ``train``)."""
    r = run.recipe
    if r.method == "head":
        from pipeline.finetune.head import train_head

        head, result, probe = train_head(
            body, fit_set.texts, fit_set.labels, None if val is None else (val.texts, val.labels),
            recipe=r, seed=run.seed, settings=run.loop_settings(), store=store, targets=run.targets,
        )
        return head, result, {"val_size": 0 if val is None else len(val), "probe": probe,
                              "soft_targets": run.targets is not None}
    from pipeline.finetune.setfit import train_setfit

    head, result, n_pairs = train_setfit(
        body, train.texts, train.labels, recipe=r, seed=run.seed, settings=run.loop_settings(), store=store,
    )
    return head, result, {"pairs": n_pairs}


def run_key(train: Dataset, encoder: str, recipe: Recipe, seed: int, device: str, precision: str,
            targets: np.ndarray | None = None) -> str:
    """Hash of everything that defines a run: a checkpoint resumes only the run it came from."""
    spec = {
        "train": train.fingerprint(), "encoder": encoder, "recipe": asdict(recipe), "seed": seed,
        "device": device.split(":", 1)[0], "precision": precision,
    }
    if targets is not None:
        spec["targets"] = hashlib.sha256(targets.tobytes()).hexdigest()
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()


def _check_targets(targets: Any, train: Dataset, recipe: Recipe) -> np.ndarray | None:
    """``targets`` as float32, checked against ``train`` and the recipe (``None`` stays ``None``)."""
    if targets is None:
        return None
    if recipe.method != "head" or recipe.val_fraction:
        raise OptionError("soft targets need method 'head' without a validation slice (val_fraction 0).")
    targets = np.asarray(targets, dtype=np.float32)
    if targets.shape != (len(train),) or not np.all((targets >= 0) & (targets <= 1)):
        raise OptionError(f"targets must be {len(train)} probabilities in [0, 1], one per training text; "
                          f"got shape {targets.shape}.")
    return targets


def _check_train(train: Dataset) -> None:
    if train.labels is None:
        raise DataError(f"{train.name or 'training data'}: has no labels to fine-tune on; pass --label-col.")
    counts = np.bincount(train.labels, minlength=2)
    if counts.min() < MIN_FIT_PER_CLASS:
        raise DataError(
            f"fine-tuning needs at least {MIN_FIT_PER_CLASS} texts of each class; got {counts.tolist()} "
            f"({'/'.join(train.label_names)}). Use a larger budget."
        )


@dataclass(frozen=True)
class _Tuned:
    """What a fine-tuning run made: the tuned ``body``, its ``head``, and ``details`` for the manifest."""

    body: Any
    head: Any
    details: dict[str, Any]


def _save_bundle(tuned: _Tuned, train: Dataset, test: Dataset | None, out: Path, *, seed: int,
                 options: dict[str, Any], runtime: Runtime) -> Bundle:
    """Save the tuned body and head as a bundle at ``out`` (test metrics in the manifest; ``runtime.cache_dir``
    is its embedding cache, ``runtime.export``: see :func:`finetune`). Of the encoder spec's ``options``: the
    tuned encoder treats texts over its max length by ``long_text`` (default :data:`PREDICT_LONG_TEXT`) when
    predicting, and pools hidden ``layers`` (``A-B``) as it was trained to, when given."""
    from pipeline.bundle.bundle import Bundle
    from pipeline.encoders import get_encoder
    from pipeline.bundle.manifest import build, encoder_options, metrics_section, train_section
    from pipeline.finetune.body import save_body
    from pipeline.predict.metrics import evaluate
    from pipeline.predict.prior import PriorModel
    from pipeline.bundle.bundle import SAMPLE_FILE
    from pipeline.predict.shift import keep_sample

    body, head, details = tuned.body, tuned.head, tuned.details
    cache_dir, export = runtime.cache_dir, runtime.export
    staging = out.parent / f".{out.name}.encoder-tmp"
    shutil.rmtree(staging, ignore_errors=True)  # left by a run killed while saving
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_body(body, staging)
        layers, long_text = options.get("layers"), options.get("long_text", PREDICT_LONG_TEXT)
        # an export reads up to the network's limit: it gets the training window the torch model reads in
        window = {"max_length": details["recipe"]["max_length"]} if export else {}
        backend, quantize = export_tuned(staging, export, (test or train).texts, long_text=long_text,
                                         layers=layers, **window) if export else ("torch", "none")
        encoder = get_encoder("st:" + str(staging), long_text=long_text, backend=backend, quantize=quantize,
                              work_dir=cache_dir, layers=layers, **window)
        options = encoder_options(encoder)  # long_text (default auto), max_length the training window
        if layers is not None:
            options["layers"] = layers
        metrics = None
        if test is not None and len(test):
            metrics = evaluate(test.labels, head.predict_proba(encoder.encode(test.texts)))
        # for --prior/--adapt-prior and the shift check: the head refitted out of fold on the tuned vectors
        # of its own training texts (optimistic: the body saw them all), and a sample of those vectors
        X_train = encoder.encode(train.texts)
        prior = PriorModel.fit(head, X_train, train.labels, seed=seed)
        sample = keep_sample(X_train, seed)
        recipe = details["recipe"]
        manifest = build(
            encoder=encoder,
            head={"name": f"finetune-{recipe['method']}", "search": _search_note(details),
                  "params": {k: v for k, v in recipe.items() if v is not None and k != "method"},
                  "fit_seconds": details["fit_seconds"]},
            label_names=list(train.label_names),
            train=train_section(train, len(train), seed),
            metrics=metrics_section(metrics, test),
            finetune=details,
            prior=prior.to_dict(),
            shift={"file": SAMPLE_FILE, "rows": len(sample), "of": len(train)},
        )
        manifest["encoder"].update(options=options, base=details["base_encoder"])
        bundle = Bundle(head, manifest, cache_dir=cache_dir, shift_sample=sample)
        bundle.save(out, encoder_dir=staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bundle


def _search_note(details: dict[str, Any]) -> str:
    if details.get("val_size"):
        return f"early stopping on {details['val_size']} held-out labels, best epoch {details['best_epoch']}"
    if "pairs" in details:
        return f"contrastive pairs: {details['pairs']}"
    return "fixed epochs (no validation slice)"


def finetune_and_score(
    train: Dataset,
    tests: dict[str, Dataset],
    *,
    work_dir: str | Path,
    encoder: str = "minilm",
    recipe: Recipe | None = None,
    seed: int = 0,
    keep_bundle: bool = False,
    runtime: Runtime = Runtime(progress=False),
) -> tuple[dict[str, np.ndarray], float, float]:
    """For experiment grids: fine-tune on ``train``, then score every test set.

    Runs :func:`finetune` with bundle ``work_dir/bundle`` and checkpoint ``work_dir/checkpoint`` (so a
    killed grid resumes mid-run), and returns ``({name: (n, 2) probabilities}, fit seconds, encode
    seconds)``. Test texts are encoded by the bundle's own encoder, without the embedding cache (the
    tuned weights are never reused). The bundle is deleted afterwards unless ``keep_bundle``.
    """
    work_dir = Path(work_dir)
    start = time.perf_counter()
    bundle = finetune(train, out=work_dir / "bundle", recipe=recipe, encoder=encoder, seed=seed,
                      runtime=replace(runtime, checkpoint_dir=work_dir / "checkpoint"))
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    enc = bundle.get_encoder()
    probas = {name: bundle.head.predict_proba(enc.encode(ds.texts)) for name, ds in tests.items()}
    encode_seconds = time.perf_counter() - start
    if not keep_bundle:
        shutil.rmtree(bundle.path)
    return probas, fit_seconds, encode_seconds
