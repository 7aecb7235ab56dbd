"""The app of ``label`` (FastAPI + uvicorn, plain HTML/JS in ``static/``, no build step).

:func:`create_app` serves one :class:`~pipeline.active.label_app.session.LabelSession`. Every request must
carry the session's random token (``?token=`` or the ``X-Token`` header); others get 403. The page
shows one text at a time, chosen by the strategy, with Positive / Negative / Skip and Undo (buttons
and keys), the counts per class and the cross-validated accuracy with its interval as a learning curve.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

STATIC = Path(__file__).parent / "static"
HEADERS = {
    "Cache-Control": "no-store",
    # only this page's own script runs: a review that holds markup can never execute
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Client(BaseModel):
    """A request from one tab (its random id)."""

    client: str


class Answer(Client):
    """An answer for the text shown in that tab: negative, positive or skip."""

    row: int
    choice: str


def create_app(session: Any, token: str) -> FastAPI:
    """The FastAPI app serving ``session`` to requests that carry ``token``."""
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
    def state(client: str) -> JSONResponse:
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

    return app


def serve(session: Any, host: str = "127.0.0.1", port: int = 0, echo: Any = print) -> None:
    """Serve ``session`` on ``host:port`` (0: a free port) until interrupted; ``echo`` gets the URL with the token."""
    import uvicorn

    token = secrets.token_urlsafe(24)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections made as soon as the URL is printed wait in the backlog until uvicorn serves
    shown = f"[{host}]" if ":" in host else host
    echo(f"labelling page: http://{shown}:{sock.getsockname()[1]}/?token={token}")
    server = uvicorn.Server(uvicorn.Config(create_app(session, token), log_level="warning"))
    server.run(sockets=[sock])
