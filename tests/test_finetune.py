"""Fine-tuning end to end on a tiny real budget (32 RT labels, short max length), the resumable loop
on a small torch model, the head export to scikit-learn, and the recipe checks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import write_reviews_csv
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

from pipeline.bundle.bundle import ENCODER_DIR, Bundle
from pipeline.cli import main
from pipeline.data.dataset import load
from pipeline.encoders import get_encoder
from pipeline.finetune import Runtime, default_checkpoint_dir, finetune, holdout, make_recipe
from pipeline.finetune.batching import length_batches
from pipeline.finetune.checkpoint import CheckpointError, CheckpointStore
from pipeline.finetune.head import to_sklearn, to_torch
from pipeline.finetune.loop import LoopSettings, run_loop
from pipeline.fit.train import train_test

BUDGET = 32
# the recipe of the real fine-tuning runs here; the validation slice keeps early stopping's path under test
TINY = {"epochs": 2, "max_length": 32, "val_fraction": 0.15}
CLI_TINY = ["--epochs", "2", "--max-length", "32", "--val-fraction", "0.15"]
# the model tuned by those runs: the default encoder's pooling (a mean of upper layers) on MiniLM, trained through
ENCODER = "minilm[layers=4-6]"
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def reviews_csv(rt, tmp_path_factory):
    """300 real RT rows (text, label fresh/rotten) as a CSV: a pool of about 240 and a test split of about 60."""
    idx = np.sort(np.random.default_rng(7).choice(len(rt), 300, replace=False))
    return Path(write_reviews_csv(tmp_path_factory.mktemp("ft-data") / "reviews.csv", rt, idx))


@pytest.fixture(scope="session")
def budget(reviews_csv):
    """(train, test): the 32-label budget and the test split, exactly as the `finetune` command draws them."""
    return train_test(load(str(reviews_csv)), BUDGET, 0)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ft-cache")


@pytest.fixture(scope="session")
def tuned(budget, cache_dir, tmp_path_factory):
    """MiniLM fine-tuned with method head on the budget, uninterrupted; returns the saved bundle."""
    train, test = budget
    out = tmp_path_factory.mktemp("ft-head") / "bundle"
    return finetune(train, test=test, out=out, recipe=make_recipe("head", **TINY), encoder=ENCODER, seed=0,
                    runtime=Runtime(cache_dir=cache_dir, progress=False))


# ---------------------------------------------------------------------------------------------- method head, real
@pytest.mark.slow
def test_training_lowers_the_loss_on_the_training_labels(tuned, budget):
    fit_set, _ = holdout(budget[0], tuned.manifest["finetune"]["recipe"]["val_fraction"], 0)
    details = tuned.manifest["finetune"]
    assert [row["epoch"] for row in details["history"]] == [1, 2]
    start = details["probe"]["train_loss"]  # the frozen-embedding head training started from
    after = log_loss(fit_set.labels, tuned.predict_proba(fit_set.texts))
    assert after < start


@pytest.mark.slow
def test_bundle_loads_and_predicts_through_stage_two(tuned, cache_dir, budget):
    bundle = Bundle.load(tuned.path, cache_dir=cache_dir)  # verifies files and the encoder fingerprint
    assert bundle.manifest["encoder"]["spec"] == "st:" + ENCODER_DIR
    assert bundle.manifest["encoder"]["options"]["layers"] == "4-6" and bundle.get_encoder().layers == (4, 6)
    assert type(bundle.head).__name__ == "LinearHead"  # the linear head predicts from head.npz, in numpy
    assert (tuned.path / ENCODER_DIR / "model.safetensors").is_file()
    texts = ["A triumph: moving, funny and beautifully acted.", "Dull, overlong and painfully unfunny."]
    proba = bundle.predict_proba(texts)
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(bundle.predict(texts)) <= {0, 1}
    _, test = budget
    scores = bundle.manifest["metrics"]["test"]
    assert scores["n"] == len(test)
    assert np.isclose(scores["accuracy"], ((bundle.predict_proba(test.texts)[:, 1] >= 0.5) == test.labels).mean())


@pytest.mark.slow
def test_tuned_fingerprint_differs_from_the_frozen_encoder(tuned, tmp_path):
    from pipeline.finetune.body import load_body, save_body

    # the frozen weights saved the same way (same max length, same files): only the weights differ
    frozen = save_body(load_body("minilm", max_length=TINY["max_length"], device="cpu"), tmp_path / "frozen")
    fingerprint, options = tuned.manifest["encoder"]["fingerprint"], tuned.encoder_options
    assert get_encoder("st:" + str(frozen), **options).fingerprint != fingerprint
    assert get_encoder("st:" + str(tuned.path / ENCODER_DIR), **options).fingerprint == fingerprint
    assert get_encoder("minilm").fingerprint != fingerprint


# ---------------------------------------------------------------------------------------------- long texts
def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _near(precision: str) -> float:
    """Cosine at which two vectors of the same text count as equal: bf16 batches round differently."""
    return 0.99999 if precision == "fp32" else 0.999


@pytest.fixture(scope="module")
def long_and_short(budget):
    """Six documents of five joined test snippets (well over 32 word pieces) and the test snippets under 20 words."""
    _, test = budget
    long = [" ".join(test.texts[i : i + 5]) for i in range(0, 30, 5)]
    short = [t for t in test.texts if len(t.split()) < 20][:6]
    return long, short


@pytest.mark.slow
def test_tuned_bundle_reads_a_long_text_through_every_window(tuned, long_and_short):
    options = tuned.manifest["encoder"]["options"]
    assert (options["long_text"], options["max_length"]) == ("auto", TINY["max_length"])  # recorded: the training window
    long, short = long_and_short
    enc = tuned.get_encoder()
    assert enc.windowing.strategy == "chunk-mean" and enc.max_length == TINY["max_length"]
    cut = get_encoder(enc.spec, **{**tuned.encoder_options, "long_text": "truncate"})
    near = _near(enc.precision)
    v, v_cut = enc.encode(long + short), cut.encode(long + short)
    assert _cos(v[len(long):], v_cut[len(long):]).min() > near  # texts that fit: the vectors it was trained on
    assert _cos(v[: len(long)], v_cut[: len(long)]).max() < 0.99  # long ones: not the first window only
    for text, vec in zip(long, v):  # each long vector is the word-piece-weighted mean of all its windows
        windows = enc.windowing.pieces(enc._content_ids([text])[0])
        assert len(windows) >= 3 and sum(map(len, windows)) > len(enc._content_ids([text])[0])
        per_window = cut._vectors(windows, enc.precision)
        mean = np.average(per_window, axis=0, weights=[len(w) for w in windows])
        assert _cos(vec[None], mean[None])[0] > near


@pytest.mark.slow
def test_predict_can_override_the_strategy_and_widen_the_window(tuned, cache_dir, long_and_short):
    long, short = long_and_short
    auto = Bundle.load(tuned.path, cache_dir=cache_dir).predict_proba(long)
    cut = Bundle.load(tuned.path, cache_dir=cache_dir, long_text="truncate")
    assert cut.get_encoder().windowing.strategy == "truncate"
    assert not np.allclose(auto, cut.predict_proba(long), atol=1e-3)
    wide = Bundle.load(tuned.path, cache_dir=cache_dir, max_length=128)  # 4x the training window: no longer refused
    assert wide.get_encoder().max_length == 128 and wide.get_encoder().long_text == "auto"
    assert wide.manifest["encoder"]["options"]["max_length"] == TINY["max_length"]  # the bundle is unchanged
    runner = CliRunner()
    base = ["predict", str(tuned.path), long[0], "--cache-dir", str(cache_dir)]
    p_auto, p_cut = (runner.invoke(main, base + extra) for extra in ([], ["--long", "truncate"]))
    assert p_auto.exit_code == 0 and p_cut.exit_code == 0, p_auto.output + p_cut.output
    assert p_auto.output.split("\t")[1] == f"{auto[0, 1]:.3f}" != p_cut.output.split("\t")[1]


@pytest.mark.slow
def test_a_bundle_saved_before_long_text_support_keeps_truncating_with_a_notice(tuned, cache_dir, long_and_short, tmp_path):
    old = tmp_path / "old-bundle"
    shutil.copytree(tuned.path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    # as 0.3.0 wrote it (format 1, unsealed): the tuned encoder recorded with long_text truncate, and
    # that encoder's fingerprint
    for key in ("digest", "signature"):
        manifest.pop(key, None)
    manifest["format_version"] = 1
    options = {**manifest["encoder"]["options"], "long_text": "truncate"}
    manifest["encoder"]["options"] = options
    manifest["encoder"]["fingerprint"] = get_encoder("st:" + str(old / ENCODER_DIR), **options).fingerprint
    (old / "manifest.json").write_text(json.dumps(manifest))
    long, _ = long_and_short
    with pytest.warns(UserWarning, match=r"predates reading long texts whole: it still cuts texts at 32 word pieces; pass --long auto"):
        legacy = Bundle.load(old, cache_dir=cache_dir, allow_legacy=True)
    assert legacy.get_encoder().long_text == "truncate"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        upgraded = Bundle.load(old, cache_dir=cache_dir, long_text="auto", allow_legacy=True)
    assert not [w for w in caught if "predates" in str(w.message)]  # asked for the new behaviour: no notice
    near = _near(upgraded.get_encoder().precision)
    assert _cos(upgraded.embed(long), tuned.embed(long)).min() > near
    assert _cos(legacy.embed(long), upgraded.embed(long)).max() < 0.99


@pytest.mark.slow
def test_killed_command_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tuned, reviews_csv, cache_dir, tmp_path,
                                                                                    caplog):
    out = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "pipeline", "finetune", str(reviews_csv), "--budget", str(BUDGET), *CLI_TINY,
           "--encoder", ENCODER, "--out", str(out), "--cache-dir", str(cache_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    checkpoint = default_checkpoint_dir(out) / "checkpoint.pt"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # right after the first epoch's checkpoint appears
    stderr = proc.communicate()[1]
    assert checkpoint.exists(), stderr
    assert not out.exists()

    # rerun in this process (torch is loaded here already; a third interpreter would only import it again)
    with caplog.at_level(logging.INFO, logger="pipeline.finetune"):
        rerun = CliRunner().invoke(main, cmd[3:])
    assert rerun.exit_code == 0, rerun.output
    assert "resuming from epoch 1" in caplog.text
    assert not checkpoint.parent.exists()  # removed once the bundle is saved
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finetune"]["resumed_from"] == "epoch 1"
    assert [row["epoch"] for row in manifest["finetune"]["history"]] == [1, 2]
    # same data, seed and settings as the uninterrupted in-process run: the same model, within the rounding of the
    # precision it trained at (a CPU with native bf16 trains under bf16 autocast, whose kernels may round a resumed
    # run's sums otherwise: 2.5e-4 relative on a validation loss, seen on an AVX512-BF16 Xeon)
    from pipeline.encoders.device import cpu_has_fast_bf16

    rel, atol = (1e-3, 1e-3) if cpu_has_fast_bf16() else (1e-4, 1e-5)
    resumed = Bundle.load(out, cache_dir=cache_dir, verify_encoder=False)
    for row, ref in zip(manifest["finetune"]["history"], tuned.manifest["finetune"]["history"]):
        assert {k: pytest.approx(v, rel=rel) for k, v in ref.items() if k != "seconds"} == {k: v for k, v in row.items() if k != "seconds"}
    assert np.allclose(resumed.estimator[-1].coef_, tuned.head[-1].coef_, atol=atol)  # the scikit-learn head


@pytest.mark.slow
def test_setfit_method_trains_pairs_then_a_logistic_regression(budget, cache_dir, tmp_path):
    train, test = budget
    recipe = make_recipe("setfit", num_iterations=1, epochs=1, max_length=TINY["max_length"])
    bundle = finetune(train, test=test, out=tmp_path / "setfit", recipe=recipe,
                      runtime=Runtime(cache_dir=cache_dir, progress=False))
    details = bundle.manifest["finetune"]
    assert details["pairs"] == 2 * len(train)  # num_iterations positive + as many negative pairs per text
    assert isinstance(bundle.head[-1], LogisticRegression)
    assert len(details["history"]) == 1 and np.isfinite(details["history"][0]["train_loss"])
    assert bundle.manifest["metrics"]["test"]["n"] == len(test)
    assert Bundle.load(bundle.path, cache_dir=cache_dir).predict(test.texts[:4]).shape == (4,)
    assert bundle.manifest["encoder"]["options"]["long_text"] == "auto"  # long texts read whole, as method head


@pytest.mark.slow
def test_frozen_word_embeddings_stay_as_they_were_while_the_layers_train(budget, cache_dir):
    from pipeline.finetune.body import freeze_word_embeddings, load_body
    from pipeline.finetune.head import train_head

    train = budget[0]
    y = train.labels
    rows = np.r_[np.flatnonzero(y == 0)[:4], np.flatnonzero(y == 1)[:4]]
    body = load_body("minilm", max_length=16, device="cpu", work_dir=cache_dir)
    freeze_word_embeddings(body)
    network = body.transformers_model
    words, top = network.get_input_embeddings().weight.clone(), network.encoder.layer[-1].output.dense.weight.clone()
    train_head(body, [train.texts[i] for i in rows], y[rows], None, recipe=make_recipe("head", epochs=1, batch_size=4),
               seed=0, settings=LoopSettings(epochs=1, device="cpu", precision="fp32", progress=False), store=None)
    assert torch.equal(network.get_input_embeddings().weight, words)
    assert not torch.equal(network.encoder.layer[-1].output.dense.weight, top)


def test_command_refuses_a_static_encoder_and_a_foreign_out_dir(reviews_csv, tmp_path):
    args = ["finetune", str(reviews_csv), "--budget", "32", "--out", str(tmp_path / "b")]
    result = CliRunner().invoke(main, [*args, "--encoder", "glove-6b-50d"])
    assert result.exit_code != 0 and "cannot be fine-tuned" in result.output
    result = CliRunner().invoke(main, [*args, "--encoder", "multilingual"])  # routed: refused by name, no KeyError
    assert result.exit_code != 0 and "cannot be fine-tuned (it joins several encoders" in result.output
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "not a model bundle" in result.output
    result = CliRunner().invoke(main, [*args, "--method", "setfit", "--head-lr", "0.01"])
    assert result.exit_code != 0 and "head_lr" in result.output
    result = CliRunner().invoke(main, [*args[:-2], "--out", str(tmp_path / "c"), "--method", "setfit", "--encoder", ENCODER])
    assert result.exit_code != 0 and "layers is fine-tuned by method head" in result.output


def test_layers_body_pools_as_the_frozen_encoder_and_starts_from_the_prompted_default_head(rt):
    import torch

    from pipeline.encoders.spec import parse_spec
    from pipeline.finetune.body import _pooled_layers, embed, features, load_body
    from pipeline.finetune.head import prompted_probe
    from pipeline.heads.prompts import DEFAULT, direction
    from pipeline.heads.registry import FitOptions, fit_head

    rows = np.random.default_rng(3).choice(len(rt), 24, replace=False)
    texts, y = [rt.texts[i] for i in rows], rt.labels[rows]
    body = load_body("minilm[layers=4-6]", max_length=128, device="cpu")
    X = embed(body, texts, device="cpu", precision="fp32")
    frozen = get_encoder("minilm[layers=4-6]", device="cpu", precision="fp32")  # auto is bf16 on a CPU with native bf16
    np.testing.assert_allclose(X, frozen.encode(texts), atol=1e-5)
    with torch.inference_mode():  # the model's own output pools the last layer only
        last = body(features(body, texts[:4], "cpu"))["sentence_embedding"].numpy()
    assert np.abs(X[:4] - last).max() > 0.05
    probe = prompted_probe(body, X, y, 0, LoopSettings(epochs=1))
    u = direction(frozen.encode(DEFAULT.texts), len(DEFAULT.positive))
    expected = fit_head("logreg", X, y, FitOptions(seed=0, prompt_direction=u)).estimator.predict_proba(X)
    assert isinstance(probe, LogisticRegression)
    np.testing.assert_allclose(probe.predict_proba(X), expected, atol=1e-4)
    with pytest.raises(ValueError, match="go past the model's 6 layers"):
        _pooled_layers(body, parse_spec("minilm[layers=4-7]"))


# ---------------------------------------------------------------------------------------------- the loop, on a small model
class Killed(Exception):
    """Stands in for a kill: raised from inside the training step."""


def _toy(seed: int = 0):
    """A small dropout MLP, its data and a loss function that can 'die' at a given step."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    gen = torch.Generator().manual_seed(1)
    X, y = torch.randn(40, 4, generator=gen), (torch.rand(40, generator=gen) > 0.5).float()
    lengths = np.arange(40) % 7
    state = {"steps": 0, "die_at": None}

    def loss_fn(idx):
        state["steps"] += 1
        if state["steps"] == state["die_at"]:
            raise Killed
        return torch.nn.functional.binary_cross_entropy_with_logits(model(X[idx]).squeeze(-1), y[idx])

    def batches(epoch):
        return length_batches(lengths, 6, seed, epoch)

    groups = [{"params": list(model.parameters()), "lr": 0.05}]
    return model, groups, batches, loss_fn, state


