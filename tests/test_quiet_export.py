"""Exports silence the exporting libraries' log lines, never the root logger's level, from any number of threads."""

from __future__ import annotations

import logging
import threading
import warnings

from pipeline.encoders.quiet import quiet_export


def test_an_export_hides_the_exporters_lines_and_keeps_everyone_elses(caplog):
    root = logging.getLogger()
    with caplog.at_level(logging.INFO):
        with quiet_export():
            assert root.level == logging.INFO  # never raised: the package's own lines still pass
            logging.getLogger("onnxruntime.quantization").warning("exporter line")
            logging.warning("line logged on the root logger itself")
            logging.getLogger("pipeline.encoders.onnx").warning("our line")
            logging.getLogger("nncf").error("an exporter's error")
            warnings.warn("tracer warning")
        logging.getLogger("onnxruntime.quantization").warning("after the export")
    assert [r.getMessage() for r in caplog.records] == ["our line", "an exporter's error", "after the export"]
    assert not root.filters and logging.getLogger("onnxruntime").level == logging.NOTSET


def test_overlapping_exports_in_two_threads_restore_every_level():
    """The first export in sets the levels, the last one out restores them, whichever thread leaves first."""
    torch_log, root_level = logging.getLogger("torch"), logging.getLogger().level
    torch_log.setLevel(logging.INFO)
    inside, leave = threading.Event(), threading.Event()

    def export() -> None:
        with quiet_export():
            inside.set()
            leave.wait(5)

    try:
        thread = threading.Thread(target=export)
        thread.start()
        inside.wait(5)
        with quiet_export():
            leave.set()
            thread.join(5)  # the thread's export leaves while this one is still inside
            assert torch_log.level == logging.ERROR
        assert torch_log.level == logging.INFO and not logging.getLogger().filters
        assert logging.getLogger().level == root_level
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            warnings.warn("shown again")
        assert len(seen) == 1
    finally:
        torch_log.setLevel(logging.NOTSET)
