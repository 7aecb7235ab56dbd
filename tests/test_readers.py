"""One reader: every bad file gets the same one-line message from every command, streaming or not."""

from __future__ import annotations

import csv
import json
import re
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import write_reviews_csv

from pipeline.cli import main
from pipeline.data.dataset import load, read_texts
from pipeline.data.encodings import legacy_encoding
from pipeline.data.readers import DataError, DataWarning
from pipeline.store.stream import iter_text_batches

GLOVE = "glove-6b-50d"
HEADER = "text,label\n"
GOOD = "A moving and funny film.,fresh\nDull and overlong.,rotten\n"


def _parquet_null(path):
    pq.write_table(pa.table({"text": ["fine", None, "also fine", None], "label": ["fresh", "rotten", "rotten", "fresh"]}),
                   path)


# (case, file name, content or writer, the message every command must print)
BAD = [
    ("unclosed-quote", "q.csv", HEADER + GOOD + '"Service was very prompt.,fresh\nBad food,rotten\n',
     r"q\.csv: line 4: a quote opened on this line is never closed \(the file ends inside it\), so lines 4-5 "
     r"would merge"),
    ("text-after-closing-quote", "j.csv", HEADER + GOOD + '"Nice" and warm,fresh\n',
     r"j\.csv: line 4: a closing quote is followed by more text"),
    ("tsv-text-opening-with-a-quote", "t.tsv", 'text\tlabel\nFine.\tfresh\n"Dull" they said, and it was\trotten\n',
     r"t\.tsv: line 3: a closing quote is followed by more text .*quote the whole text\. A \.tsv is read with CSV "
     r"quoting, so a text that starts with a quote must be quoted whole"),
    ("duplicated-header", "h.csv", "text,text,label\na,b,fresh\n",
     r"h\.csv: line 1: column 'text' appears 2 times in the header \(fields 1, 2\)"),
    ("jsonl-duplicate-key", "k.jsonl", '{"text": "good", "text": "bad", "label": "fresh"}\n',
     r"k\.jsonl: line 1: key 'text' appears twice in one object"),
    ("malformed-jsonl", "m.jsonl", '{"text": "good", "label": "fresh"}\n{"text": "bad", "label": \n',
     r"m\.jsonl: line 2: malformed JSON"),
    ("not-utf8", "u.csv", (HEADER + GOOD + "caf\xe9 bad,rotten\n").encode("latin-1"),
     r"u\.csv: line 4: byte 0xe9 is not valid UTF-8\. Re-save the file as UTF-8 \(Excel: 'CSV UTF-8'\), or convert "
     r"it: a file from Windows or Excel is most often cp1252 \(`iconv -f cp1252 -t utf-8 u\.csv > fixed\.csv`, or "
     r"where there is no iconv \(Windows\): `python -c \"open\('fixed\.csv', 'w', encoding='utf-8', newline=''\)"
     r"\.write\(open\('u\.csv', encoding='cp1252', newline=''\)\.read\(\)\)\"`; latin1"),
    ("not-utf8-korean", "k.csv", "주문번호,별점,리뷰내용\n1,5,배송 빨라요\n".encode("cp949"),
     r"k\.csv: line 1: byte 0xc1 is not valid UTF-8\. .*reads as Korean in cp949, as Excel saves plain CSV on Korean "
     r"Windows \(`iconv -f cp949 -t utf-8 k\.csv > fixed\.csv`, or where there is no iconv \(Windows\): `python -c "
     r"\"open\('fixed\.csv', 'w', encoding='utf-8', newline=''\)\.write\(open\('k\.csv', encoding='cp949', "
     r"newline=''\)\.read\(\)\)\"`\)"),
    ("utf-16", "w.tsv", "text\tlabel\nA fine film.\tfresh\n".encode("utf-16"),
     r"w\.tsv: the file is UTF-16 .*`iconv -f utf-16 -t utf-8 w\.tsv > fixed\.tsv`"),
    ("unquoted-comma", "c.csv", HEADER + GOOD + "Dull, lifeless,rotten\n",
     r"c\.csv: line 4: 3 fields but the header has 2\. Quote texts"),
    ("title-line", "e.csv", "Reviews exported 2024-05\n" + HEADER + GOOD,
     r"e\.csv: line 1 \('Reviews exported 2024-05'\) has 1 field\(s\) and line 2 has 2 \('text', 'label'\): line 1 is "
     r"a title above the column names\. Delete it so that the column names are the first line \(a spreadsheet: delete "
     r"row 1, then save as 'CSV UTF-8'\) and run again\.$"),
    ("title-line-unnamed-columns", "k.csv", "카페 리뷰 내보내기 (2024년)\n작성일,리뷰내용,별점\n2024-05-01,맛있어요 👍,5\n",
     r"k\.csv: line 1 \('카페 리뷰 내보내기 \(2024년\)'\) has 1 field\(s\) and line 2 has 3 \('작성일', '리뷰내용', '별점'\): "
     r"line 1 looks like a title above the column names\. Delete it .* If line 1 is the header, line 2 is a text: Quote "
     r"texts that contain a ','"),
    ("missing-text-column", "r.csv", "review,label\ngood,fresh\n",
     r"r\.csv: missing column 'text'; columns present: \['label', 'review'\]\. Pass the right name with --text-col\.$"),
    ("missing-text-column-nested", "n.jsonl",
     '{"id": "r1", "review": {"title": "Solid", "body": "Warm and dry all night long.", "rating": 5}}\n',
     r"n\.jsonl: missing column 'text'; columns present: \['id', 'review'\]\. Pass the right name with --text-col\. "
     r"The first row's longest text is in 'review\.body': --text-col review\.body\.$"),
    ("missing-text-column-named", "r.csv", "Review Text,label,Product\nA fine film,fresh,Blue Pen 2\n",
     r"r\.csv: missing column 'text'; columns present: \['Product', 'Review Text', 'label'\]\. Pass the right name "
     r"with --text-col\. The first row's longest text is in 'Review Text': --text-col 'Review Text'\.$"),
]


