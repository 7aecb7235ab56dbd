"""The app of ``label`` (FastAPI + uvicorn, plain HTML/JS in ``static/``, no build step).

:func:`create_app` serves one :class:`~pipeline.active.label_app.session.LabelSession`. Every request must
carry the session's random token (``?token=`` or the ``X-Token`` header); others get 403. The page
shows one text at a time, chosen by the strategy, with Positive / Negative / Skip and Undo (buttons
and keys), the counts per class and the cross-validated accuracy with its interval as a learning curve.
"""

from __future__ import annotations

import gc
import secrets
import socket
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from pipeline.guards import LOOPBACK_HOSTS, BodyLimit, HostCheck
from pipeline.signal_stack import repair_signal_stack

STATIC = Path(__file__).parent / "static"
HEADERS = {
    "Cache-Control": "no-store",
    # only this page's own script runs: a review that holds markup can never execute
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


MAX_BODY = 64 << 10  # an answer is a few dozen bytes; nothing this page sends comes near
MAX_CLIENT = 64  # the page makes tab ids of 36 characters (a UUID)


class Client(BaseModel):
    """A request from one tab (its random id)."""

    client: str = Field(max_length=MAX_CLIENT)


class Answer(Client):
    """An answer for the text shown in that tab: negative, positive or skip."""

    row: int
    choice: str


def create_app(session: Any, token: str, hosts: tuple[str, ...] | None = LOOPBACK_HOSTS) -> FastAPI:
    """The FastAPI app serving ``session`` to requests that carry ``token``, whose body is at most
    :data:`MAX_BODY` bytes and whose ``Host`` header names one of ``hosts`` (None: any), so a page on
    another site cannot reach it through DNS rebinding (the guards are :mod:`pipeline.guards`)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        given = request.query_params.get("token") or request.headers.get("x-token") or ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse("403 forbidden: open the URL with ?token=... that `review-transfer label` printed.",
                                     status_code=403)
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    def static(name: str, media_type: str) -> Response:
        return Response((STATIC / name).read_text(encoding="utf-8").replace("{{TOKEN}}", token), media_type=media_type)

    @app.get("/")
    def index() -> Response:
        return static("index.html", "text/html; charset=utf-8")

    @app.get("/app.js")
    def script() -> Response:
        return static("app.js", "text/javascript; charset=utf-8")

    @app.get("/style.css")
    def style() -> Response:
        return static("style.css", "text/css; charset=utf-8")

    @app.get("/api/state")
    def state(client: str = Query(max_length=MAX_CLIENT)) -> JSONResponse:
        return JSONResponse(session.view(client))

    @app.post("/api/answer")
    def answer(body: Answer) -> JSONResponse:
        try:
            return JSONResponse(session.answer(body.client, body.row, body.choice))
        except ValueError as e:
            raise HTTPException(400, str(e)) from None

    @app.post("/api/undo")
    def undo(body: Client) -> JSONResponse:
        return JSONResponse(session.undo(body.client))

    # added last, so they run first: a refused request never reaches the token check or the session
    app.add_middleware(HostCheck, hosts=hosts)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY)
    return app


def allowed_hosts(host: str) -> tuple[str, ...] | None:
    """The ``Host`` names a server bound to ``host`` answers to: the loopback names for a loopback
    address, the address itself otherwise, and any for a wildcard bind (0.0.0.0, ::), which ``label``
    warns about."""
    if host in ("0.0.0.0", "::", ""):
        return None
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return tuple(dict.fromkeys((host, *LOOPBACK_HOSTS)))
    return (host,)


def serve(session: Any, host: str = "127.0.0.1", port: int = 0, echo: Any = print) -> None:
    """Serve ``session`` on ``host:port`` (0: a free port) until interrupted; ``echo`` gets the URL with the token."""
    import uvicorn

    token = secrets.token_urlsafe(24)
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP (else ~40 ms per answer)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections made as soon as the URL is printed wait in the backlog until uvicorn serves
    shown = f"[{host}]" if ":" in host else host
    echo(f"labelling page: http://{shown}:{sock.getsockname()[1]}/?token={token}")
    server = uvicorn.Server(uvicorn.Config(create_app(session, token, allowed_hosts(host)), log_level="warning"))
    # the probe of backend auto may have left this thread's signal stack freed: SIGTERM would then segfault. What it
    # left in reference cycles is freed first, so no export freed later puts back a freed stack while serving
    gc.collect()
    repair_signal_stack()
    server.run(sockets=[sock])
