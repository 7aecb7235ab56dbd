"""Two bundles on RT's test split, paired by text: accuracy of each and the exact McNemar test on the
texts one gets right and the other wrong (for comparisons where seeds do not vary, e.g. the whole pool).

Run:  .venv/bin/python benchmarks/mcnemar.py BUNDLE_A BUNDLE_B
"""

from __future__ import annotations

import argparse

from scipy.stats import binomtest

from pipeline.bundle.bundle import Bundle
from pipeline.data.dataset import load, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs=2, help="two bundle directories")
    args = parser.parse_args()
    _, test = split(load("rt"))
    right = []
    for path in args.bundles:
        right.append(Bundle.load(path).predict(test.texts) == test.labels)
        print(f"{path}: {right[-1].mean():.2%} of {len(test):,} test texts")
    only_a, only_b = int((right[0] & ~right[1]).sum()), int((~right[0] & right[1]).sum())
    p = binomtest(only_a, only_a + only_b).pvalue
    print(f"right only by the first: {only_a}, only by the second: {only_b}; exact McNemar p = {p:.2g}; "
          f"difference {(right[0].mean() - right[1].mean()) * 100:+.1f} points")


if __name__ == "__main__":
    main()
