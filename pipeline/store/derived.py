"""What ``cache rm`` removes beside a store: the exports and converted models made for its encoder alone.

An exported transformer's store records its model (``model``, the identity of the weights), runtime (``backend``,
``quantize``) and ``layers`` in its fingerprint parameters; the export folder under ``exports/`` records the same
in its ``meta.json``, and the model unpacked or converted under ``models/`` is named from that identity
(:func:`pipeline.encoders.models.model_dir_of`). A folder is made for a removed store's encoder alone when no
store left in the cache uses it: an export that no remaining store runs, a model that no remaining store or
export is made from. Both are made again on next use, at the cost of the export or conversion.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.paths import cache_dir_or_default
from pipeline.store.cache import CacheError, Store, list_stores

EXPORTS = "exports"


def remove_stores(stores: list[Store], cache_dir: str | Path | None) -> Iterator[str]:
    """Delete ``stores`` of ``cache_dir``, then the folders :func:`made_for` their encoders alone; a line for each."""
    root = cache_dir_or_default(cache_dir)
    doomed = {s.fingerprint for s in stores}
    removed = [_params(s) for s in stores]  # read before the files go; None: too damaged to open
    left = [_params(s) for s in list_stores(root) if s.fingerprint not in doomed]
    for store in stores:
        store.remove()
        yield f"removed {store.fingerprint}"
    if any(p is None for p in left):
        yield "kept every export and converted model: a store left is unreadable, so what it uses is unknown (run: " \
              "review-transfer cache verify)"
        return
    for folder in made_for([p for p in removed if p is not None], [p for p in left if p is not None], root):
        size = remove_folder(folder)
        yield (f"removed {folder.relative_to(root)} ({size / 1e6:,.1f} MB): made for the removed encoder alone, "
               "made again on next use")


def made_for(removed: Iterable[Mapping[str, Any]], kept: Iterable[Mapping[str, Any]], cache_dir: Path) -> list[Path]:
    """The export and model folders of ``cache_dir`` that the encoders of the ``removed`` stores use and those of the
    ``kept`` stores do not (each store given by its fingerprint parameters); exports first."""
    from pipeline.encoders.models import model_dir_of

    removed, kept = list(removed), list(kept)
    exports = _exports(cache_dir)
    gone = [path for path, meta in exports.items()
            if any(_runs(p, meta) for p in removed) and not any(_runs(p, meta) for p in kept)]
    still_made_from = {str(p.get("model")) for p in kept} | {
        str(meta.get("identity")) for path, meta in exports.items() if path not in gone}
    models = {model_dir_of(str(p["model"]), cache_dir) for p in removed if p.get("model")}
    models -= {model_dir_of(identity, cache_dir) for identity in still_made_from}
    return gone + sorted(m for m in models if m is not None and m.is_dir())


def remove_folder(path: Path) -> int:
    """Delete folder ``path`` (renamed aside first, so no reader meets it half-deleted); its size in bytes."""
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    aside = path.with_name(f".{path.name}.rm-{uuid.uuid4().hex[:8]}")
    os.replace(path, aside)
    shutil.rmtree(aside, ignore_errors=True)
    return size


def _params(store: Store) -> dict[str, Any] | None:
    """The fingerprint parameters of ``store``'s encoder, or None when it is too damaged to open."""
    try:
        return store.summary()["params"]
    except CacheError:
        return None


def _exports(cache_dir: Path) -> dict[Path, dict[str, Any]]:
    """Each finished export folder of ``cache_dir`` and its ``meta.json`` (unreadable ones left out)."""
    found = {}
    root = Path(cache_dir) / EXPORTS
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        try:
            found[folder] = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return found


def _runs(params: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    """Whether the encoder of a store with fingerprint ``params`` runs the export of ``meta``, or quantizes from it
    (onnx int8 is made from the onnx fp32 export)."""
    if (params.get("model"), params.get("backend")) != (meta.get("identity"), meta.get("backend")):
        return False
    if list(params.get("layers") or []) != list(meta.get("layers") or []):
        return False
    base = params.get("backend") == "onnx" and params.get("quantize") == "int8" and meta.get("quantize") == "none"
    return params.get("quantize") == meta.get("quantize") or base
