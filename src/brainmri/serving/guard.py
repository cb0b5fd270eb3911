"""Request guards for the service: API key and upload size (an ASGI middleware that answers
before the body is read), and the inference gate (bounded concurrency, a bounded queue, a
timeout).

Every refusal is a JSON error ``{"error": {"code": ..., "message": ...}}``.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)
PROTECTED_PREFIX = "/v1/"
MULTIPART_OVERHEAD = 64 * 1024  # boundary and part headers around the uploaded file


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body grows past the limit (an HTTPException so that body
    parsers re-raise it instead of wrapping it in a 400)."""

    def __init__(self, limit_mb: float):
        super().__init__(status_code=413, detail=f"upload is over the {limit_mb:g} MiB limit")


class UploadTooSlow(HTTPException):
    """Raised from ``receive`` when a body has not arrived in full within the upload timeout (a
    client that trickles its upload would otherwise hold a connection and its buffer forever)."""

    def __init__(self, timeout_s: float):
        super().__init__(status_code=408, detail=f"the upload did not arrive within {timeout_s:g} s; send it again (a slow link: ask for a longer --upload-timeout)")


class GuardMiddleware:
    """Pure ASGI middleware: API key on ``/v1/*``, body size and upload time on POST, security
    headers, and a JSON 503 (not a 500 with a traceback) for a request cut off by a forced
    shutdown (a second Ctrl-C).

    Args:
        app: the wrapped ASGI app.
        api_key: required key (``X-API-Key`` or ``Authorization: Bearer``), or ``None``.
        max_upload_mb: largest upload accepted; the body may be ``MULTIPART_OVERHEAD`` larger.
        upload_timeout_s: the whole body must arrive within this many seconds of the first read.
    """

    def __init__(self, app: Callable, api_key: str | None, max_upload_mb: float, upload_timeout_s: float = 60.0):
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_upload_mb = float(max_upload_mb)
        self.max_body_bytes = int(max_upload_mb * 1024**2) + MULTIPART_OVERHEAD
        self.upload_timeout_s = float(upload_timeout_s)

    async def _reply(self, send: Callable, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        body = error_body(code, message)
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]})
        await send({"type": "http.response.body", "body": body})

    def _key_ok(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if not given and auth.lower().startswith(b"bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given, self.api_key or b"")

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        path = scope.get("path", "")
        if self.api_key and path.startswith(PROTECTED_PREFIX) and not self._key_ok(headers):
            return await self._reply(send, 401, "unauthorized", "missing or wrong API key: send it in the X-API-Key header", [(b"www-authenticate", b"Bearer")])
        if scope.get("method") == "POST":
            try:
                length = int(headers.get(b"content-length", b"-1"))
            except ValueError:
                return await self._reply(send, 400, "bad_request", "invalid Content-Length header")
            if length > self.max_body_bytes:
                return await self._reply(send, 413, "payload_too_large", f"upload is {length / 1024**2:.1f} MiB, over the {self.max_upload_mb:g} MiB limit")
            receive = self._counting(receive)

        started = False

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if path == "/" or path.startswith("/static/"):
                    extra.append((b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except BodyTooLarge as exc:
            await self._reply(send, 413, "payload_too_large", str(exc.detail))
        except UploadTooSlow as exc:
            await self._reply(send, 408, "upload_timeout", str(exc.detail), [(b"connection", b"close")])
        except asyncio.CancelledError:
            # The server is being stopped at once (a second Ctrl-C): answer what can still be
            # answered, log one line, and let the shutdown go on without a traceback per request.
            log.warning("%s %s cut off: the server was stopped", scope.get("method"), path)
            if not started:
                try:
                    await self._reply(send, 503, "shutting_down", "the server was stopped while this request ran; retry when it is back",
                                      [(b"retry-after", b"5"), (b"connection", b"close")])
                except Exception:  # noqa: BLE001 - the connection may already be gone
                    pass

    def _counting(self, receive: Callable) -> Callable:
        seen = 0
        deadline: float | None = None

        async def wrapped() -> dict[str, Any]:
            nonlocal seen, deadline
            if deadline is None:
                deadline = time.monotonic() + self.upload_timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise UploadTooSlow(self.upload_timeout_s) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self.max_upload_mb)
            return message

        return wrapped


class InferenceGate:
    """Run blocking work in a thread pool with at most ``concurrency`` running, at most
    ``queue`` waiting (more: 503), each answered within ``timeout_s`` (else 504).

    A timed-out job that already started keeps its slot until it really ends, so the pool is
    never oversubscribed; one still waiting is cancelled.
    """

    def __init__(self, concurrency: int, queue: int, timeout_s: float):
        self.concurrency = max(1, int(concurrency))
        self.capacity = self.concurrency + max(0, int(queue))
        self.timeout_s = float(timeout_s)
        self.pending = 0  # running + waiting
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="brainmri-infer")

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self.pending >= self.capacity:
                raise ApiError(503, "busy", f"server is busy ({self.pending} requests in progress); retry shortly", {"Retry-After": "1"})
            self.pending += 1
        cfut = self.executor.submit(fn, *args)
        cfut.add_done_callback(self._release)  # runs when the work really ends (or is cancelled)
        afut = asyncio.wrap_future(cfut)
        afut.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "exception never retrieved"
        try:
            return await asyncio.wait_for(asyncio.shield(afut), self.timeout_s)
        except asyncio.TimeoutError:
            if cfut.cancel():  # it never started: it waited behind others the whole time
                raise ApiError(503, "busy", f"waited {self.timeout_s:g} s for a free worker (the server is busy); retry shortly",
                               {"Retry-After": "1"}) from None
            raise ApiError(504, "timeout", f"prediction took longer than {self.timeout_s:g} s") from None

    def _release(self, _: Any = None) -> None:
        with self._lock:
            self.pending -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