def _train(store, die_at=None, **settings):
    model, groups, batches, loss_fn, state = _toy()
    state["die_at"] = die_at
    result = run_loop(model, groups, batches, loss_fn, LoopSettings(epochs=3, progress=False, **settings), store)
    return model, result


@pytest.mark.parametrize("die_at, checkpoint_seconds, resumed", [(10, 300.0, "epoch 1"), (12, 0.0, "epoch 2, batch 4/7")])
def test_loop_resumes_bit_for_bit_after_a_kill(tmp_path, die_at, checkpoint_seconds, resumed):
    reference, _ = _train(None)
    store = CheckpointStore(tmp_path / "ckpt", "run-a")
    with pytest.raises(Killed):
        _train(store, die_at=die_at, checkpoint_seconds=checkpoint_seconds)  # 7 batches per epoch
    model, result = _train(store, checkpoint_seconds=checkpoint_seconds)
    assert result.resumed_from == resumed
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


def test_loop_stops_early_and_restores_the_best_epoch(tmp_path):
    model, groups, batches, loss_fn, _ = _toy()
    scores, snapshots = iter([0.5, 0.8, 0.6, 0.7]), []

    def validate():
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"loss": 0.5, "accuracy": next(scores)}

    settings = LoopSettings(epochs=6, patience=2, progress=False)
    result = run_loop(model, groups, batches, loss_fn, settings, None, validate)
    assert result.best_epoch == 2 and len(result.history) == 4  # epochs 3 and 4 did not beat epoch 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])


