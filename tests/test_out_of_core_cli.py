"""``fit --head sgd --out-of-core`` and the automatic switch above ``--memory-budget``: a normal bundle,
as accurate as the in-memory ``sgd`` head, that ``predict`` uses like any other."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.fit.out_of_core import parse_memory, plan

GLOVE = "glove-6b-50d"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(output, bundle manifest) of in-memory sgd, forced out-of-core sgd and sgd over a 1 MB budget, on RT."""
    root = tmp_path_factory.mktemp("ooc-cli")
    common = ["fit", "rt", "--encoder", GLOVE, "--head", "sgd", "--cache-dir", str(root / "cache")]
    runs = {}
    for name, extra in (("memory", []), ("forced", ["--out-of-core"]), ("auto", ["--memory-budget", "1M"])):
        res = CliRunner().invoke(main, [*common, *extra, "--out", str(root / name)])
        assert res.exit_code == 0, res.output
        (bundle,) = (root / name).iterdir()
        runs[name] = res.output, json.loads((bundle / "manifest.json").read_text(encoding="utf-8")), bundle
    return runs


def test_out_of_core_sgd_saves_a_bundle_as_accurate_as_in_memory_sgd(fitted):
    output, manifest, bundle = fitted["forced"]
    assert "fit: out of core: 12,752 rows x 50-d" in output and "read in chunks" in output  # pool + test rows
    params = manifest["head"]["params"]
    assert manifest["head"]["name"] == "sgd" and 1 <= params["epochs_run"] <= params["epochs"]
    assert "out of core" in manifest["head"]["search"]
    assert manifest["train"]["size"] == 10_327 and manifest["metrics"]["test_size"] == 2_425
    accuracy = manifest["metrics"]["test"]["accuracy"]
    in_memory = fitted["memory"][1]["metrics"]["test"]["accuracy"]
    assert abs(accuracy - in_memory) <= 0.01, (accuracy, in_memory)
    assert "out of core" not in fitted["memory"][0] and "out of core" not in fitted["memory"][1]["head"]["search"]

    res = CliRunner().invoke(main, ["predict", str(bundle), "a moving, beautifully acted film",
                                    "a dull, lifeless mess", "--cache-dir", str(bundle.parent.parent / "cache")])
    assert res.exit_code == 0, res.output
    first, second = res.output.strip().splitlines()[-2:]
    assert first.startswith("fresh") and second.startswith("rotten"), res.output


def test_sgd_goes_out_of_core_by_itself_above_the_memory_budget(fitted):
    output, manifest, _ = fitted["auto"]
    assert "> memory budget 1.0 MB; reading them in chunks" in output
    assert "out of core" in manifest["head"]["search"]
    assert manifest["metrics"]["test"] == fitted["forced"][1]["metrics"]["test"]  # seeded: the same model


def test_the_plan_names_the_budget_and_refuses_what_it_cannot_stream():
    assert plan(["logreg"], 1000, 384, forced=False) == (False, "")
    go, line = plan(["logreg"], 2_000_000, 384, forced=False)
    assert not go and "2.9 GB of vectors > memory budget 2.0 GB" in line and "--head sgd trains out of core" in line
    assert parse_memory("512M") == 512 << 20 and parse_memory("1.5GB") == int(1.5 * (1 << 30))
    runner = CliRunner()
    for args, message in ((["--head", "logreg", "--out-of-core"], "--out-of-core trains the sgd head only"),
                          (["--head", "sgd", "--out-of-core", "--budget", "100"], "drop --budget"),
                          (["--head", "sgd", "--memory-budget", "lots"], "--memory-budget 'lots': give a size")):
        res = runner.invoke(main, ["fit", "rt", "--encoder", GLOVE, *args])
        assert res.exit_code != 0 and message in res.output, res.output


def test_compare_trains_the_whole_pool_sgd_cell_out_of_core(rt, tmp_path):
    import numpy as np

    from pipeline.fit.out_of_core import OutOfCore
    from pipeline.study.compare import Execution, StudyPlan, run_compare

    plan = StudyPlan(encoders=[GLOVE], heads=["sgd"], budgets=[32, None], seeds=1, prompts=None,
                     out_of_core=OutOfCore(chunk_rows=256))
    rows = run_compare(rt.subset(np.arange(1500)), plan,
                       Execution(out=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False))
    by_budget = {r["budget"]: r for r in rows}
    params = by_budget["all"]["params"]
    assert params["chunk_rows"] == 256 and params["alpha"] == 1e-4 and 1 <= params["epochs_run"] <= params["epochs"]
    assert "chunk_rows" not in by_budget["32"]["params"]  # budgets fit in memory, grid-searched as ever
    assert by_budget["all"]["metrics"]["test"]["accuracy"] > 0.6
