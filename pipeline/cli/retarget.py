"""The ``retarget`` command: carry a bundle to another site with a few of its labels (registered in
:mod:`pipeline.cli`; the work is in :mod:`pipeline.fit.retarget_bundle`)."""

from __future__ import annotations

from typing import Any

import click

from pipeline.cli.options import (ENCODER_PATH_HELP, SEED, TRUST_ENCODER_HELP, _cache_dir_option, _handle_errors,
                                  source_options)
from pipeline.cli.unlabelled import pop_unlabelled, retarget_unlabelled_options


def _strength(ctx: click.Context, param: click.Parameter, value: str) -> float | None:
    if value == "auto":
        return None
    try:
        strength = float(value)
    except ValueError:
        strength = -1.0
    if not strength > 0:
        raise click.BadParameter(f"{value!r}: give a positive number, 'inf' to keep the source direction, or 'auto'.",
                                 ctx, param)
    return strength


@click.command(short_help="Adapt a bundle to another site with a few of its labels.")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.argument("target", required=False)
@source_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory of the new bundle.")
@click.option("--n-labels", "--labels", "n_labels", type=click.IntRange(min=0), default=None,
              help="Use N labelled rows of TARGET drawn at random (seeded; redrawn until both classes are among "
                   "them); the rest are held back to score the new bundle. 0: none (only the threshold moves, "
                   "see below). --labels N is the same option under its older name.  [default: every row]")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the --n-labels sample and pseudo-labels.")
@click.option("--prior", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="The target's positive rate, when you know it. Needed when the labelled texts were not "
                   "drawn at random (chosen to be balanced, or by `suggest`).  [default: with --unlabelled texts that "
                   "the bundle ranks well, the rate read from that ranking, kept within the labels' 95% interval; "
                   "else the labels' own rate]")
@click.option("--strength", default="auto", show_default=True, callback=_strength,
              help="Pull toward the source head's direction (λ): larger keeps it, 'inf' only re-scales and "
                   "re-centres it; 'auto' chooses it from 0.1, 0.3, 1, 3 and inf by cross-validation on the labels.")
@retarget_unlabelled_options
@click.option("--no-self-train", is_flag=True,
              help="Fit on the labels alone. By default, with labels and --unlabelled texts, retarget self-trains "
                   "on those texts (as --self-train does): on the development sites at 16-32 labels that was "
                   "ahead on average (docs/benchmarks/retarget.md).")
@click.option("--one-view", is_flag=True,
              help="A routed bundle (such as the default): adapt its English head on its own encoder's vectors "
                   "alone. By default English texts also read the other side's encoder: with labels the new head "
                   "starts from both heads' scores, with none the site's positive rate is read from both heads' "
                   "scores together and the threshold moves on their sum. On the development sites that was about 2 "
                   "points ahead at 16-32 labels and 2-3 at none, and it encodes each English text with both encoders "
                   "(docs/benchmarks/retarget.md).")
