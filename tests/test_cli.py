"""Command line: help is instant (no heavy imports) and every command documents itself."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pipeline.cli import main

HEAVY = ("torch", "transformers", "sentence_transformers", "gensim", "setfit", "matplotlib")


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_every_command_has_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    names = list(main.commands)
    assert "data" in names
    for name in names:
        sub = runner.invoke(main, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "Usage" in sub.output
        assert "Examples:\n    review-transfer " in runner.invoke(main, [*(["data", "show"] if name == "data" else [name]),
                                                                     "--help"]).output, name  # each teaches by example


def test_data_show_rt():
    result = CliRunner().invoke(main, ["data", "show", "rt", "--rows", "2"])
    assert result.exit_code == 0, result.output
    assert "12752 unique" in result.output
    assert "pool 10327" in result.output and "test 2425" in result.output
    assert "shared 0" in result.output


def test_data_show_quotes_numeric_labels_before_their_counts(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"review number {i},{i % 3 and 1}\n" for i in range(30)), encoding="utf-8")
    result = CliRunner().invoke(main, ["data", "show", str(path)])
    assert result.exit_code == 0, result.output
    assert "labels        '1' 20 (66.7%), '0' 10 (33.3%)" in result.output  # not "1 20 (66.7%)"


def test_data_show_weighs_chinese_by_characters_not_spaces(tmp_path):
    path = tmp_path / "zh.csv"
    rows = ["质量很好，物流也快", "太差了，不会再买", "还可以吧", "非常满意 good value"]
    path.write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(rows)), encoding="utf-8")
    result = CliRunner().invoke(main, ["data", "show", str(path)])
    assert result.exit_code == 0, result.output
    # each text's spaced words (1, 1, 1, 3) plus half a word per Han character (8, 7, 4, 4; punctuation is none):
    # 5, 4.5, 3, 5 words (by spaces alone: 1, 1, 1, 3)
    assert "words/text    min 3, median 4.8, mean 4.4, max 5 (a Han, kana or Thai character counts half a word)" \
        in result.output, result.output


def test_data_show_names_the_columns_a_label_may_be_in_when_it_reads_a_file_unlabelled(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("주문번호,별점,리뷰내용\n1,5,배송 빨라요 👍\n2,1,환불했어요 😡\n", encoding="utf-8-sig")
    result = CliRunner().invoke(main, ["data", "show", str(path), "--text-col", "리뷰내용"])
    assert result.exit_code == 0, result.output
    assert "labels        unlabelled" in result.output
    assert ("note: no column 'label', so every row reads as unlabelled; if the labels are in another column, name it "
            "with --label-col (columns: '주문번호', '별점').") in result.output
    path.write_text("text,label\n배송 빨라요,\n환불했어요,\n", encoding="utf-8")  # a label column, not filled in yet
    result = CliRunner().invoke(main, ["data", "show", str(path)])
    assert result.exit_code == 0 and "labels        unlabelled" in result.output and "note:" not in result.output


def test_data_show_bad_file_is_one_clean_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("review,stars\ngood,5\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["data", "show", str(path)])
    assert result.exit_code == 1
    assert "missing column 'text'" in result.output and "Traceback" not in result.output


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True, check=True)
    assert "review-transfer" in out.stdout


def test_engine_failures_are_one_clean_line():
    import click

    from pipeline import EngineError
    from pipeline.cli.options import _handle_errors

    @click.command()
    @_handle_errors
    def failing() -> None:
        raise EngineError("a compare cell failed after 3 retries; rerun to resume.")

    result = CliRunner().invoke(failing)
    assert result.exit_code == 1
    assert result.output == "Error: a compare cell failed after 3 retries; rerun to resume.\n"


def test_a_full_disk_anywhere_is_one_line_naming_the_directory_and_the_fix(tmp_path):
    import errno

    import click

    from pipeline.cli.options import _handle_errors

    @click.command()
    @_handle_errors
    def writing() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "report.md"))

    result = CliRunner().invoke(writing)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: no room on the disk of {tmp_path} (") and "free some space there" in \
        result.output.lower() and "REVIEW_TRANSFER_CACHE=DIR" in result.output and "report.md could not" in result.output


def test_a_full_disk_under_redirected_stdout_names_the_output_and_its_disk(tmp_path, monkeypatch):
    """Results echoed to a stdout redirected into a file on a full disk: the error names the output, its file and
    disk, not the cache (the file is real; the ENOSPC its write would meet is raised where click.echo writes; a
    real full device is tests/test_fit_cli.py's /dev/full test)."""
    import errno

    import click

    from pipeline.cli.options import _handle_errors

    class FullFile:
        """Standard output redirected into ``out.txt``, on a disk whose writes all fail as full."""

        encoding, errors = "utf-8", "strict"

        def __init__(self, f):
            self.fileno = f.fileno

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    @_handle_errors
    def printing() -> None:
        click.echo("fresh\t0.9\tA triumph.")

    with open(tmp_path / "out.txt", "w") as f:
        monkeypatch.setattr(sys, "stdout", FullFile(f))
        with pytest.raises(click.ClickException) as raised:
            printing()
    assert raised.value.message.startswith(f"no room on the disk of {tmp_path} (") and \
        "the output (standard output, sent to out.txt) could not be written" in raised.value.message
    assert "REVIEW_TRANSFER_CACHE" not in raised.value.message


def test_training_progress_lines_show_during_the_command_and_the_logger_is_left_as_found():
    """finetune and adapt print pipeline.finetune's INFO lines on stderr while they run, and leave that logger with
    the handlers and level it had: the Python API and later commands in the process keep their own logging."""
    import logging

    import click

    from pipeline.cli.options import shows_training_log

    log = logging.getLogger("pipeline.finetune")
    before = (list(log.handlers), log.level)

    @click.command()
    @shows_training_log
    def training() -> None:
        log.info("epoch 1/3: loss 0.41")

    result = CliRunner().invoke(training)
    assert result.exit_code == 0 and "epoch 1/3: loss 0.41" in result.output
    assert (list(log.handlers), log.level) == before
    finetune = CliRunner().invoke(main, ["finetune", "rt", "--out", "unused", "--teacher", "frozen"])
    assert finetune.exit_code == 2 and "add --self-train" in finetune.output  # refused once the command ran
    assert (list(log.handlers), log.level) == before
    adapt = CliRunner().invoke(main, ["adapt", "no-such-reviews.csv"])
    assert adapt.exit_code == 1 and adapt.output.startswith("Error: no-such-reviews.csv: no such file")
    assert (list(log.handlers), log.level) == before


def test_cli_prints_warnings_as_one_line(monkeypatch, tmp_path):
    import warnings

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after the test
    source = tmp_path / "reviews.csv"
    source.write_text("text,label\nqzxv wkrp,pos\nA fine film.,neg\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["data", "show", str(source)])
    assert result.exit_code == 0, result.output
    assert warnings.formatwarning("no known word", UserWarning, "static.py", 1) == "warning: no known word\n"


def test_only_the_command_line_process_itself_ends_without_teardown(monkeypatch):
    """``predict`` ends its own process without the interpreter's teardown (after flushing), never a test runner's:
    a fresh ``predict`` with a pipe as stdout is tests/test_linear_head.py's subprocess test."""
    import atexit
    import types

    from pipeline.cli import options

    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    options.end_without_teardown(main)  # __main__ is pytest's
    assert registered == []
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(main=main))  # the script's `from ... import main`
    options.end_without_teardown(main)
    assert registered == [options._exit_now]
