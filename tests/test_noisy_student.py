"""``finetune --self-train --teacher frozen`` (pipeline.fit.noisy_student): a small real run of the whole path on
MiniLM (12 RT labels, 24 unlabelled texts, one short epoch) and the command's refusals."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.data.unlabelled import Unlabelled
from pipeline.finetune import Runtime, make_recipe
from pipeline.fit.noisy_student import FrozenTeacher, noisy_student
from pipeline.unlabelled.self_train import SelfTrainSettings


def test_frozen_teacher_labels_the_texts_and_the_student_fine_tunes_on_its_surest(rt, tmp_path):
    rng = np.random.default_rng(5)
    pos, neg = np.flatnonzero(rt.labels == 1), np.flatnonzero(rt.labels == 0)
    labelled = np.concatenate([rng.choice(pos, 6, replace=False), rng.choice(neg, 6, replace=False)])
    train = rt.subset(labelled)
    others = [rt.texts[i] for i in rng.choice(np.setdiff1d(np.arange(len(rt)), labelled), 24, replace=False)]
    bundle = noisy_student(
        train, Unlabelled(others, {"pool_rest": 24}), teacher=FrozenTeacher("minilm[backend=torch]", tmp_path / "cache"),
        recipe=make_recipe("head", max_length=16, prompt_prior=True),
        settings=SelfTrainSettings(balance="equal", max_pseudo=8), out=tmp_path / "student",
        runtime=Runtime(cache_dir=tmp_path / "cache", progress=False))
    m = bundle.manifest
    (taken,) = m["self_train"]["rounds_run"]
    assert taken["pseudo_labels"] == 8 and taken["positive"] == 4 and taken["unlabelled"] == 24
    assert m["self_train"]["teacher"]["kind"] == "frozen, self-trained" and m["unlabelled"] == {"pool_rest": 24}
    assert m["train"]["size"] == 20 and m["finetune"]["soft_targets"] is True
    assert m["finetune"]["recipe"]["epochs"] == 1 and m["finetune"]["recipe"]["prompt_prior"] is True
    assert bundle.predict(others[:3]).shape == (3,)


def test_command_asks_for_self_train_with_a_teacher(tmp_path):
    args = ["finetune", "rt", "--budget", "16", "--out", str(tmp_path / "b")]
    for extra in (["--teacher", "frozen"], ["--max-pseudo", "64"]):
        result = CliRunner().invoke(main, [*args, *extra])
        assert result.exit_code != 0 and "add --self-train" in result.output
    result = CliRunner().invoke(main, [*args, "--self-train", "--teacher", "frozen", "--method", "setfit"])
    assert result.exit_code != 0 and "--teacher frozen trains one student" in result.output