def _write(tmp_path, name, content):
    path = tmp_path / name
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("case,name,content,message", BAD, ids=[c[0] for c in BAD])
def test_every_reader_refuses_a_bad_file_with_the_same_message(tmp_path, case, name, content, message):
    path = str(_write(tmp_path, name, content))
    errors = []
    for read in (lambda: load(path), lambda: load(path, require_labels=False), lambda: read_texts(path),
                 lambda: list(iter_text_batches(path)), lambda: list(iter_text_batches(path, batch_rows=1))):
        with pytest.raises(DataError) as err:
            read()
        errors.append(str(err.value))
    assert len(set(errors)) == 1, errors
    assert re.search(message, errors[0]), errors[0]


# (file name, content or writer, how many are null, NaN or NULL): "fine" and "also fine", each followed by an empty
# or missing text written as that format's tools write one
MISSING = [
    ("n.csv", 'text,label\nfine,fresh\n"",rotten\nalso fine,rotten\nNaN,fresh\n', 1),
    ("n.tsv", "text\tlabel\nfine\tfresh\nNULL\trotten\nalso fine\trotten\n\tfresh\n", 1),
    ("n.jsonl", '{"text": "fine", "label": "fresh"}\n{"text": null, "label": "rotten"}\n\n'
                '{"text": "also fine", "label": "rotten"}\n{"text": NaN, "label": "fresh"}\n', 2),
    ("n.json", '[{"text": "fine", "label": "fresh"}, {"text": null, "label": "rotten"}, '
               '{"text": "also fine", "label": "rotten"}, {"text": "  ", "label": "fresh"}]', 1),
    ("n.parquet", _parquet_null, 2),
]


@pytest.mark.parametrize("name,content,missing", MISSING, ids=[m[0] for m in MISSING])
def test_a_missing_text_is_an_empty_one_in_every_format(tmp_path, name, content, missing):
    """A null, NaN or NULL text is dropped and counted as an empty cell is, and kept as an empty row where output
    lines up with the input rows."""
    path = str(_write(tmp_path, name, content))
    ds = load(path)
    assert ds.texts == ["fine", "also fine"] and ds.report.empty_dropped == 2
    assert ds.report.missing_dropped == missing
    assert read_texts(path) == ["fine", "", "also fine", ""]
    assert [t for b in iter_text_batches(path, batch_rows=1) for t in b] == ["fine", "also fine"]


@pytest.mark.parametrize("text,codec,language", [
    ("배송 진짜 빨라요 똠방각하 최고 👍", "cp949", "Korean"),  # 똠 is outside EUC-KR: cp949's own extension
    ("商品名,評価,レビュー", "cp932", "Japanese"),  # Shift-JIS trail bytes can be ASCII
    ("质量太差了，用了两天就坏了。", "gb18030", "Chinese"),
    ("Größe passt, übermäßig gut", "cp1252", "Western European"),  # "ößü" pairs read as stray Han in GBK
    ("Ça coûte très cher, déçu", "cp1252", "Western European"),
])
def test_a_line_that_is_not_utf8_is_named_by_the_code_page_it_reads_in(text, codec, language):
    assert legacy_encoding(text.encode(codec, errors="replace")) == (codec, language)


