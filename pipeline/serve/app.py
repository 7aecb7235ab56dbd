"""The HTTP API of ``serve`` (FastAPI): predict, model summary, health probe, metrics, OpenAPI docs.

======================  ===========================================================================
``GET /``               what this server is: the bundle, the endpoints below, whether they need the token
``POST /v1/predict``    ``{"texts": [...], "prior": optional}`` -> ``{"predictions": [{"label", "p_positive"}...]}``
``GET /v1/model``       the bundle's manifest summary (encoder, head, labels, trained on, metrics, signature)
``GET /healthz``        ``{"status": "ok"}`` once the model is loaded (never asks for the token)
``GET /metrics``        Prometheus text format (:mod:`.metrics`)
``GET /docs``           OpenAPI docs (the schema at ``/openapi.json``)
======================  ===========================================================================

Errors are JSON ``{"error": "..."}``: 400 for a body that is not JSON (or a foreign ``Host``), 401
for a missing or wrong token, 413 for a body or a text count over the cap, 415 for a body not sent as
``application/json``, 422 for a body of the wrong shape (``detail`` lists the fields), 503 when the
queue is full (with ``Retry-After``). Only a fault of the server itself gives 500.
"""

from __future__ import annotations

import sys
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline import ReviewTransferError
from pipeline.serve.batcher import BatchStats, MicroBatcher, Overloaded
from pipeline.serve.config import ServeConfig
from pipeline.guards import LOOPBACK_HOSTS, BearerToken, BodyLimit, HostCheck, header, send_json
from pipeline.serve.metrics import Metrics
from pipeline.serve.model import ServedModel

OPEN_PATHS = ("/", "/healthz", "/docs", "/openapi.json", "/docs/oauth2-redirect")
ENDPOINTS = {  # what ``GET /`` lists
    "POST /v1/predict": 'label texts: {"texts": ["..."], "prior": optional} -> a label and p_positive per text',
    "GET /v1/model": "the bundle's manifest summary: encoder, head, labels, what it was trained on, test metrics",
    "GET /healthz": "for probes: ok once the model is loaded",
    "GET /metrics": "Prometheus text format",
    "GET /docs": "OpenAPI docs (the schema at /openapi.json)",
}


class PredictRequest(BaseModel):
    """Texts to label, and optionally their known positive rate."""

    model_config = ConfigDict(extra="forbid")
    texts: list[str | None] = Field(min_length=1, description="The texts to label; the answer keeps their order. "
                                                               "A null is an empty text, as in data files.")
    prior: float | None = Field(None, gt=0, lt=1, description="Known positive rate of these texts: probabilities "
                                                               "are re-weighted from the training rate to it.")


