"""A cache, a bundle folder or an output on a disk the user cannot write: hits are still served, and anything that
must be written is one line naming the place and the fix, before any encoding, with nothing lost. The read-only
place is real: a directory without write permission for a user, a read-only tmpfs mount for root (which ignores
permissions); skipped where neither can be made."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import subprocess
import uuid

import pytest
from click.testing import CliRunner

from pipeline.cli import main

GLOVE = "glove-6b-50d"


@pytest.fixture
def read_only(tmp_path):
    """``make(source_dir)``: a read-only copy of ``source_dir`` (its path)."""
    mounts: list[str] = []

    def make(source) -> str:
        target = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
        if os.geteuid() != 0:
            shutil.copytree(source, target)
            for folder, _, _ in os.walk(target):
                os.chmod(folder, 0o555)
            return str(target)
        target.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(target)],
                          capture_output=True).returncode != 0:
            pytest.skip("running as root without the right to mount a read-only tmpfs")
        mounts.append(str(target))
        shutil.copytree(source, target, dirs_exist_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True, capture_output=True)
        return str(target)

    yield make
    for target in mounts:
        subprocess.run(["umount", target], capture_output=True)
    if os.geteuid() != 0:
        for folder, _, _ in os.walk(tmp_path):
            with contextlib.suppress(OSError):
                os.chmod(folder, 0o755)


def _csv(path, texts):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    return str(path)


def test_a_read_only_cache_serves_its_hits_and_a_miss_is_one_line_before_any_encoding(rt, tmp_path, read_only,
                                                                                       monkeypatch):
    runner = CliRunner()
    known, new = _csv(tmp_path / "known.csv", rt.texts[:200]), _csv(tmp_path / "new.csv", rt.texts[200:260])
    cache = tmp_path / "cache"
    assert runner.invoke(main, ["embed", known, "--encoder", GLOVE, "--cache-dir", str(cache)]).exit_code == 0
    frozen = read_only(cache)

    hits = runner.invoke(main, ["embed", known, "--encoder", GLOVE, "--cache-dir", frozen])
    assert hits.exit_code == 0 and "200 hits, 0 misses" in hits.output, hits.output

    from pipeline.encoders.static import StaticEncoder

    encoded = []
    monkeypatch.setattr(StaticEncoder, "_encode", lambda self, texts, *a, **k: encoded.append(texts))  # never reached
    miss = runner.invoke(main, ["embed", new, "--encoder", GLOVE, "--cache-dir", frozen])
    assert miss.exit_code == 1 and not encoded
    (line,) = [x for x in miss.output.splitlines() if x.startswith("Error:")]
    assert f"{frozen}: cannot write in this cache directory" in line and "--cache-dir" in line, miss.output
    assert "Traceback" not in miss.output
    assert runner.invoke(main, ["cache", "verify", "--cache-dir", frozen]).exit_code == 0  # nothing lost


def test_a_bundle_or_output_into_a_read_only_folder_is_one_line(glove_bundle, rt, tmp_path, read_only):
    bundle, cache = glove_bundle
    runner = CliRunner()
    out = tmp_path / "out"
    out.mkdir()
    frozen = read_only(out)
    texts = _csv(tmp_path / "texts.csv", rt.texts[:20])
    predicted = runner.invoke(main, ["predict", str(bundle), "--input", texts, "--output", f"{frozen}/labels.csv",
                                     "--cache-dir", str(cache)])
    assert predicted.exit_code == 1 and "Traceback" not in predicted.output
    assert f"Error: {frozen}/" in predicted.output and "give the command a place it can write" in predicted.output
    assert os.listdir(frozen) == []