def test_an_excel_file_of_a_comma_decimal_locale_is_read_by_its_semicolons(tmp_path):
    """Excel writes ';' where the decimal mark is a comma (French, German, ...): the header says which."""
    path = tmp_path / "avis.csv"
    path.write_bytes("\ufeffAvis client;Verdict;Prix\r\nTrès bon, vraiment;Good;12,50\r\nNul, cassé;Bad;3,00\r\n"
                     .encode("utf-8"))
    ds = load(str(path), text_col="Avis client", label_col="Verdict")
    assert ds.texts == ["Très bon, vraiment", "Nul, cassé"] and tuple(ds.label_names) == ("Bad", "Good")
    assert list(ds.labels) == [1, 0]  # Good/Bad are known label names


def test_long_cell_and_line_breaks_load_the_same_everywhere(tmp_path):
    long_text = "word " * 40_000  # 200,000 characters: over csv's default cell limit of 131,072
    path = tmp_path / "x.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerows([["text", "label"], ["fine", "fresh"], [long_text, "rotten"], ["two\nlines", "fresh"],
                     ["NaNny McPhee is fun", "fresh"]])
    expected = ["fine", long_text.strip(), "two\nlines", "NaNny McPhee is fun"]
    with pytest.warns(DataWarning, match=r"x\.csv: 1 row\(s\) hold line breaks inside quotes.*first at line 4"):
        assert load(str(path)).texts == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert read_texts(str(path)) == expected
        assert [t for b in iter_text_batches(path, batch_rows=2) for t in b] == expected


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def bundle(rt, tmp_path_factory):
    """A small GloVe + naive Bayes bundle (fit on 120 RT rows) and its cache directory."""
    base = tmp_path_factory.mktemp("readers")
    data = write_reviews_csv(base / "train.csv", rt, range(120))
    res = CliRunner().invoke(main, ["fit", data, "--encoder", GLOVE, "--head", "nb", "--cache-dir",
                                    str(base / "cache"), "--out", str(base / "models")])
    assert res.exit_code == 0, res.output
    (path,) = (base / "models").iterdir()
    return path, base / "cache"


def _commands(path, bundle, tmp_path):
    model, cache = bundle
    return {
        "embed": ["embed", path, "--encoder", GLOVE, "--cache-dir", cache],
        "fit": ["fit", path, "--encoder", GLOVE, "--head", "nb", "--cache-dir", cache, "--out", tmp_path / "m"],
        "predict --input": ["predict", model, "--input", path, "--cache-dir", cache, "--output", tmp_path / "p.csv"],
        "evaluate": ["evaluate", model, path, "--cache-dir", cache],
        "data show": ["data", "show", path],
    }


@pytest.mark.parametrize("case,name,content,message", BAD, ids=[c[0] for c in BAD])
def test_every_command_refuses_a_bad_file_with_the_same_line(tmp_path, bundle, case, name, content, message):
    path = _write(tmp_path, name, content)
    lines = {}
    for command, args in _commands(path, bundle, tmp_path).items():
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 1 and "Traceback" not in res.output, (command, res.output)
        (lines[command],) = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(set(lines.values())) == 1, lines
    assert re.search(message, lines["embed"]), lines["embed"]


