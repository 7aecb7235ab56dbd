"""A line cut short by a kill mid-write is dropped before reading or appending, in both append-only files."""

import json

from pipeline.study.compare import ResultsLog
from pipeline.data.jsonlines import drop_partial_line
from pipeline.active.label_app.store import LabelFile


def test_drop_partial_line_keeps_whole_lines_only(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": ')
    drop_partial_line(path)
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    drop_partial_line(path)  # whole lines: unchanged
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    drop_partial_line(tmp_path / "missing.jsonl")  # no file: nothing to do


def test_label_file_and_results_log_resume_after_a_torn_write(tmp_path):
    labels = LabelFile(tmp_path / "labels.jsonl")
    labels.append({"text": "Great.", "label": "positive"})
    with open(labels.path, "ab") as f:
        f.write(b'{"text": "Aw')
    assert labels.records() == [{"text": "Great.", "label": "positive"}]

    log = ResultsLog(tmp_path)
    log.append({"method": "m", "budget": "32", "seed": 0})
    with open(log.path, "ab") as f:
        f.write(b'{"method": ')
    log.append({"method": "m", "budget": "32", "seed": 1})
    assert [json.loads(line)["seed"] for line in log.path.read_text().splitlines()] == [0, 1]


def test_a_whole_last_line_without_its_break_is_kept(tmp_path):
    """A labels file edited by hand often ends without a line break: that record is a label, not a torn write."""
    labels = LabelFile(tmp_path / "labels.jsonl")
    labels.path.write_bytes('{"text": "Great.", "label": "positive"}\n{"text": "Dull, très dull.", "label": "negative"}'
                            .encode("utf-8"))
    assert [r["label"] for r in labels.records()] == ["positive", "negative"]
    labels.append({"text": "Fine.", "label": "positive"})
    assert [r["text"] for r in labels.records()] == ["Great.", "Dull, très dull.", "Fine."]
    cut = tmp_path / "cut.jsonl"  # a kill inside a two-byte character: torn, dropped
    cut.write_bytes('{"a": 1}\n"é'.encode("utf-8")[:-1])
    drop_partial_line(cut)
    assert cut.read_bytes() == b'{"a": 1}\n'


def test_a_bad_line_in_the_labels_file_is_named_and_nothing_is_lost(tmp_path):
    import pytest

    from pipeline.data.readers import DataError

    labels = LabelFile(tmp_path / "labels.jsonl")
    content = b'{"text": "Great.", "label": "positive"}\n{"text": "Aw", "label": \n{"text": "Dull.", "label": "negative"}\n'
    labels.path.write_bytes(content)
    with pytest.raises(DataError, match=r"labels\.jsonl: line 2: malformed JSON at column \d+ .*Fix or delete that line"):
        labels.records()
    labels.path.write_bytes(content.replace(b'{"text": "Aw", "label": ', b'["Aw", "positive"]'))
    with pytest.raises(DataError, match=r"line 2: expected an object with a \"text\" string"):
        labels.records()
    assert labels.path.read_bytes() == content.replace(b'{"text": "Aw", "label": ', b'["Aw", "positive"]')
