"""Encoder specs with options: parsing, errors that name the valid keys, flags as defaults, and every
command taking them (compare runs variants of one encoder side by side, each with its own cache)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

from pipeline.store.cache import list_stores
from pipeline.cli import main
from pipeline.data.dataset import sample_budget
from pipeline.encoders.spec import EncoderSpec, SpecError, apply_flags, parse_spec, split_spec


def test_specs_parse_once_into_typed_options():
    spec = parse_spec("minilm[long=truncate,max_length=128]")
    assert (spec.kind, spec.arg, spec.kwargs) == ("minilm", "", {"long_text": "truncate", "max_length": 128})
    assert str(spec) == "minilm[long=truncate,max_length=128]" and parse_spec(str(spec)) == spec
    assert str(parse_spec("minilm[max_length=128,long=truncate]")) == "minilm[long=truncate,max_length=128]"
    combined = parse_spec("glove-6b-50d[pooling=sif]+st:/models/a+b[precision=fp32]")
    assert combined.kind == "concat" and [str(p) for p in combined.parts] == [
        "glove-6b-50d[pooling=sif]", "st:/models/a+b[precision=fp32]"]
    assert combined.parts[1].arg == "/models/a+b"  # a '+' inside a path does not split it
    assert split_spec("a[pooling=sif]+minilm") == ["a[pooling=sif]", "minilm"]  # 'a' is not a spec: caught later
    assert parse_spec("hf:org/model[pooling=cls]").kwargs == {"pooling": "cls"}


@pytest.mark.parametrize("text, message", [
    ("minilm[pool=sif]", "unknown option 'pool'; minilm takes: long (auto|truncate|head-tail|chunk-mean), max_length"),
    ("minilm[pooling=sif]", "unknown option 'pooling'; minilm takes"),
    ("glove-6b-50d[long=truncate]", "unknown option 'long'; glove-6b-50d takes: pooling (tfidf|mean|sif)"),
    ("glove-6b-50d[pooling=max]", "pooling=max: 'max' is not one of tfidf, mean, sif"),
    ("minilm[max_length=x]", "max_length=x: 'x' is not a whole number"),
    ("minilm[long]", "'long' is not key=value"),
    ("bert", "unknown encoder spec 'bert'; use one of"),
    ("w2v-train:", "give a SOURCE after 'w2v-train:'"),
    ("minilm+minilm", "join distinct encoder specs"),
    ("minilm[long=truncate", "one pair of brackets at the end"),
    ("mpnet[layers=0-3]", "layers=0-3: expected layers A-B with 1 <= A <= B"),
    ("mpnet[layers=12-9]", "layers=12-9: expected layers A-B with 1 <= A <= B"),
    ("mpnet[layers=last]", "'last' is not a layer range such as 9-12"),
    ("hf:org/model[layers=9-12]", "unknown option 'layers'; hf takes"),
])
def test_bad_specs_are_clear_errors(text, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        parse_spec(text)


def test_layers_parse_to_a_range_and_take_every_backend():
    spec = parse_spec("mpnet[layers=9-12]")
    assert spec.kwargs == {"layers": "9-12"} and str(spec) == "mpnet[layers=9-12]" and parse_spec(str(spec)) == spec
    assert parse_spec("minilm[layers=6]").kwargs == {"layers": "6-6"}
    assert parse_spec("mpnet").has_exports and spec.has_exports  # its exports return the layer mean
    assert str(parse_spec("mpnet[layers=9-12]+minilm")) == "mpnet[layers=9-12]+minilm"
    from pipeline.finetune.body import finetunable

    assert finetunable("mpnet") and not finetunable(spec)  # a frozen pooling: compare gives it frozen heads only


def test_flags_fill_unset_options_only_where_they_apply():
    spec = parse_spec("minilm[long=truncate]").with_defaults(long_text="head-tail", precision="fp32", pooling=None)
    assert spec.kwargs == {"long_text": "truncate", "precision": "fp32"}  # the spec's own value wins
    a, b = apply_flags(["minilm", "glove-6b-50d+minilm"], pooling="sif")
    assert str(a) == "minilm" and str(b) == "glove-6b-50d[pooling=sif]+minilm"
    with pytest.raises(SpecError, match=r"option pooling \(--pooling\) does not apply to any of the encoders minilm"):
        apply_flags(["minilm"], pooling="sif")
    assert isinstance(parse_spec(spec), EncoderSpec)


def test_compare_runs_variants_side_by_side_each_with_its_own_cache(rt_split, tmp_path):
    pool, test = rt_split
    csv = write_reviews_csv(tmp_path / "reviews.csv", pool, range(0, len(pool), 25))
    cache, out = tmp_path / "cache", tmp_path / "report"
    result = CliRunner().invoke(main, [
        "compare", csv, "--encoder", "glove-6b-50d[pooling=mean]", "--encoder", "glove-6b-50d", "--head", "logreg",
        "--budgets", "64", "--seeds", "2", "--cache-dir", str(cache), "--out", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted({r["method"] for r in rows}) == ["glove-6b-50d+logreg", "glove-6b-50d[pooling=mean]+logreg"]
    assert len(rows) == 4
    stores = {s.summary()["spec"] for s in list_stores(cache)}
    assert stores == {"glove-6b-50d", "glove-6b-50d[pooling=mean]"}
    assert "glove-6b-50d[pooling=mean]+logreg" in (out / "report.md").read_text()


def test_a_typo_fails_before_any_work(tmp_path):
    for command in (["compare", "rt", "--encoder", "minilm[lon=truncate]", "--out", str(tmp_path / "r")],
                    ["fit", "rt", "--encoder", "minilm[lon=truncate]", "--out", str(tmp_path / "m")],
                    ["embed", "rt", "--encoder", "minilm[lon=truncate]"],
                    ["finetune", "rt", "--encoder", "minilm[lon=truncate]", "--out", str(tmp_path / "f")],
                    ["embed", "rt", "--encoder", "minilm", "--pooling", "sif"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code != 0 and "Error" in result.output, (command, result.output)
        assert "lon" in result.output or "--pooling" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_a_missing_model_in_the_second_encoder_fails_before_any_work(tmp_path):
    """Every spec of a command is checked (local files included) before data, encoding or a progress line."""
    missing = tmp_path / "no-such-model"
    for second, named in ((f"st:{missing}", str(missing)), (f"w2v:{tmp_path / 'vectors.bin'}", "vectors.bin"),
                          (f"w2v-train:{tmp_path / 'reviews.csv'}", "reviews.csv: no such file")):
        for command in (["compare", "rt", "--encoder", "glove-6b-50d", "--encoder", second, "--out", str(tmp_path / "r")],
                        ["embed", "rt", "--encoder", "glove-6b-50d", "--encoder", second],
                        ["fit", "rt", "--encoder", f"glove-6b-50d+{second}", "--out", str(tmp_path / "m")],
                        ["finetune", "rt", "--encoder", second, "--out", str(tmp_path / "f")]):
            result = CliRunner().invoke(main, [*command, "--cache-dir", str(tmp_path / "cache")])
            assert result.exit_code == 1 and named in result.output, (command, result.output)
            assert result.output.count("\n") == 1, result.output  # the error line only: no progress, no summary
    result = CliRunner().invoke(main, ["compare", "rt", "--encoder", "glove-6b-50d", "--head", "logreg", "--head",
                                       "logregg", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "logregg" in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "r").exists() and not (tmp_path / "cache").exists()


def test_embed_and_fit_take_the_same_specs(rt_split, tmp_path):
    pool, _ = rt_split
    train = sample_budget(pool, 120, seed=0)
    csv = write_reviews_csv(tmp_path / "reviews.csv", train, range(len(train)))
    cache = tmp_path / "cache"
    spec = "glove-6b-50d[pooling=sif]"
    result = CliRunner().invoke(main, ["embed", csv, "--encoder", spec, "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    (store,) = list_stores(cache)
    result = CliRunner().invoke(main, ["fit", csv, "--encoder", "glove-6b-50d", "--pooling", "sif", "--cache-dir",
                                       str(cache), "--out", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    assert [s.fingerprint for s in list_stores(cache)] == [store.fingerprint]  # the same encoder: no new store
    (bundle,) = (tmp_path / "models").iterdir()
    assert json.loads((bundle / "manifest.json").read_text())["encoder"]["spec"] == spec
