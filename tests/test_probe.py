"""``backend=auto``'s choice: the fastest backend whose probe keeps the median cosine, from measured probes."""

from __future__ import annotations

import pytest

from pipeline.encoders.probe import MIN_MEDIAN_COSINE, Probe, ProbeError, choose


def _probe(speed: float, median: float) -> Probe:
    return Probe(texts=256, sample="0" * 16, min=median - 0.02, median=median, texts_per_s=speed,
                 reference_texts_per_s=200.0)


def test_auto_picks_the_fastest_backend_that_passes_the_guard():
    measured = [("onnx", "int8", "onnx/int8", _probe(760, 0.985)),  # fastest, but its median is below 0.99
                ("openvino", "int8", "openvino/int8", _probe(700, 0.9994)),
                ("onnx", "none", "onnx/none", _probe(380, 1.0)),
                ("torch", "none", "torch/none (bf16)", _probe(450, 1.0))]
    backend, quantize, lines = choose("minilm", measured)
    assert (backend, quantize) == ("openvino", "int8")
    assert "refused: median < 0.99" in lines[0] and "refused" not in lines[1]
    assert lines[-1].startswith("backend auto picked openvino/int8: the fastest (700 texts/s on 256 of your texts)")
    # a lower bar lets the int8 export through; a higher one leaves only the exact backends
    assert choose("minilm", measured, min_median=0.98)[:2] == ("onnx", "int8")
    assert choose("minilm", measured, min_median=0.9999)[:2] == ("torch", "none")


def test_where_torch_bf16_is_fastest_auto_keeps_torch():
    """A CPU with AMX/AVX512-BF16: torch at its auto precision (bf16) can outrun the exports."""
    measured = [("onnx", "none", "onnx/none", _probe(380, 1.0)), ("torch", "none", "torch/none (bf16)", _probe(790, 1.0))]
    assert choose("minilm", measured)[:2] == ("torch", "none")


def test_ties_go_to_the_first_measured_and_no_pass_is_an_error():
    measured = [("onnx", "none", "onnx/none", _probe(400, 1.0)), ("torch", "none", "torch/none (fp32)", _probe(400, 1.0))]
    assert choose("minilm", measured)[:2] == ("onnx", "none")
    with pytest.raises(ProbeError, match=f"no backend kept median cosine >= {MIN_MEDIAN_COSINE}") as e:
        choose("minilm", [("onnx", "int8", "onnx/int8", _probe(760, 0.9))])
    assert "onnx/int8: 760 texts/s" in str(e.value)


def test_the_probe_sample_is_capped_by_words_and_keeps_16_texts():
    from pipeline.encoders.probe import PROBE_SIZE, PROBE_WORDS, sample_texts

    short = [f"a short review number {i} of a film" for i in range(1_000)]  # 8 words each
    picked = sample_texts(short)
    assert len(picked) == PROBE_WORDS // 8 and picked == sorted(picked)  # 2,000 words
    assert len(sample_texts(short, words=10**9)) == PROBE_SIZE
    long = [f"review {i} " + "word " * 98 for i in range(1_000)]  # 100 words each
    capped = sample_texts(long)
    assert len(capped) == PROBE_WORDS // 100 and set(capped) < set(sample_texts(long, words=10**9))
    assert len(sample_texts(["word " * 5_000 + str(i) for i in range(40)])) == 16  # never under 16 texts
    assert sample_texts(long) == capped  # seeded


def test_texts_without_spaces_are_capped_by_their_characters():
    """A Chinese review has one or two space-separated 'words'; its characters weigh half a word each."""
    from pipeline.encoders.probe import PROBE_WORDS, sample_texts, words_of

    chinese = [f"第{i}条评论" + "书是挺好看的可惜书里有几页是白纸" * 25 for i in range(1_000)]  # 400 Han each
    assert words_of(chinese[0]) == 1 + 404 / 2  # one space-separated word, 404 Han characters (and a digit)
    assert len(sample_texts(chinese, words=8_000)) == int(8_000 // words_of(chinese[0]))  # 39 texts, not 256
    assert len(sample_texts(chinese)) == 16 > PROBE_WORDS // words_of(chinese[0])  # never under 16 texts
    assert words_of("a short review, 好 and ภาษา") == 6 + 1 / 2 + 4 / 2  # spaced words count as before


def test_the_probe_reads_a_few_long_texts_and_still_refuses_an_export_that_drifts_on_them():
    """2,000 words of 100-word reviews are 20 texts: an export whose vectors drift from the reference on them is
    refused on those 20 as on all, and a recorded probe of the same sample is reused (no reference run)."""
    from types import SimpleNamespace

    import numpy as np

    from pipeline.encoders.probe import guard, sample_texts, text_digest

    texts = [f"review {i} " + "word " * 98 for i in range(1_000)]  # 100 words each
    rng = np.random.default_rng(0)
    truth = {t: rng.normal(size=8) for t in texts}
    drift = {t: truth[t] + 0.16 * rng.normal(size=8) for t in texts}  # median cosine about 0.985
    reference = SimpleNamespace(encode=lambda some: np.stack([truth[t] for t in some]))
    seen = []
    export = SimpleNamespace(spec="mpnet", backend="openvino", quantize="int8-static", reference=lambda: reference,
                             encode=lambda some: np.stack([drift[t] for t in some]), record_probe=seen.append,
                             probe_of=lambda digest: None)
    with pytest.raises(ProbeError, match="on 20 of your texts is below 0.99"):
        guard(export, texts)
    assert seen[0]["texts"] == 20 and seen[0]["median"] < 0.99
    small = sample_texts(texts)
    known = {"texts": len(small), "sample": text_digest(small), "min": 0.999, "median": 0.9999, "texts_per_s": 1.0,
             "reference_texts_per_s": 1.0}
    recorded = SimpleNamespace(record_probe=seen.append, probe_of=lambda digest: known if digest == known["sample"] else None)
    assert guard(recorded, texts).texts == 20 and len(seen) == 1  # the recorded probe of that sample


def test_candidates_of_one_model_share_the_reference_vectors():
    import numpy as np

    from pipeline.encoders.probe import probe

    class Fake:
        def __init__(self, noise: float) -> None:
            self.noise, self.calls = noise, 0

        def encode(self, texts):
            self.calls += 1
            rng = np.random.default_rng(len(texts))
            return np.ones((len(texts), 4)) + self.noise * rng.normal(size=(len(texts), 4))

    reference, memo = Fake(0.0), {}
    texts = ["a", "b", "c"]
    first = probe(Fake(0.01), texts, reference, memo=memo)
    second = probe(Fake(0.5), texts, reference, memo=memo)
    assert reference.calls == 1 and first.median > second.median
    assert first.reference_texts_per_s == second.reference_texts_per_s


def test_a_probe_says_what_it_checks_before_it_runs(caplog):
    """On a fresh cache the probe runs for a minute on long texts: one line first, so the process looks alive."""
    import logging
    from types import SimpleNamespace

    import numpy as np

    from pipeline.encoders.probe import guard

    same = SimpleNamespace(encode=lambda texts: np.ones((len(texts), 4)))
    encoder = SimpleNamespace(spec="minilm", backend="openvino", quantize="int8", encode=same.encode,
                              reference=lambda: same, record_probe=lambda record: None, probe_of=lambda digest: None)
    with caplog.at_level(logging.WARNING, logger="pipeline.encoders.probe"):
        assert guard(encoder, ["a good film", "a dull one"]).median == 1.0
    assert "minilm: checking openvino int8 against torch fp32 on 2 of your texts" in caplog.text
