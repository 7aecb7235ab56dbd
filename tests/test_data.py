"""Data layer: loading every format, label normalisation, every error case, leak-free splits, budgets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.data.dataset import DataError, load, read_texts, sample_budget, split


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return str(path)


ROWS = [
    {"text": "A joy from start to finish.", "label": "pos", "movie": "a"},
    {"text": "Dull and far too long.", "label": "neg", "movie": "b"},
    {"text": "  Sharp, funny and kind.  ", "label": "pos", "movie": "c"},
    {"text": "", "label": "neg", "movie": "d"},
    {"text": "Dull and far too long.", "label": "neg", "movie": "b"},
]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_every_format_loads_the_same(tmp_path, suffix):
    path = tmp_path / f"reviews{suffix}"
    if suffix in (".csv", ".tsv"):
        sep = "," if suffix == ".csv" else "\t"
        lines = [sep.join(["text", "label", "movie"])]
        lines += [sep.join([json.dumps(r["text"]), r["label"], r["movie"]]) for r in ROWS]
        write(path, "\n".join(lines) + "\n")
    elif suffix == ".jsonl":
        write(path, "\n".join(json.dumps(r) for r in ROWS) + "\n")
    elif suffix == ".json":
        write(path, json.dumps(ROWS))
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    ds = load(str(path), group_col="movie")
    assert ds.texts == ["A joy from start to finish.", "Dull and far too long.", "Sharp, funny and kind."]
    assert ds.labels.tolist() == [1, 0, 1]
    assert ds.label_names == ("neg", "pos")
    assert ds.groups == ["a", "b", "c"]
    assert ds.report.empty_dropped == 1
    assert ds.report.duplicates_dropped == 1


@pytest.mark.parametrize(
    "values, names",
    [
        (["fresh", "rotten"], ("rotten", "fresh")),
        (["Positive", "Negative"], ("Negative", "Positive")),
        (["1", "0"], ("0", "1")),
        (["true", "false"], ("false", "true")),
        (["Positivo", "negativo"], ("negativo", "Positivo")),
        (["긍정", "부정"], ("부정", "긍정")),
        (["好评", "差评"], ("差评", "好评")),
    ],
)
def test_known_label_pairs(tmp_path, values, names):
    path = write(tmp_path / "d.csv", f"text,label\ngood,{values[0]}\nbad,{values[1]}\n")
    ds = load(path)
    assert ds.labels.tolist() == [1, 0]
    assert ds.label_names == names


def test_json_numbers_and_booleans_are_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, '{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n{"text": "ok", "label": 1.0}\n')
    assert load(str(path)).labels.tolist() == [1, 0, 1]
    write(path, '{"text": "good", "label": true}\n{"text": "bad", "label": false}\n')
    assert load(str(path)).labels.tolist() == [1, 0]


def test_positive_option_for_other_labels(tmp_path):
    path = write(tmp_path / "d.csv", "text,stars\ngreat,5\nawful,1\nmeh,3\n")
    with pytest.raises(DataError, match=r"3 classes.*--positive"):
        load(path, label_col="stars")
    ds = load(path, label_col="stars", positive="5")
    assert ds.labels.tolist() == [1, 0, 0]
    assert ds.label_names == ("negative", "positive")  # a rating names no class: the classes are named
    with pytest.raises(DataError, match="--positive '9' is not a value"):
        load(path, label_col="stars", positive="9")


def test_conflicting_duplicate_is_reported(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\nfine,pos\nbad,neg\nfine,neg\n")
    ds = load(path)
    assert ds.report.conflicting_duplicates == 1
    assert "line 4" in ds.report.conflict_examples[0]
    assert len(ds) == 2


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(str(tmp_path / "nope.csv"))


def test_unknown_format(tmp_path):
    path = write(tmp_path / "d.docx", "x")
    with pytest.raises(DataError, match=r"unknown format '\.docx'.*\.csv"):
        load(path)


def test_missing_column_lists_columns(tmp_path):
    path = write(tmp_path / "d.csv", "review,sentiment\ngood,pos\n")
    with pytest.raises(DataError, match=r"missing column 'text'.*\['review', 'sentiment'\].*--text-col"):
        load(path)
    with pytest.raises(DataError, match=r"missing column 'label'.*--label-col"):
        load(path, text_col="review")


def test_fewer_than_two_classes(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\ngood,pos\nfine,pos\n")
    with pytest.raises(DataError, match="only one class"):
        load(path)


def test_unknown_pair_needs_positive(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\ngood,thumbs-up\nbad,thumbs-down\n")
    with pytest.raises(DataError, match="--positive"):
        load(path)


def test_a_stray_label_value_is_named_with_its_line(tmp_path):
    """A labels file of negatives and one 'maybe' (or a typo beside both classes): the error names where it is."""
    path = write(tmp_path / "d.jsonl", "".join(f'{{"text": "t{i}", "label": "negative"}}\n' for i in range(3))
                 + '{"text": "t3", "label": "maybe"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl: cannot tell .* \('negative' 3 \(line 1\), 'maybe' 1 \(line 4\)\); "
                                        r"pass --positive VALUE, or fix the rows of a stray value"):
        load(path)
    path = write(tmp_path / "e.csv", "text,label\na,pos\nb,neg\nc,posi\n")
    with pytest.raises(DataError, match=r"3 classes \('pos' 1 \(line 2\), 'neg' 1 \(line 3\), 'posi' 1 \(line 4\)\)"):
        load(path)


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ngood,pos\ncaf\xe9 bad,neg\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 3: byte 0xe9 is not valid UTF-8.*iconv"):
        load(str(path))


def test_unquoted_delimiter_names_the_line(tmp_path):
    path = write(tmp_path / "d.csv", 'text,label\n"good, really",pos\ndull, lifeless,neg\n')
    with pytest.raises(DataError, match=r"d\.csv: line 3: 3 fields but the header has 2\. Quote texts"):
        load(path)
    assert read_texts(write(tmp_path / "t.csv", 'text\n"one, quoted"\n')) == ["one, quoted"]
    with pytest.raises(DataError, match=r"t2\.csv: line 2: 2 fields but the header has 1"):
        read_texts(write(tmp_path / "t2.csv", "text\nA dull, lifeless mess.\n"))


def test_malformed_json_line(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "good", "label": "pos"}\n{"text": "bad", "label": \n')
    with pytest.raises(DataError, match=r"d\.jsonl: line 2: malformed JSON at column 26 "):  # where the value is missing
        load(path)


def test_null_and_nan_texts_are_dropped_and_counted(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "good", "label": "pos"}\n{"text": NaN, "label": "neg"}\n'
                                       '{"text": null, "label": "neg"}\n{"text": "bad", "label": "neg"}\n')
    ds = load(path)
    assert ds.texts == ["good", "bad"] and (ds.report.empty_dropped, ds.report.missing_dropped) == (2, 2)
    with pytest.raises(DataError, match=r"d2\.jsonl: all 2 texts in column 'text' are empty or missing; pass the text"):
        load(write(tmp_path / "d2.jsonl", '{"text": null, "label": "pos"}\n{"text": "", "label": "neg"}\n'))


def test_non_string_text(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "good", "label": "pos"}\n{"text": 42, "label": "neg"}\n')
    with pytest.raises(DataError, match=r"line|row 2.*int"):
        load(path)


def test_rows_without_a_label_are_left_out_and_counted(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\ngood,pos\nbad,\nawful,neg\nmeh, \n")
    ds = load(path)
    assert ds.texts == ["good", "awful"] and ds.report.other_dropped == {"without a label": 2}
    assert ds.report.label_line() == "'pos' 1 -> pos, 'neg' 1 -> neg, no label 2 -> left out"
    none = write(tmp_path / "n.csv", "text,label\ngood,\nbad,\n")
    with pytest.raises(DataError, match=r"n\.csv: no row has a label in column 'label' \(2 rows\)"):
        load(none)
    assert load(none, require_labels=False).labels is None  # read as unlabelled texts


def test_a_rating_scale_and_a_neutral_class(tmp_path):
    rows = "".join(f"review {i},{i % 5 + 1}\n" for i in range(20))
    path = write(tmp_path / "s.csv", "text,stars\n" + rows)
    with pytest.raises(DataError, match=r"For a rating scale: --positive 4,5 --negative 1,2 \(the values between"):
        load(path, label_col="stars")
    ds = load(path, label_col="stars", positive="4,5", negative="1,2")
    # ratings are named negative/positive, not '1/2'/'4/5' (read as fractions); the report says which went where
    assert len(ds) == 16 and ds.label_names == ("negative", "positive") and ds.labels.sum() == 8
    assert ds.report.label_line().startswith("'1' 4 -> negative, '2' 4 -> negative, '3' 4 -> left out, '4' 4 -> positive")
    assert ds.report.other_dropped == {"labelled neither --positive nor --negative": 4}
    assert load(path, label_col="stars", positive="4,5").label_names == ("negative", "positive")
    words = write(tmp_path / "w.csv", "text,label\n" + "".join(f"review {i},{('great', 'good', 'bad')[i % 3]}\n"
                                                               for i in range(9)))
    assert load(words, positive="great,good").label_names == ("bad", "great/good")  # words keep their own names
    assert load(path, label_col="stars", positive="5").labels.sum() == 4  # 1-4 negative, as before
    with pytest.raises(DataError, match=r"--positive '4,6': '6' is not a value of column 'stars'"):
        load(path, label_col="stars", positive="4,6")
    with pytest.raises(DataError, match="'3' is named by both --positive and --negative"):
        load(path, label_col="stars", positive="3,4,5", negative="1,2,3")
    three = write(tmp_path / "t.jsonl", "".join(f'{{"text": "t{i}", "label": "{v}"}}\n'
                                                for i, v in enumerate(["positive", "neutral", "negative"] * 3)))
    with pytest.raises(DataError, match="To leave the other values out: --positive positive --negative negative"):
        load(three)
    assert load(three, positive="positive", negative="negative").label_names == ("negative", "positive")


def test_a_label_value_seen_only_on_duplicate_rows_can_be_named(tmp_path):
    """Every '4' here is a repost of a text labelled before it (kept with its first label): --positive 4,5 names a
    value of the column; naming only such values says so, and the copies' classes judge the conflicts."""
    path = write(tmp_path / "shop.csv", "text,stars\nGreat phone.,5\nBroke in a week.,1\nGreat phone.,4\n"
                                        "No signal.,2\nLove it.,5\nMeh.,3\nBroke in a week.,4\n")
    ds = load(path, label_col="stars", positive="4,5", negative="1,2")
    assert ds.texts == ["Great phone.", "Broke in a week.", "No signal.", "Love it."] and ds.labels.tolist() == [1, 0, 0, 1]
    assert ds.report.conflicting_duplicates == 1  # the 1 reposted as a 4; the 5 reposted as a 4 agrees
    assert load(path, label_col="stars", positive="4,5").report.conflicting_duplicates == 1
    with pytest.raises(DataError, match=r"--positive '4' names only values that appear on duplicate rows alone "
                                        r"\('4' \(line 4\)\).*Name a value of the kept rows too"):
        load(path, label_col="stars", positive="4", negative="1,2")
    with pytest.raises(DataError, match=r"--negative '4' names only values that appear on duplicate rows alone"):
        load(path, label_col="stars", positive="5", negative="4")
    with pytest.raises(DataError, match=r"--positive '4,6': '6' is not a value of column 'stars'"):
        load(path, label_col="stars", positive="4,6")


