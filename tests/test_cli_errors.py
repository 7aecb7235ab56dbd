"""The CLI's errors: this package's own are one line, checked before any work; anything else is a traceback."""

from __future__ import annotations

import json
import shutil

import click
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

from pipeline import OptionError
from pipeline.bundle.bundle import HEAD_FILE, MANIFEST, sha256_file
from pipeline.bundle.manifest import seal
from pipeline.cli import main
from pipeline.cli.options import _handle_errors
from pipeline.data.dataset import DataError, _in_test, parse_budgets

GLOVE = "glove-6b-50d"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def fitted(rt, tmp_path_factory):
    """120 real RT rows as a CSV, and a GloVe + naive Bayes bundle fit on them: (csv, bundle, cache dir)."""
    base = tmp_path_factory.mktemp("errors")
    data = write_reviews_csv(base / "reviews.csv", rt, range(300, 420))
    res = invoke("fit", data, "--encoder", GLOVE, "--head", "nb", "--cache-dir", base / "c", "--out", base / "m")
    assert res.exit_code == 0, res.output
    (bundle,) = (base / "m").iterdir()
    return data, bundle, base / "c"


def test_only_this_packages_errors_become_one_line():
    @click.command()
    @click.argument("kind")
    @_handle_errors
    def failing(kind: str) -> None:
        raise OptionError("--x: give 1 or 2.") if kind == "ours" else ValueError("a bug, not bad input")

    ours = CliRunner().invoke(failing, ["ours"])
    assert (ours.exit_code, ours.output) == (1, "Error: --x: give 1 or 2.\n")
    bug = CliRunner().invoke(failing, ["bug"])
    assert bug.exit_code == 1 and type(bug.exception) is ValueError  # left to show its traceback
    assert "Error:" not in bug.output


def test_data_show_on_a_file_whose_pool_is_empty(tmp_path):
    texts = [t for t in (f"Review number {i}" for i in range(100)) if _in_test("text:" + t)][:2]
    path = tmp_path / "two.csv"
    path.write_text(f"text,label\n{texts[0]},pos\n{texts[1]},neg\n", encoding="utf-8")
    res = invoke("data", "show", path)
    assert res.exit_code == 0, res.output
    assert "pool 0 (no texts)" in res.output and "test 2 (pos 1 (50.0%), neg 1 (50.0%))" in res.output


def test_budgets_under_two_per_class_are_refused_as_options(fitted, tmp_path):
    data, _, cache = fitted
    for budget in ("2", "3"):
        res = invoke("fit", data, "--encoder", GLOVE, "--budget", budget, "--cache-dir", cache, "--out", tmp_path)
        assert res.exit_code == 2 and f"Invalid value for '--budget': '{budget}' is not a label count >= 4" in res.output
    with pytest.raises(DataError, match=r"'3' is not a label count >= 4"):
        parse_budgets("3,16")
    res = invoke("fit", data, "--encoder", GLOVE, "--head", "nb", "--budget", "4", "--cache-dir", cache, "--out", tmp_path)
    assert res.exit_code == 0 and "trained on 4 labels" in res.output, res.output


def test_seed_out_of_range_names_the_option(fitted, tmp_path):
    data, _, cache = fitted
    for command, *extra in (("fit", "--out", tmp_path / "m"), ("finetune", "--out", tmp_path / "m"), ("suggest",),
                            ("label", "--labels", tmp_path / "l.jsonl")):
        res = invoke(command, data, "--seed", "-1", *extra, "--cache-dir", cache)
        assert res.exit_code == 2 and "Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295" in res.output


def test_bad_options_and_sources_fail_before_the_model_loads(tmp_path):
    not_a_bundle = tmp_path / "empty"
    not_a_bundle.mkdir()
    texts = tmp_path / "t.csv"
    texts.write_text("text\nFine.\n", encoding="utf-8")
    res = invoke("predict", not_a_bundle, "--input", texts, "--out", tmp_path / "out.txt")  # --output: its older name
    assert res.exit_code == 2 and "Invalid value for '--out' / '--output': unknown format '.txt'; use one of .csv, .jsonl" in res.output
    res = invoke("predict", not_a_bundle, "--input", texts, "--output", tmp_path / "no" / "out.csv")
    assert res.exit_code == 2 and f"folder {tmp_path / 'no'} does not exist" in res.output
    res = invoke("evaluate", not_a_bundle, tmp_path / "missing.csv")
    assert res.exit_code == 1 and "missing.csv: no such file" in res.output


def test_a_head_file_that_is_not_skops_is_one_line(fitted, tmp_path):
    _, bundle, cache = fitted
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / HEAD_FILE).write_bytes(b"not a zip archive")
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"][HEAD_FILE] = sha256_file(copy / HEAD_FILE)  # as if the hash had been updated too
    (copy / MANIFEST).write_text(json.dumps(seal(manifest)))  # and the manifest's digest
    res = invoke("predict", copy, "Fine.", "--cache-dir", cache)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"Error: {copy / HEAD_FILE}: not a skops file (BadZipFile" in res.output


def test_cache_rm_refuses_files_that_are_not_its_stores(fitted, tmp_path):
    _, _, cache = fitted
    foreign = tmp_path / "measurements.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    res = invoke("cache", "rm", foreign)
    assert res.exit_code == 1 and "is not a 16-hex-digit encoder fingerprint); leaving it alone" in res.output
    other = tmp_path / "c" / "0123456789abcdef.h5"
    other.parent.mkdir()
    with h5py.File(other, "w") as f:
        f.attrs["fingerprint"] = "something else"
    (tmp_path / "c" / "notes.h5").write_bytes(b"not ours")
    res = invoke("cache", "rm", "--all", "--cache-dir", tmp_path / "c")
    assert res.exit_code == 1 and "its fingerprint attribute is 'something else'" in res.output
    assert foreign.exists() and other.exists() and (tmp_path / "c" / "notes.h5").exists()
    listing = invoke("cache", "ls", "--cache-dir", cache)
    assert listing.exit_code == 0 and GLOVE in listing.output
