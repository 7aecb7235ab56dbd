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
