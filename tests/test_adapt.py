"""adapt: domain-adaptive pretraining of MiniLM on a tiny real corpus: keyed by recipe and corpus, a cache
hit the second time, usable as st:DIR, and resumed after a real kill -9."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.data.dataset import load, split
from pipeline.unlabelled.adapt import AdaptRecipe, adapt, corpus_hash, fingerprint


@pytest.fixture(scope="module")
def corpus(rt_split) -> list[str]:
    """24 real RT pool texts."""
    return rt_split[0].texts[:24]


def test_fingerprint_changes_with_corpus_and_recipe(corpus):
    base = fingerprint("minilm-id", AdaptRecipe(), corpus_hash(corpus))
    assert fingerprint("minilm-id", AdaptRecipe(), corpus_hash(corpus[:-1] + ["another review"])) != base
    assert fingerprint("minilm-id", AdaptRecipe(method="tsdae"), corpus_hash(corpus)) != base  # not the default
    assert fingerprint("minilm-id", AdaptRecipe(seed=1), corpus_hash(corpus)) != base
    assert fingerprint("minilm-id", AdaptRecipe(), corpus_hash(list(corpus))) == base
    with pytest.raises(ValueError, match="tsdae, simcse, mlm"):
        AdaptRecipe(method="bert")


@pytest.mark.slow
def test_adapt_resumes_after_kill_then_is_a_cache_hit(corpus, tmp_path, caplog):
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus))
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "pipeline", "adapt", str(data), "--method", "simcse", "--epochs", "2",
           "--batch-size", "8", "--max-length", "32", "--cache-dir", str(cache), "--out", str(tmp_path / "adapted")]
    # the first run checkpoints after every step, so it is killed mid-epoch
    run = subprocess.Popen([*cmd, "--checkpoint-every", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not list(cache.glob("adapted/*.ckpt/checkpoint.pt")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    assert run.poll() is None, "adapt finished before it could be killed"
    os.kill(run.pid, signal.SIGKILL)  # a real kill -9, mid-training
    run.wait()
    assert not list(cache.glob("adapted/*/adapt.json")), "a killed run must not leave a model"
    # resumed in this process (torch is loaded here already; a third interpreter would only import it again)
    with caplog.at_level(logging.INFO, logger="pipeline.finetune"):
        resumed = CliRunner().invoke(main, cmd[3:])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from" in caplog.text
    record = json.loads((tmp_path / "adapted" / "adapt.json").read_text())
    pool = split(load(str(data), require_labels=False))[0].texts  # SOURCE's pool only: never its test split
    assert record["resumed_from"] and len(record["history"]) == 2 and record["corpus_size"] == len(pool) < 24
    assert not list(cache.glob("adapted/*.ckpt")), "the checkpoint is removed once the model is saved"
    again = CliRunner().invoke(main, cmd[3:])  # in this process too: a hit loads no model
    assert again.exit_code == 0 and "cache hit" in again.output, again.output

    from pipeline.encoders import get_encoder

    enc = get_encoder(f"st:{tmp_path / 'adapted'}")
    assert enc.encode(corpus[:2]).shape == (2, 384)
    assert adapt(pool, recipe=AdaptRecipe(method="simcse", epochs=2, batch_size=8, max_length=32),
                 cache_dir=cache).cached  # the Python API finds the same model