class Prediction(BaseModel):
    label: str = Field(description="The label name; empty for an empty text.")
    p_positive: float | None = Field(description="Probability of the positive class; null for an empty text.")


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model: str
    prior: float | None = None


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Timing:
    """ASGI middleware feeding each answered request's route, status and time to :class:`Metrics`."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(scope["path"], status, time.perf_counter() - start)


class _RefusedPreflight:
    """Without ``--allow-origin``: a browser's CORS preflight gets a 405 that says why, and the terminal running
    ``serve`` is told once per origin how to let that page in (a browser shows the page only "CORS error")."""

    def __init__(self, app: Any):
        self.app = app
        self.told: set[str] = set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        origin = header(scope, b"origin") if scope["type"] == "http" and scope["method"] == "OPTIONS" else None
        if origin is None or header(scope, b"access-control-request-method") is None:
            return await self.app(scope, receive, send)
        if origin not in self.told:
            self.told.add(origin)
            print(f"refused a web page at {origin} (a browser's CORS preflight): restart with --allow-origin {origin} "
                  "to let pages from there call the service", file=sys.stderr, flush=True)
        await send_json(send, 405, {"error": f"this server answers web pages only from the origins named with "
                                             f"--allow-origin, and {origin} is not one; restart it with "
                                             f"--allow-origin {origin}."})


def create_app(model: ServedModel, config: ServeConfig) -> FastAPI:
    """The service of ``model`` under ``config``'s limits and token."""
    limits = config.limits
    metrics = Metrics()

    def count(stats: BatchStats) -> None:
        metrics.queued.set(batcher.waiting)
        metrics.texts.inc(stats.texts)
        metrics.batch_texts.observe(stats.texts)
        metrics.batch_seconds.observe(stats.seconds)

    batcher = MicroBatcher(model.probabilities, max_batch=limits.max_batch, max_wait=limits.max_wait_ms / 1000,
                           capacity=limits.queue_texts, on_batch=count)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        batcher.start()
        yield
        await batcher.stop()  # uvicorn has already waited for in-flight requests
        metrics.worker_exit()

    app = FastAPI(title="review-transfer serve", version="1",
                  description=f"Sentiment labels from the bundle {model.name}.", lifespan=lifespan)
    # outermost last: timing sees every answer, the host check and body cap come before the token
    if config.token:
        app.add_middleware(BearerToken, token=config.token, open_paths=OPEN_PATHS)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body)
    app.add_middleware(HostCheck, hosts=LOOPBACK_HOSTS if config.host in LOOPBACK_HOSTS else None)
    if config.origins:  # outside the token: a preflight carries none
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization"])
    else:
        app.add_middleware(_RefusedPreflight)
    app.add_middleware(_Timing, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (kind == "application/json" or kind.endswith("+json")):
            return _error(415, f"Content-Type is {kind or 'missing'}; send the body as JSON with "
                               "Content-Type: application/json.")
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "the body is not valid JSON: send {\"texts\": [\"...\"]} with "
                               "Content-Type: application/json.")
        fields = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
                           for e in errors)
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return _error(422, f"the body does not fit the API ({fields}); expected {{\"texts\": [\"...\"], "
                           "\"prior\": optional number in (0, 1)}.", detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> Any:
        """Label each text: its label name and probability of the positive class, in the order given."""
        if len(body.texts) > limits.max_texts:
            return _error(413, f"{len(body.texts)} texts in one request; this server takes at most "
                               f"{limits.max_texts}: split them over several requests.")
        if body.prior is not None and model.prior_model is None:
            return _error(422, f"{model.name} records no training prior, so 'prior' cannot re-weight it; "
                               "leave 'prior' out or refit the bundle.")
        texts = ["" if t is None else t for t in body.texts]  # a missing text is an empty one, as in files
        bad = next((i for i, t in enumerate(texts) if not _utf8(t)), None)
        if bad is not None:
            return _error(422, f"texts[{bad}] holds a lone UTF-16 surrogate (e.g. \\ud800), which is not text; "
                               "send valid Unicode.")
        kept = [t for t in texts if t.strip()]
        try:
            p = await batcher.submit(kept) if kept else []
        except Overloaded as e:
            metrics.overloaded.inc()
            return _error(503, f"busy: {e}; retry shortly.", headers={"Retry-After": "1"})
        finally:
            metrics.queued.set(batcher.waiting)
        try:
            rows = model.rows(texts, p, body.prior)
        except ReviewTransferError as e:
            return _error(422, str(e))
        # the rows are built to the response's schema: sent as they are, not validated again field by field
        return JSONResponse({"predictions": rows, "model": model.name, "prior": body.prior})

    @app.get("/v1/model")
    async def describe() -> dict[str, Any]:
        """The bundle's manifest summary: encoder, head, label names, what it was trained on, its test
        metrics, its format and how its seal was checked, and this server's limits."""
        return {**model.summary(), "limits": vars(limits), "workers": config.workers}

    @app.get("/", include_in_schema=False)
    async def index() -> dict[str, Any]:
        """Where a browser or a first ``curl`` lands: the bundle served and the endpoints, rather than a 404."""
        token = ("every endpoint but /, /healthz and /docs needs the header 'Authorization: Bearer <token>'"
                 if config.token else "none needed")
        return {"service": "review-transfer serve", "model": model.name, "endpoints": ENDPOINTS, "token": token}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """For probes: the model is loaded and the server answers."""
        return {"status": "ok", "queued_texts": batcher.waiting}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app


def app_from_env() -> FastAPI:
    """The app of one worker process: the config its ``serve`` parent left in the environment, and the
    bundle loaded (and verified) again in this process."""
    config = ServeConfig.from_env()
    return create_app(ServedModel.load(config.bundle), config)
