"""A fake central for attack tests: a small real HTTP server on a free loopback port, in a thread.

It answers every request with what the test's `answer(request, forward)` returns, and keeps every
request it got, so a test can play an impostor or a broken central against the real edge code over
real HTTP. With `forward_to`, `forward()` passes the request on to a real central and returns its
reply, so a test can also act at the exact moment the real central has answered, before the edge
hears it (a disk that fills up just then), or alter a real answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Responder = Callable[[Request, Callable[[], Answer]], Answer]


@dataclass
class FakeCentral:
    url: str
    requests: list[Request] = field(default_factory=list)

    def posted_events(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/events")]


@contextmanager
def fake_central(answer: Responder, *, forward_to: str | None = None) -> Iterator[FakeCentral]:
    """Serve `answer` on 127.0.0.1 (a free port); `forward()` reaches `forward_to` (404 without it)."""
    fake = FakeCentral(url="")
    upstream = httpx.Client(base_url=forward_to, timeout=30) if forward_to else None

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = Request(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            fake.requests.append(request)

            def forward() -> Answer:
                if upstream is None:
                    return Answer(404, {"error": "not_found", "detail": "fake central"})
                passed = {k: v for k, v in request.headers.items() if k in ("authorization", "content-type")}
                real = upstream.request(request.method, request.path, content=request.body, headers=passed)
                return Answer(real.status_code, real.content, real.headers.get("content-type", ""))

            reply = answer(request, forward)
            payload = reply.payload()
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        if upstream is not None:
            upstream.close()
