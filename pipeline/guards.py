"""Request guards for the project's HTTP servers, as plain ASGI middleware (no FastAPI needed to import).

- :class:`BodyLimit`: refuse a body over ``max_bytes`` with 413, by its ``Content-Length`` before it is read
  and, for a chunked body, as soon as the bytes read pass the cap (the app never sees the rest).
- :class:`HostCheck`: refuse a ``Host`` header outside an allowlist with 400: a server bound to loopback
  then cannot be reached through a DNS-rebinding page (a foreign name resolving to 127.0.0.1).
- :class:`BearerToken`: refuse a request without ``Authorization: Bearer <token>`` with 401, compared in
  constant time; ``open_paths`` (e.g. a health probe) pass without it.

Used by ``serve`` (:mod:`pipeline.serve.app`) and ``label`` (:mod:`pipeline.active.label_app.app`); it imports
nothing of the project, so it lives at the package root where every folder may import it.

Every refusal is a JSON body ``{"error": "..."}`` saying what to change. Any ASGI app (FastAPI,
Starlette) takes them with ``app.add_middleware(BodyLimit, max_bytes=...)``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


async def send_json(send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> None:
    """Send a complete JSON response."""
    data = json.dumps(body).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header ``name`` (lower-case bytes), decoded as latin-1, or None."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


class BodyLimit:
    """413 for a request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _refuse(self, send: Send, size: str) -> Awaitable[None]:
        return send_json(send, 413, {"error": f"request body is {size} bytes; this server takes at most "
                                              f"{self.max_bytes} bytes: send fewer or shorter texts per request."},
                         headers=[("connection", "close")])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                return await send_json(send, 400, {"error": f"Content-Length {length!r} is not a byte count."})
            if int(length) > self.max_bytes:
                return await self._refuse(send, length)
        seen = 0
        started = refused = False

        async def counted_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not started:
                    # answer now; the app reads a disconnect and whatever it sends after is dropped
                    refused = True
                    await self._refuse(send, f"more than {self.max_bytes}")
            return {"type": "http.disconnect"} if refused else message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class HostCheck:
    """400 for a ``Host`` header whose name (port aside) is not in ``hosts``; ``hosts`` None allows any."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str] | None):
        self.app = app
        self.hosts = None if hosts is None else {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.hosts is None:
            return await self.app(scope, receive, send)
        given = (header(scope, b"host") or "").lower()
        name = given[1:given.index("]")] if given.startswith("[") and "]" in given else given.rsplit(":", 1)[0]
        if name not in self.hosts:
            return await send_json(send, 400, {"error": f"Host header {given!r} is not one this server answers to "
                                                        f"({', '.join(sorted(self.hosts))})."})
        await self.app(scope, receive, send)


class BearerToken:
    """401 unless the request carries ``Authorization: Bearer <token>``; paths in ``open_paths`` pass."""

    def __init__(self, app: ASGIApp, token: str, open_paths: Iterable[str] = ()):
        self.app, self.token, self.open_paths = app, token.encode("utf-8"), frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        scheme, _, given = (header(scope, b"authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode("utf-8"), self.token):
            return await send_json(send, 401, {"error": "missing or wrong token: send the header "
                                                        "'Authorization: Bearer <token>' with the server's token."},
                                   headers=[("www-authenticate", "Bearer")])
        await self.app(scope, receive, send)
