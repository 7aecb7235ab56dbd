"""The optional stage on the command line: ``finetune`` (and ``fit``/``finetune --self-train`` distillation)."""

from __future__ import annotations

from typing import Any

import click

from pipeline.cli.options import SEED, _budget, _cache_dir_option, _handle_errors, shows_training_log, source_options
from pipeline.cli.unlabelled import pop_unlabelled, unlabelled_options


# ---------------------------------------------------------------------------------------------- finetune
@click.command(short_help="Fine-tune an encoder end to end on a budget; save a bundle.")
@click.argument("source")
@source_options
@click.option("--encoder", default="minilm", show_default=True,
              help="Model to fine-tune: minilm, mpnet, st:NAME_OR_PATH, hf:NAME_OR_PATH, with options in brackets: "
                   "max_length and precision (as --max-length, --precision), long (how the tuned model treats "
                   "long texts when predicting; default auto: windows of the training length, averaged), layers (method head: train through the mean of "
                   "hidden layers A-B, the default encoder's pooling), e.g. minilm[max_length=128], "
                   "mpnet[layers=9-12].")
@click.option("--method", type=click.Choice(["head", "setfit"]), default="head", show_default=True,
              help="head: new task head trained end to end; setfit: contrastive pairs, then logistic regression.")
@click.option("--budget", default=None, callback=_budget, help="Train on a balanced sample of N labels of the pool.  [default: all]")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the budget sample, validation slice, data order and dropout.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle directory to write.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Passes over the data.  [default: head 3-10 by budget (at least 120 updates), setfit 1, --teacher frozen 1]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Encoder learning rate.  [default: head 3e-5, setfit 2e-5]")
@click.option("--head-lr", type=click.FloatRange(min=0, min_open=True), default=None, help="head: learning rate of the new head.  [default: 1e-3]")
@click.option("--head-type", type=click.Choice(["linear", "mlp"]), default=None,
              help="head: linear (logistic) or mlp (one hidden layer, dropout).  [default: linear]")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Texts (head) or pairs (setfit) per batch.  [default: 16]")
@click.option("--grad-accum", type=click.IntRange(min=1), default=None, help="Batches per optimizer step.  [default: 1]")
@click.option("--max-length", type=click.IntRange(min=8), default=None, help="Training window in word pieces (longer texts are cut); when predicting, longer texts are read "
              "whole through windows of this size.  [default: 64]")
@click.option("--val-fraction", type=click.FloatRange(0, 0.5), default=None,
              help="head: share of the budget held out for early stopping (e.g. 0.15); 0 = train on all labels.  [default: 0]")
@click.option("--patience", type=click.IntRange(min=1), default=None, help="head: epochs without improvement before stopping.  [default: 2]")
@click.option("--prompt-prior/--no-prompt-prior", "prompt_prior", default=None,
              help="head (linear): start from the default head on the frozen vectors (logreg, C by cross-validation, "
                   "with the prompt prior) instead of a logreg at C=1.  [default: off]")
@click.option("--freeze-embeddings/--no-freeze-embeddings", "freeze_embeddings", default=None,
              help="Keep the word-embedding matrix as it is. For a multilingual model (the e5 port) the languages share "
                   "it, so labels in one language cannot move the others' rows; e5 trained 2.5 times faster at the same accuracy.  [default: off]")
@click.option("--num-iterations", type=click.IntRange(min=1), default=None, help="setfit: positive (and negative) pairs per label.  [default: 20]")
@click.option("--max-pairs", type=click.IntRange(min=2), default=None, help="setfit: most pairs to train on, bounding the time.  [default: 10000]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True, help="Where to train.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
              help="auto: fp16 AMP on CUDA; bf16 autocast on CPUs with native bf16; else fp32.")
@click.option("--checkpoint-dir", default=None, type=click.Path(file_okay=False),
              help="Checkpoint after every epoch here; rerunning the command resumes.  [default: OUT.ckpt]")