def test_unlabelled_source(tmp_path):
    path = write(tmp_path / "d.csv", "text\nan unlabelled review\nanother one\n")
    ds = load(path, require_labels=False)
    assert ds.labels is None and len(ds) == 2
    with pytest.raises(DataError, match="no labels"):
        sample_budget(ds, 2, 0)


def test_empty_file(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\n")
    with pytest.raises(DataError, match="no rows"):
        load(path)


def test_hf_source_from_local_files(tmp_path):
    pytest.importorskip("datasets")
    folder = tmp_path / "my_reviews"
    folder.mkdir()
    write(folder / "train.jsonl", '{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n')
    ds = load(f"hf:{folder}:train")
    assert ds.texts == ["good", "bad"] and ds.labels.tolist() == [1, 0]


def test_hf_source_unreachable_is_clear():
    pytest.importorskip("datasets")
    # a fresh process, because the hub's offline switch is read when huggingface_hub is first imported
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "pipeline", "data", "show", "hf:no-such-user/no-such-set"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 1
    assert "could not load dataset 'no-such-user/no-such-set'" in run.stderr and "Traceback" not in run.stderr


def test_rt_corpus_and_split(rt, rt_split):
    pool, test = rt_split
    assert len(rt) == 12752
    assert rt.report.other_dropped == {"plot synopses": 1097}
    assert rt.label_names == ("rotten", "fresh")
    assert (len(pool), len(test)) == (10327, 2425)
    assert not set(pool.groups) & set(test.groups)
    assert abs(pool.labels.mean() - 0.580) < 0.001


def test_rt_film_under_two_titles_is_one_group(rt):
    amaro = {g for g in rt.groups if "padre_amaro" in g}
    assert amaro == {"el_crimen_del_padre_amaro"}


def test_split_without_groups_is_by_text_and_stable(rt):
    ds = rt.subset(range(2000))
    ds = type(ds)(ds.texts, ds.labels, None, ds.label_names, "x")
    pool, test = split(ds)
    assert len(pool) + len(test) == 2000
    assert 0.12 < len(test) / 2000 < 0.28
    assert split(ds)[1].texts == test.texts


def test_sample_budget_is_balanced_deterministic_and_nested(rt_split):
    pool, _ = rt_split
    a = sample_budget(pool, 128, seed=3)
    assert len(a) == 128 and int(a.labels.sum()) == 64
    assert a.texts == sample_budget(pool, 128, seed=3).texts
    assert a.texts != sample_budget(pool, 128, seed=4).texts
    assert set(sample_budget(pool, 32, seed=3).texts) <= set(a.texts)
    assert sample_budget(pool, None, seed=0) is pool


def test_sample_budget_too_large(rt_split):
    pool, _ = rt_split
    with pytest.raises(DataError, match=r"budget 10000 needs 5000 'rotten'.*at most 8670"):
        sample_budget(pool, 10000, seed=0)
    with pytest.raises(DataError, match="at least 2"):
        sample_budget(pool, 1, seed=0)


def test_fingerprint_tracks_texts_and_labels(rt):
    a = rt.subset(range(50))
    b = rt.subset(range(50))
    assert a.fingerprint() == b.fingerprint()
    flipped = type(a)(a.texts, 1 - a.labels, a.groups, a.label_names, a.name)
    assert flipped.fingerprint() != a.fingerprint()
    assert np.array_equal(a.labels, b.labels)


def test_duplicates_whose_ratings_land_in_one_class_do_not_conflict(tmp_path):
    path = write(tmp_path / "d.csv", "text;stars\nGenial;5\nFatal;1\nGenial;4\nFatal;5\nMeh;3\nMeh;2\nBien;4\nMal;2\n")
    ds = load(path, label_col="stars", positive="4,5", negative="1,2")
    assert ds.report.conflicting_duplicates == 2  # 5 and 4 agree (both positive); 1 and 5 do not; 3 and 2 do not
    assert ds.report.conflict_examples[0] == "line 5: 'Fatal' is '5' (positive), the copy kept at line 3 '1' (negative)"
    assert ds.report.conflict_examples[1] == "line 7: 'Meh' is '2' (negative), the copy kept at line 6 '3' (left out)"
