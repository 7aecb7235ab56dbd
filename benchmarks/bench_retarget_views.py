"""Benchmark ``retarget``'s second view: a routed bundle's English head adapted on its own encoder's vectors alone,
or with English texts also read by the other side's encoder (``E|O`` -> ``E+O|O``) and the source score the sum of
both heads' (:func:`pipeline.fit.retarget_side.widened`, :meth:`pipeline.fit.retarget_side.Side.second_view`).

The source is the default bundle itself (``fit rt --budget 1000 --seed 0`` with the routed default encoder), and each
run goes through :func:`pipeline.fit.retarget_bundle.retarget`, as the command does. The targets, halves, seeds,
splits and label draws are those of ``bench_retarget.py`` (per seed: the first half holds the N labels drawn at
random and the site's unlabelled texts, the second half is scored), plus ``--resampled`` sets (``NAME@RATE``: one
hash half of a target resampled to that positive rate, :func:`targets.resample` with seed 7). Self-trained on the
unlabelled texts, as ``retarget --labels N --unlabelled`` runs by default. Prints per set the majority rate of the
scored halves, the source bundle's accuracy and both views' mean accuracy, with the paired difference (mean ± SE
over seeds).

    PYTHONPATH=.:benchmarks python benchmarks/bench_retarget_views.py [--half val] [--labels 16,32] [--seeds 5]
        [--targets uci-amazon,...] [--resampled vader-amazon-mild@0.15,vader-amazon-mild@0.85]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from bench_retarget import ENGLISH, LONG, LOW_RATE, target
from targets import half_of, load_target, resample

from pipeline.bundle.bundle import Bundle
from pipeline.data.dataset import Dataset
from pipeline.encoders.spec import DEFAULT_ENCODER
from pipeline.fit.retarget import RetargetSettings, draw_labels
from pipeline.fit.retarget_bundle import TargetData, retarget
from pipeline.fit.train import fit
from pipeline.store.cache import default_cache_dir
from pipeline.unlabelled.self_train import SelfTrainSettings

VIEWS = {"one view": False, "two views": True}


def datasets(args: argparse.Namespace) -> Iterator[tuple[str, Dataset]]:
    """The named targets' halves, then the ``NAME@RATE`` resamples of a target's half."""
    for name in filter(None, args.targets.split(",")):
        yield name, target(name, 1000, args.half)
    for item in filter(None, args.resampled.split(",")):
        base, rate = item.split("@")
        ds = load_target(base)
        yield item, resample(ds.subset(np.flatnonzero([half_of(t) == args.half for t in ds.texts])), float(rate), seed=7)


def run_set(bundle: Bundle, ds: Dataset, args: argparse.Namespace) -> tuple[dict, float]:
    """(runs, the scored halves' majority rate): accuracy on the scored half per (labels, view or ``source``)."""
    runs: dict[tuple[int, str], list[float]] = {}
    majority = []
    for seed in range(args.seeds):
        perm = np.random.default_rng(1000 + seed).permutation(len(ds))
        own, scored = np.sort(perm[: len(ds) // 2]), np.sort(perm[len(ds) // 2:])
        held = ds.subset(scored)
        majority.append(100 * max(held.labels.mean(), 1 - held.labels.mean()))
        for n in args.labels:
            lab = own[draw_labels(ds.subset(own), n, seed)]
            data = TargetData(ds.subset(lab), held, [ds.texts[i] for i in np.setdiff1d(own, lab)], "drawn")
            for view, second in VIEWS.items():
                settings = RetargetSettings(seed=seed, self_train=SelfTrainSettings(), second_view=second)
                found = retarget(bundle, data, settings)[1]["held_out"]
                runs.setdefault((n, view), []).append(100 * found["retargeted"]["accuracy"])
                runs.setdefault((n, "source"), []).append(100 * found["source"]["accuracy"])
    return runs, float(np.mean(majority))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join([*ENGLISH, *LOW_RATE, LONG]))
    parser.add_argument("--resampled", default="vader-amazon-mild@0.15,vader-amazon-mild@0.85")
    parser.add_argument("--half", choices=("val", "test"), default="val")
    parser.add_argument("--labels", default="16,32")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    args.labels = [int(n) for n in args.labels.split(",")]
    start, cache_dir = time.perf_counter(), default_cache_dir()
    with tempfile.TemporaryDirectory() as tmp:
        path = fit("rt", encoder=DEFAULT_ENCODER, budget=1000, seed=0, cache_dir=cache_dir).save(Path(tmp) / "source")
        bundle = Bundle.load(path, cache_dir=cache_dir)
        print(f"source: fit rt --budget 1000 --seed 0 ({bundle.manifest['encoder']['spec']}; RT test accuracy "
              f"{100 * bundle.manifest['metrics']['test']['accuracy']:.1f}); {args.seeds} seeds; {args.half} halves")
        means: dict[tuple[int, str], list[float]] = {}
        for name, ds in datasets(args):
            runs, majority = run_set(bundle, ds, args)
            print(f"{name}: {len(ds)} texts, majority {majority:.1f}, source {np.mean(runs[(args.labels[0], 'source')]):.1f}")
            for n in args.labels:
                one, two = (np.array(runs[(n, view)]) for view in VIEWS)
                d = two - one
                print(f"  {n:>3} labels: one view {one.mean():.1f}, two views {two.mean():.1f}, "
                      f"{d.mean():+.1f}±{d.std(ddof=1) / np.sqrt(len(d)):.1f} (ahead on {int((d > 0).sum())}, behind on "
                      f"{int((d < 0).sum())} of {len(d)} seeds)", flush=True)
                for view in VIEWS:
                    means.setdefault((n, view), []).append(float(np.mean(runs[(n, view)])))
    for n in args.labels:
        print(f"mean over the sets at {n} labels: " + ", ".join(f"{v} {np.mean(means[(n, v)]):.2f}" for v in VIEWS))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"wall time {time.perf_counter() - start:.0f} s; uptime: {load}")


if __name__ == "__main__":
    main()
