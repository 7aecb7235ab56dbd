"""What a non-editable install gets: a wheel and an sdist built from this tree hold every file of the
package that is not Python (the label page's static files), as setup.cfg's package_data declares."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pipeline

REPO = Path(pipeline.__file__).parent.parent


def test_the_wheel_and_the_sdist_hold_the_package_data(tmp_path):
    data = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "pipeline").rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc"))
    assert "pipeline/active/label_app/static/index.html" in data
    shutil.copytree(REPO / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    build = "from setuptools import build_meta; build_meta.build_wheel('dist'); build_meta.build_sdist('dist')"
    done = subprocess.run([sys.executable, "-c", build], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel], [sdist] = (list((tmp_path / "dist").glob(pattern)) for pattern in ("*.whl", "*.tar.gz"))
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert [f for f in data if f not in in_wheel] == []
    assert [f for f in data if f not in in_sdist] == []
