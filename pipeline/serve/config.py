"""What ``serve`` was asked for: one value object, checked once, that travels to worker processes as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline import OptionError

CONFIG_ENV = "REVIEW_TRANSFER_SERVE_CONFIG"  # the JSON of a ServeConfig, for worker processes
TOKEN_ENV = "REVIEW_TRANSFER_SERVE_TOKEN"  # bearer token, when not given as --token-file


@dataclass(frozen=True)
class BundleOptions:
    """How to load the bundle: the same options (and so the same trust rules) as ``predict``."""

    path: str
    cache_dir: str | None = None
    long_text: str | None = None
    max_length: int | None = None
    encoder_path: str | None = None
    trust_encoder: bool = False
    allow_legacy: bool = False


@dataclass(frozen=True)
class Limits:
    """What one request may ask and how requests are batched.

    ``max_texts`` per request and ``max_body`` bytes per body (larger: 4xx); up to ``max_batch`` texts of
    concurrent requests go to the encoder together, waiting at most ``max_wait_ms`` for company; at most
    ``queue_texts`` texts wait for the encoder, beyond which requests get 503 at once.
    """

    max_texts: int = 256
    max_body: int = 1 << 20
    max_batch: int = 256
    max_wait_ms: float = 2.0
    queue_texts: int = 2048

    def check(self) -> Limits:
        """``self``, or OptionError naming the option that cannot work."""
        for name in ("max_texts", "max_body", "max_batch", "queue_texts"):
            if getattr(self, name) < 1:
                raise OptionError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}.")
        if self.max_wait_ms < 0:
            raise OptionError(f"--max-wait-ms must be 0 or more, got {self.max_wait_ms}.")
        if self.queue_texts < self.max_texts:
            raise OptionError(f"--queue-texts ({self.queue_texts}) must be at least --max-texts ({self.max_texts}): "
                              "otherwise a full-size request could never be queued.")
        return self


@dataclass(frozen=True)
class ServeConfig:
    """Everything a worker needs to serve: the bundle, the limits, the optional token, and where to listen."""

    bundle: BundleOptions
    limits: Limits = field(default_factory=Limits)
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    grace_s: float = 30.0  # how long a SIGTERM waits for in-flight requests
    origins: tuple[str, ...] = ()  # web page origins allowed to call the service from a browser (CORS)

    def check(self) -> ServeConfig:
        """``self``, or OptionError for an ``--allow-origin`` that no browser sends (a path, ``*``, no scheme)."""
        for origin in self.origins:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                raise OptionError(f"--allow-origin {origin!r}: give the page's origin as a browser sends it, scheme "
                                  "and host (and port) without a path, e.g. http://localhost:3000; repeat the option "
                                  "for several (any origin, '*', is not offered).")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        raw: dict[str, Any] = json.loads(text)
        return cls(**{**raw, "bundle": BundleOptions(**raw["bundle"]), "limits": Limits(**raw["limits"]),
                      "origins": tuple(raw.get("origins", ()))})

    @classmethod
    def from_env(cls) -> ServeConfig:
        """The config a ``serve`` parent left in ``$REVIEW_TRANSFER_SERVE_CONFIG`` for its workers."""
        text = os.environ.get(CONFIG_ENV)
        if not text:
            raise OptionError(f"${CONFIG_ENV} is not set: start the service with `review-transfer serve BUNDLE`.")
        return cls.from_json(text)


def read_token(token_file: str | None) -> str | None:
    """The bearer token from ``token_file`` (first line) or ``$REVIEW_TRANSFER_SERVE_TOKEN``, or None."""
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            token = f.readline().strip()
        if not token:
            raise OptionError(f"--token-file {token_file}: the first line is empty; write the token there.")
        return token
    return os.environ.get(TOKEN_ENV) or None