@click.option("--encoder-path", default=None, type=click.Path(exists=True), help=ENCODER_PATH_HELP)
@click.option("--trust-encoder", is_flag=True, help=TRUST_ENCODER_HELP)
@_cache_dir_option
@_handle_errors
def retarget(bundle: str, target: str | None, out: str, n_labels: int | None, seed: int, prior: float | None,
             strength: float | None, no_self_train: bool, one_view: bool, encoder_path: str | None, trust_encoder: bool,
             cache_dir: str | None, **opts: Any) -> None:
    """Adapt BUNDLE to another site from a few labelled texts of it (TARGET, any labelled SOURCE).

    The bundle's linear head is re-fitted toward itself: on 16-64 target labels it is re-scaled and
    re-centred on the target, and turned only as far as the labels insist (--strength). It is centred
    on the target's positive rate: --prior, or the labels' own rate (label texts drawn at random).
    With --unlabelled target texts it also self-trains by default: it learns from the new head's
    surest guesses on them (--no-self-train: the labels alone). The new bundle's manifest records the
    source bundle, the target labels and what changed.

    With no labels (no TARGET, or --n-labels 0) and the site's texts as --unlabelled, only the threshold
    moves: to where the bundle calls the site's positive rate of them positive (--prior, or the rate read
    from its ranking of them; where that ranking does not split into two classes it stops and says so).

    \b
    Examples:
      review-transfer fit rt --budget 1000   (the default bundle: 1,000 RT labels, the default encoder)
      review-transfer retarget models/rt-multilingual-logreg-b1000-s0 airline_labelled.csv --out models/airline
      review-transfer retarget models/rt-multilingual-logreg-b1000-s0 site.csv --n-labels 32 --out models/site
      review-transfer retarget models/rt-multilingual-logreg-b1000-s0 site.csv --n-labels 32 --unlabelled site.csv --out m
      review-transfer retarget models/rt-multilingual-logreg-b1000-s0 --unlabelled site_texts.csv --out models/site0
    """
    from pipeline.fit.retarget import RetargetSettings
    from pipeline.fit.retarget_bundle import RetargetJob, retarget_source
    from pipeline.predict.predict import BundleLoad

    if no_self_train and opts["self_train"]:
        raise click.UsageError("--self-train and --no-self-train: give one of them.")
    labelled = target is not None and n_labels != 0
    opts["self_train"] = opts["self_train"] or (labelled and bool(opts["unlabelled"]) and not no_self_train)
    self_train, unlabelled = pop_unlabelled(opts)
    if self_train is not None and not unlabelled:
        raise click.UsageError("--self-train learns from target texts without labels: add --unlabelled SOURCE.")
    if target is None and n_labels:
        raise click.UsageError(f"--n-labels {n_labels} draws labelled rows of TARGET: name the labelled TARGET file.")
    job = RetargetJob(BundleLoad(bundle, cache_dir=cache_dir, encoder_path=encoder_path, trust_encoder=trust_encoder),
                      target, out, RetargetSettings(strength=strength, prior=prior, self_train=self_train, seed=seed,
                                                        second_view=not one_view),
                      labels=n_labels, unlabelled=unlabelled, source_options=opts)
    new, summary, path = retarget_source(job)
    click.echo(describe(new.manifest["retarget"], summary))
    click.echo(f"saved: {path}")


def describe(record: dict[str, Any], summary: dict[str, Any]) -> str:
    """What retarget did, in a few lines: labels, unlabelled texts, the fit, the rate, and held-out scores."""
    prior = record["prior"]
    from pipeline.fit.retarget_rate import AGREEMENT, MIN_LABELS_AUC, MIN_SEPARATION

    ranking = prior.get("ranking")
    if not record["labels"]:
        where = {"--prior": "given (--prior)",
                 "ranking": f"read from the bundle's ranking of them (separation {ranking['separation']:.2f})"
                 if ranking else "",
                 "views": f"read from both heads' scores of them together (separation {ranking['separation']:.2f})"
                 if ranking else "",
                 "readers": f"the median of the bundle's ranking's {ranking['rate']:.1%} (separation "
                            f"{ranking['separation']:.2f}), EM's {(record.get('calibrated') or {}).get('em', 0):.1%} "
                            f"and BBSE's {(record.get('calibrated') or {}).get('bbse', 0):.1%}"
                 if ranking else ""}[prior["from"]]
        lines = [f"retarget: no target labels, {record['unlabelled']:,} unlabelled target texts"]
        head = ("the sum of the bundle's two heads" if (record.get("routed_side") or {}).get("second_view")
                else "the source's")
        if record["threshold_kept"] and abs(prior["value"] - record["source_share"]) > AGREEMENT + 1e-9:
            lines.append(f"threshold: kept; the site's positive rate {where}, {prior['value']:.1%}, is nearer to one "
                         f"half than the {record['source_share']:.1%} the bundle calls positive, and a rate read "
                         f"without labels errs toward one half; the head is {head}")
        elif record["threshold_kept"]:
            lines.append(f"threshold: kept; the site's positive rate {where}, {prior['value']:.1%}, is within "
                         f"{100 * AGREEMENT:.0f} points of the {record['source_share']:.1%} the bundle calls positive; the head is "
                         f"{head}")
        else:
            lines.append(f"threshold: moved by {record['threshold_shift']:+.2f} log-odds so that the bundle calls "
                         f"{prior['value']:.1%} of them positive (not {record['source_share']:.1%}), the site's "
                         f"positive rate {where}; the head is {head}")
        if ranking and ranking["separation"] < MIN_SEPARATION:
            lines.append(f"WARNING the bundle ranks these texts weakly (its two bell curves separate at "
                         f"{ranking['separation']:.2f}, under {MIN_SEPARATION}): on such sites no rate read without "
                         "labels was reliable and accuracy can fall under the majority rate; give --prior RATE if you "
                         "know it, or label 16-32 of these texts drawn at random (`review-transfer label FILE --strategy random`) and "
                         "retarget with them.")
        return "\n".join(lines + _summary_lines(summary, prior, record))
    where = {"--prior": "given (--prior)", "labels": "the labels' own rate, smoothed",
             "ranking": f"read from the source's ranking of the unlabelled texts (separation "
                        f"{ranking['separation']:.2f})" if ranking else ""}[prior["from"]]
    if prior["from"] == "labels" and ranking:
        auc = "-" if ranking["labels_auc"] is None else f"{ranking['labels_auc']:.2f}"
        where += (f" (the ranking's {ranking['rate']:.3f} was not used: it needs the labels ranked at ROC-AUC "
                  f"{MIN_LABELS_AUC} or more (here {auc}), a separation of {MIN_SEPARATION} or "
                  f"more (here {ranking['separation']:.2f}) and a rate inside the labels' 95% interval)")
    lines = [f"retarget: {record['labels']} target labels ({record['positive']} positive), "
             f"{record['unlabelled']:,} unlabelled target texts",
             f"head: source score x {record['slope']:.2f}, departure {record['departure']:.1%} of the weights, "
             f"cosine {record['cosine_to_source']:.3f} to the source head"
             + (f", self-trained on {record['self_train']['rounds_run'][-1]['pseudo_labels']} pseudo-labels"
                if record.get("self_train") and record["self_train"]["rounds_run"] else ""),
             f"positive rate: {prior['value']:.3f}, {where}; the labels' rate is {prior['labelled_rate']:.3f} "
             "(pass --prior when the labels were not drawn at random)"]
    if record.get("strength_from") == "cross-validation":
        lines[1] += f"; λ {record['strength'] if record['strength'] is not None else 'inf'} by cross-validation"
    return "\n".join(lines + _summary_lines(summary, prior, record))