def test_loop_runs_under_bf16_autocast_on_cpu():
    model, groups, batches, loss_fn, _ = _toy()
    result = run_loop(model, groups, batches, loss_fn, LoopSettings(epochs=1, precision="bf16", progress=False))
    assert np.isfinite(result.history[0]["train_loss"])


def test_checkpoint_of_another_run_or_a_damaged_file_is_refused(tmp_path):
    CheckpointStore(tmp_path, "run-a").save({"epoch": 1})
    assert CheckpointStore(tmp_path, "run-a").load()["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left behind
    with pytest.raises(CheckpointError, match="different run"):
        CheckpointStore(tmp_path, "run-b").load()
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        CheckpointStore(tmp_path, "run-a").load()


# ---------------------------------------------------------------------------------------------- pieces
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # any fitted weights will do
@pytest.mark.parametrize("clf", [LogisticRegression(), MLPClassifier((16,), max_iter=50, random_state=0)])
def test_head_export_matches_the_torch_head(clf):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 12)), rng.integers(0, 2, 60)
    head = to_torch(clf.fit(X, y)).eval()
    with torch.no_grad():
        p_torch = torch.sigmoid(head(torch.as_tensor(X, dtype=torch.float32)).squeeze(-1)).numpy()
    exported = to_sklearn(head)
    assert type(exported[-1]) is type(clf)
    assert np.allclose(exported.predict_proba(X)[:, 1], p_torch, atol=1e-5)
    assert np.allclose(exported.predict_proba(X), clf.predict_proba(X), atol=1e-5)