def test_every_command_reads_long_cells_and_warns_the_same_about_line_breaks(rt, tmp_path, bundle):
    path = write_reviews_csv(tmp_path / "ok.csv", rt, range(200, 280))
    with open(path, "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["A film in\ntwo lines.", "fresh", "m"], ["dull " * 30_000, "rotten", "m"]])
        f.write('"Service was very prompt.,fresh,m\nBad food,rotten,m\nReally good",fresh,m\n')  # a quote left open
    warned = {}
    for command, args in _commands(path, bundle, tmp_path).items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 0, (command, res.output)
        warned[command] = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert warned["embed"] == [
        f"{path}: 2 row(s) hold line breaks inside quotes, each read as one row (line 85: the quoted text opened there "
        "runs to line 87 and holds line 86 ('Bad food,rotten,m'), which reads as a row of its own: if a quote is "
        'unbalanced there, rows were merged. Close it (write "" for a quote inside a text)).']
    assert all(w == warned["embed"] for w in warned.values()), warned
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        written = read_texts(str(tmp_path / "p.csv"))
    assert len(written) == 83 and written[-2] == ("dull " * 30_000).strip()  # a 150,000-character cell


def test_rt_written_as_csv_loads_whole_despite_its_line_breaks(rt, tmp_path):
    path = write_reviews_csv(tmp_path / "rt.csv", rt, range(len(rt)))
    with pytest.warns(DataWarning, match=r"107 row\(s\) hold line breaks inside quotes.*\(first at line"):
        again = load(path, group_col="movie")
    assert again.texts == rt.texts and again.labels.tolist() == rt.labels.tolist()
    two_columns = tmp_path / "rt2.csv"  # as text,label a few texts look like rows merged by an open quote
    with open(two_columns, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label"], *zip(rt.texts, rt.labels.tolist())])
    with pytest.warns(DataWarning, match=r"107 row\(s\) .*which reads as a row of its own: if a quote is unbalanced"):
        assert load(str(two_columns)).texts == rt.texts  # warned, not refused



def test_a_nan_marker_is_no_label(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text(HEADER + GOOD + "Fine.,NaN\n", encoding="utf-8")
    ds = load(str(path))
    assert "Fine." not in ds.texts and ds.report.other_dropped == {"without a label": 1}


def test_a_nested_json_text_is_named_by_its_dotted_path(tmp_path):
    rows = [{"id": i, "review": {"title": "t", "body": f"review number {i}"}, "stars": 1 + 4 * (i % 2)} for i in range(4)]
    path = tmp_path / "n.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"column 'review' is dict .* its longest text is 'body', so --text-col review\.body\."):
        load(str(path), text_col="review", label_col="stars")
    ds = load(str(path), text_col="review.body", label_col="stars", positive="5")
    assert ds.texts == [f"review number {i}" for i in range(4)] and ds.labels.tolist() == [0, 1, 0, 1]
    array = tmp_path / "n.json"
    array.write_text(json.dumps(rows), encoding="utf-8")
    assert read_texts(str(array), "review.body") == ds.texts
    with pytest.raises(DataError, match=r"missing column 'review\.bdy'"):
        read_texts(str(array), "review.bdy")


def test_a_workbook_and_a_mistyped_name_say_what_to_give(tmp_path):
    (tmp_path / "reviews.csv").write_text(HEADER + GOOD, encoding="utf-8")
    (tmp_path / "reviews.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=r"reviews\.xlsx: a spreadsheet workbook, .* 'CSV UTF-8 \(Comma delimited\)'"):
        load(str(tmp_path / "reviews.xlsx"))
    with pytest.raises(DataError, match=rf"revews\.csv: no such file \(did you mean {re.escape(str(tmp_path))}/reviews\.csv\?\)"):
        load(str(tmp_path / "revews.csv"))


def test_a_header_saved_decomposed_matches_the_name_typed_composed(tmp_path):
    """macOS writes Korean and accented names decomposed (NFD); a user types them composed (NFC)."""
    import unicodedata

    nfd = lambda s: unicodedata.normalize("NFD", s)  # noqa: E731
    path = tmp_path / "ko.csv"
    path.write_text(nfd("리뷰,평가\n") + "좋아요 정말," + nfd("긍정") + "\n별로예요,부정\n", encoding="utf-8")
    ds = load(str(path), text_col="리뷰", label_col="평가")
    assert ds.texts == ["좋아요 정말", "별로예요"] and ds.labels.tolist() == [1, 0]  # a decomposed 긍정 is known too
    table = pa.table({nfd("리뷰"): ["좋아요 정말", "별로예요"], nfd("évaluation"): ["positive", "negative"]})
    pq.write_table(table, tmp_path / "ko.parquet")
    assert load(str(tmp_path / "ko.parquet"), text_col="리뷰", label_col="évaluation").labels.tolist() == [1, 0]


def test_data_show_refuses_a_label_column_asked_for_and_absent(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("review,stars\nGood.,5\nBad.,1\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["data", "show", str(path), "--text-col", "review", "--label-col", "star"])
    assert res.exit_code == 1 and "missing column 'star'" in res.output and "Did you mean --label-col stars?" in res.output
    res = CliRunner().invoke(main, ["data", "show", str(path), "--text-col", "review"])  # no label column asked: texts
    assert res.exit_code == 0 and "unlabelled" in res.output


def test_a_struct_field_of_a_parquet_file_is_named_by_its_dotted_path(tmp_path):
    rows = [{"id": i, "review": {"title": "t", "meta": {"lang": "en"}, "body": f"review number {i}"},
             "stars": 1 + 4 * (i % 2)} for i in range(4)]
    path = tmp_path / "n.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    ds = load(str(path), text_col="review.body", label_col="stars", positive="5")
    assert ds.texts == [f"review number {i}" for i in range(4)] and ds.labels.tolist() == [0, 1, 0, 1]
    assert read_texts(str(path), "review.meta.lang") == ["en"] * 4  # a struct inside a struct
    assert read_texts(str(path), "review.body") == ds.texts
    with pytest.raises(DataError, match=r"missing column 'review\.bdy'.*'review\.body'.*Did you mean --text-col review\.body"):
        read_texts(str(path), "review.bdy")
    with pytest.raises(DataError, match=r"column 'review' is dict .* so --text-col review\.body\."):
        load(str(path), text_col="review", label_col="stars")