@unlabelled_options
@click.option("--teacher", type=click.Choice(["finetuned", "frozen"]), default="finetuned", show_default=True,
              help="--self-train: who labels the unlabelled texts. finetuned: the model fine-tuned on the labels "
                   "(distillation, below); frozen: the encoder's frozen default head (logreg with the prompt prior, "
                   "self-trained on the texts as `fit --self-train`), then the encoder is fine-tuned once on the "
                   "labels plus its surest pseudo-labels (a noisy student; see below).")
@click.option("--max-pseudo", type=click.IntRange(min=2), default=None,
              help="--self-train: most pseudo-labels the student trains on, drawn from the --fraction the teacher is "
                   "surest of.  [default: frozen teacher 512; finetuned: the teacher's training passes]")
@click.option("--export", type=click.Choice(["onnx", "int8"]), default=None,
              help="Also save the tuned encoder's export in the bundle (checked against torch fp32), so predict "
                   "runs it without importing torch: onnx (fp32, onnxruntime) or int8 (OpenVINO static int8, "
                   "the default encoder's runtime).")
@_cache_dir_option
@_handle_errors
@shows_training_log
def finetune(source: str, encoder: str, method: str, budget: int | None, seed: int, out: str, device: str,
             precision: str, checkpoint_dir: str | None, export: str | None, cache_dir: str | None,
             **opts: Any) -> None:
    """Fine-tune ENCODER end to end on a label budget of SOURCE and save a model bundle to OUT.

    Uses the same leak-free split and balanced budget sample as `fit`, scores the result on the
    test split, and writes a bundle that `predict` and `evaluate` use like any other (its encoder/
    folder holds the tuned weights). A killed run resumes from its last checkpoint when rerun.

    \b
    Examples:
      review-transfer finetune rt --budget 1000 --out models/rt-minilm-ft-b1000
      review-transfer finetune rt --method setfit --budget 128 --seed 1 --out models/rt-setfit-b128
      review-transfer finetune rt --budget 128 --self-train --out models/rt-minilm-distil-b128
      review-transfer finetune rt --budget 1000 --export onnx --out models/rt-minilm-ft-onnx
      review-transfer finetune rt --encoder "mpnet[layers=9-12]" --prompt-prior --budget 1000 --out models/rt-mpnet-ft

    \b
    The last one fine-tunes the default encoder's network through its pooling. On RT at 1,000 labels it
    scored 88.4-88.9% on the validation split against 85.9-86.3% for the frozen default (2 seeds), for
    about 9 CPU minutes of training on one core (the default's head: under a second); the bundle then
    encodes with torch mpnet, about 0.035 CPU s a text; with --export int8 it predicts at the default's speed.

    \b
    --self-train distils: the model fine-tuned on the labels (--method) labels the unlabelled texts (the
    pool outside the budget, plus --unlabelled), then a `head` student, starting from the teacher's
    tuned encoder, trains one epoch on the labels plus balanced pseudo-labelled texts (drawn from the
    --fraction the teacher is surest of, as many as the teacher's training passes, so the run costs
    about 3 teachers), aiming at the teacher's probabilities (--soft). Work files: OUT.self-train/.

    \b
    --self-train --teacher frozen (a noisy student): the frozen default head, self-trained, labels the
    texts, and the encoder fine-tunes for one epoch (--epochs) on the labels plus --max-pseudo (512) of
    its surest pseudo-labels:
      review-transfer finetune rt --encoder "mpnet[layers=9-12]" --prompt-prior --budget 32
          --self-train --teacher frozen --balance equal --out models/rt-mpnet-noisy-b32
    On RT at 32 labels (3 seeds) it scored 86.0% on the validation split against 85.2% for its frozen
    teacher and 84.9% for fine-tuning on the labels alone (test split 83.5 / 82.8 / 82.2), about a
    seed's spread. At 16 labels one seed in three fell 3.5 points below its teacher; at 128 it tied
    fine-tuning on the labels alone (86.1) at half its CPU. Training takes about 2 CPU minutes on one
    core (0.2 s per text), plus encoding the unlabelled texts once with the frozen encoder.
    """
    import dataclasses

    from pipeline.encoders.spec import apply_flags
    from pipeline.finetune import Recipe, Runtime, recipe_for
    from pipeline.finetune.body import check_finetunable
    from pipeline.fit.finetune_job import FinetuneJob, finetune_source
    from pipeline.study.tables import format_scores

    settings = {f.name: opts.pop(f.name) for f in dataclasses.fields(Recipe) if f.name in opts}
    teacher, max_pseudo = opts.pop("teacher"), opts.pop("max_pseudo")
    self_train, unlabelled = pop_unlabelled(opts)
    if self_train is None and (teacher != "finetuned" or max_pseudo is not None):
        raise click.UsageError("--teacher and --max-pseudo choose how --self-train works; add --self-train.")
    if teacher == "frozen" and (method != "head" or self_train.rounds != 1):
        raise click.UsageError("--teacher frozen trains one student with --method head, in one round; drop "
                               "--method setfit and --rounds.")
    if self_train is not None and max_pseudo is not None:
        self_train = dataclasses.replace(self_train, max_pseudo=max_pseudo)
    (spec,) = apply_flags([encoder])  # a typo, a missing model or a frozen-only encoder fails before the data are read
    check_finetunable(spec)
    if self_train is None and unlabelled:
        raise click.UsageError("--unlabelled is used by --self-train here; add --self-train.")
    if self_train is not None and export and teacher != "frozen":
        raise click.UsageError("--export is not yet available with --self-train's fine-tuned teacher; fine-tune "
                               "without it, or use --teacher frozen.")
    runtime = Runtime(device=device, precision=precision, cache_dir=cache_dir, checkpoint_dir=checkpoint_dir,
                      export=export)
    job = FinetuneJob(source, str(spec), recipe_for(spec, method, **settings), out, budget=budget, seed=seed,
                      runtime=runtime, self_train=self_train, unlabelled=unlabelled, source_options=opts,
                      teacher=teacher)
    bundle = finetune_source(job, echo=lambda line: click.echo(line, err=True))
    if self_train is not None:
        describe = describe_noisy_student if teacher == "frozen" else describe_distillation
        click.echo(describe(bundle.manifest["self_train"], method), err=True)
    details, n_test = bundle.manifest["finetune"], bundle.manifest["metrics"]["test_size"]
    click.echo(f"saved {bundle.path}: {method} fine-tuning of {spec} on {bundle.manifest['train']['size']} "
               f"labels{' and pseudo-labels' if self_train else ''} in {details['fit_seconds']:.0f} s "
               f"({bundle.manifest['head']['search']})")
    if bundle.manifest["metrics"]["test"]:
        click.echo(f"test split ({n_test} texts):")
        click.echo(format_scores(bundle.manifest["metrics"]["test"], bundle.label_names))


def describe_noisy_student(record: dict[str, Any], method: str) -> str:
    """One line on a ``finetune --self-train --teacher frozen`` run: the frozen teacher and the pseudo-labels."""
    (taken,) = record["rounds_run"]
    return (f"teacher (frozen {record['teacher']['encoder']}, self-trained) in {record['teacher']['seconds']:.0f} s; "
            f"the {method} student trained on {taken['pseudo_labels']} of its {taken['unlabelled']} pseudo-labels "
            f"(least confidence {taken['least_confidence']})")


def describe_distillation(record: dict[str, Any], method: str) -> str:
    """One line on a ``finetune --self-train`` run: the teacher's test accuracy and time, pseudo-labels, cost."""
    return (f"teacher ({method}): test accuracy {record['teacher']['test_metrics']['accuracy']:.3f} in "
            f"{record['teacher']['seconds']:.0f} s; pseudo-labels per round: "
            f"{', '.join(str(r['pseudo_labels']) for r in record['rounds_run'])}; whole run "
            f"{record['cost_vs_teacher']:.1f}x the teacher's time")
