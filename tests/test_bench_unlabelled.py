"""bench_unlabelled's METHOD@ENCODER rows: named apart, paired with the right baseline and teacher."""

import re

from benchmarks.bench_unlabelled import split_name, summarise, with_encoder


def _rows(method: str, accuracies: list[float]) -> list[dict]:
    return [{"method": method, "budget": "128", "seed": s, "accuracy": a, "seconds": 1.0}
            for s, a in enumerate(accuracies)]


def test_encoder_tags_round_trip():
    assert split_name("distil[soft=False]@mpnet") == ("distil[soft=False]", "mpnet")
    assert split_name("ft-head") == ("ft-head", "minilm")
    assert with_encoder("ft-head", "minilm") == "ft-head"
    assert split_name(with_encoder("frozen", "mpnet+minilm")) == ("frozen", "mpnet+minilm")


def test_students_pair_with_their_own_encoders_teacher_and_the_chosen_baseline():
    rows = (_rows("ft-head", [0.70, 0.72, 0.74]) + _rows("setfit", [0.75, 0.75, 0.75])
            + _rows("ft-head@mpnet", [0.80, 0.80, 0.80]) + _rows("distil@mpnet", [0.81, 0.81, 0.81]))
    table = [re.split(r"\s{2,}", line.strip()) for line in summarise(rows, ["128"], "setfit").splitlines()[2:]]
    cols = {cells[1]: cells for cells in table}  # labels, method, accuracy, seeds, seconds, paired, vs teacher
    assert list(cols) == ["ft-head", "setfit", "ft-head@mpnet", "distil@mpnet"]  # MiniLM first
    assert cols["setfit"][5] == "-" and cols["ft-head"][5] == "-3.0 [-8.0, +2.0] vs setfit (3 seeds)"
    assert cols["ft-head@mpnet"][5] == "+5.0 [+5.0, +5.0] vs setfit (3 seeds)"
    assert cols["distil@mpnet"][6] == "+1.0 [+1.0, +1.0] vs ft-head@mpnet (3 seeds)"  # mpnet's teacher, not MiniLM's