def _summary_lines(summary: dict[str, Any], rate: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """A routed bundle's side left as it was, the shift check's line and the held-out scores, where there are any,
    with a WARNING where the new bundle (centred on the positive ``rate`` of its record) is worse there than the
    source beyond chance."""
    side = record.get("routed_side")
    other = None if side is None else "other-language" if side["adapted"] == "English" else "English"
    lines = [] if side is None else [
        f"routed bundle: its {side['adapted']} side was retargeted; the {other} target texts "
        f"({side['left_out_labels']} labelled, {side['left_out_unlabelled']:,} unlabelled), which its {other} side "
        f"reads, were left out, and the {other} side's head is kept as it was"]
    if side is not None and side.get("second_view"):
        lines.append(f"second view: English texts now also read the other side's encoder ({side['second_view']}); "
                     "the new English head started from both heads' scores (--one-view: its own encoder alone)")
    shift = summary.get("domain_shift") or {}
    if shift.get("auc") is not None:
        lines.append(f"source vs target texts: shift AUC {shift['auc']:.2f} (0.5 = alike)")
    held = summary.get("held_out")
    if held:
        lines.append(f"held-out {held['n']:,} rows of TARGET: accuracy {held['retargeted']['accuracy']:.3f} "
                     f"(source bundle {held['source']['accuracy']:.3f}, majority rate {held['source']['majority_rate']:.3f})")
        versus = held.get("versus_source") or {}
        if versus.get("worse"):
            lines.append(_worse_line(held, versus, rate))
    return lines


def _worse_line(held: dict[str, Any], versus: dict[str, Any], rate: dict[str, Any]) -> str:
    """The WARNING that the new bundle scores under the source on the held-out rows beyond chance, and what to do."""
    return (f"WARNING the new bundle is worse than the source bundle on the held-out rows "
            f"({held['retargeted']['accuracy']:.3f} against {held['source']['accuracy']:.3f}; the source alone gets "
            f"{versus['source_only']} of them right, the new one {versus['new_only']}: more than chance). It is "
            f"centred on a positive rate of {rate['value']:.3f} ({_RATE_FROM.get(rate['from'], rate['from'])}); the "
            f"held-out rows are {held['rate']:.3f} positive. Keep the source bundle, label more texts, or "
            + ("check the --prior RATE you gave." if rate["from"] == "--prior" else
               "give --prior RATE if you know the site's rate."))


_RATE_FROM = {"labels": "the labels' own rate", "--prior": "--prior", "ranking": "read from the bundle's ranking",
              "readers": "read without labels"}
