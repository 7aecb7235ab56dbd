"""``review-transfer --help`` and every command's ``--help`` import no numpy, torch or scikit-learn, and
the console script names the function that runs the command line."""

from __future__ import annotations

import configparser
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("numpy", "torch", "transformers", "sentence_transformers", "sklearn", "scipy", "h5py", "gensim")
COMMANDS = ("data show", "embed", "cache ls", "fit", "predict", "evaluate", "finetune", "compare", "suggest", "label",
            "adapt")
ROOT = Path(__file__).parents[1]


def _console_script() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    line = cfg["options.entry_points"]["console_scripts"].strip()
    name, target = (part.strip() for part in line.split("="))
    assert name == "review-transfer"
    return target


def test_the_console_script_names_the_click_group():
    module, attr = _console_script().split(":")
    main = getattr(importlib.import_module(module), attr)
    assert callable(main) and main.name == "main" and {"fit", "predict", "compare"} <= set(main.commands)


@pytest.mark.parametrize("command", ("", *COMMANDS))
def test_help_imports_no_heavy_library(command):
    module, attr = _console_script().split(":")
    code = (f"import sys\nfrom {module} import {attr}\n"
            f"try:\n    {attr}({[*command.split(), '--help']!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout and res.stdout.strip().splitlines()[-1] == "[]", res.stdout[-500:]


def test_the_head_help_names_every_registered_head():
    """fit's and compare's --head help lists the heads without importing scikit-learn: it must follow the registry."""
    from pipeline.cli.options import HEADS_HELP
    from pipeline.heads.registry import HEADS

    listed = HEADS_HELP.split(":", 1)[1].rstrip(".").replace(" ", "").split(",")
    assert listed == list(HEADS)


def test_retarget_offers_the_self_training_options_it_runs_and_says_what_they_do_there():
    """retarget's pseudo-labels are 0/1 (no --soft/--hard, which fit, finetune and compare keep), and its --rounds and
    --unlabelled say what they do in retarget."""
    from click.testing import CliRunner

    from pipeline.cli import main

    retarget = CliRunner().invoke(main, ["retarget", "--help"], terminal_width=200).output
    assert "--soft" not in retarget and "--hard" not in retarget
    assert "the head fitted so far labels the unlabelled texts again" in retarget
    assert "Unlabelled texts of the target site" in retarget and "pool texts outside the label budget" not in retarget
    refused = CliRunner().invoke(main, ["retarget", str(ROOT), "--out", "unused", "--hard"])
    assert refused.exit_code == 2 and "No such option '--hard'" in refused.output
    for command in ("fit", "finetune", "compare"):
        assert "--soft / --hard" in CliRunner().invoke(main, [command, "--help"], terminal_width=200).output