def test_length_batches_cover_every_row_once_and_depend_only_on_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(3, 60, 203)
    first = length_batches(lengths, 16, seed=3, epoch=0)
    assert sorted(np.concatenate(first).tolist()) == list(range(203))
    assert all(np.array_equal(a, b) for a, b in zip(first, length_batches(lengths, 16, seed=3, epoch=0)))
    other = length_batches(lengths, 16, seed=3, epoch=1)
    assert len(other) == len(first) and not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_holdout_is_stratified_disjoint_and_skipped_when_too_small(budget):
    train, _ = budget
    fit_set, val = holdout(train, 0.25, seed=0)
    assert len(val) == 8 and np.bincount(val.labels).tolist() == [4, 4]
    assert sorted(fit_set.texts + val.texts) == sorted(train.texts)
    tiny = train.subset(np.concatenate([np.flatnonzero(train.labels == c)[:2] for c in (0, 1)]))
    kept, none = holdout(tiny, 0.25, seed=0)
    assert kept is tiny and none is None


def test_recipe_defaults_overrides_and_errors():
    assert make_recipe("head").head_type == "linear" and make_recipe("setfit").num_iterations == 20
    assert make_recipe("head", epochs=7, lr=None).epochs == 7
    with pytest.raises(ValueError, match="unknown fine-tuning method"):
        make_recipe("lora")
    with pytest.raises(ValueError, match=r"\['num_iterations'\] do not apply to method 'head'"):
        make_recipe("head", num_iterations=5)
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 0.5"):
        make_recipe("head", val_fraction=0.9)
    with pytest.raises(ValueError, match=r"\['prompt_prior'\] do not apply to method 'setfit'"):
        make_recipe("setfit", prompt_prior=True)


@pytest.mark.slow
def test_tuned_bundle_takes_prior_options_and_the_shift_check(tuned, reviews_csv, cache_dir):
    prior = tuned.manifest["prior"]
    assert prior["train"] == 0.5 and set(prior["confusion"]) == {"tpr", "fpr", "n_pos", "n_neg"}
    assert Bundle.load(tuned.path, cache_dir=cache_dir).shift_sample.shape[0] == BUDGET
    common = [str(tuned.path), str(reviews_csv), "--json", "--cache-dir", str(cache_dir)]
    result = CliRunner().invoke(main, ["evaluate", *common, "--adapt-prior"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["domain_shift"]["n_train"] == BUDGET and 0 <= scores["domain_shift"]["auc"] <= 1
    assert scores["prior"]["decision"]["reason"] == scores["prior"]["line"].removeprefix("class prior: ")
    given = CliRunner().invoke(main, ["evaluate", *common, "--prior", "0.3"])
    assert given.exit_code == 0 and json.loads(given.stdout)["prior"]["target"] == 0.3, given.output
