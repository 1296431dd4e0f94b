"""A fake central for attack tests: a small real HTTP server that serves whatever feed pages the test
wants, signed with a test key the edge is configured to trust, and takes the edge's events.

`Feed` keeps a park's feed the way central does (records signed, chained, each checkpoint signed), so
a test can serve it honestly, serve a stale prefix of it, leave a record out while keeping the honest
checkpoint, or serve a second history forked from it. `FakeCentral.serve` is the function from
(after, limit) to the page dict: the test swaps it to change what the edge sees.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernel.wire import (
    GENESIS_HASH,
    FeedCheckpoint,
    feed_chain,
    public_key_pem,
    sign_checkpoint,
)
from testkit import factories

EDGE_TOKEN = "fake-central-edge-token"


@dataclass
class Feed:
    """One park's feed as central keeps it: (seq, record as served) in order."""

    key: Ed25519PrivateKey
    park_id: str = "P1"
    records: list[dict[str, Any]] = field(default_factory=list)
    next_seq: int = 1

    def add(self, **fields: Any) -> dict[str, Any]:
        """Append a record (factories.feed_record's fields, overridden), signed with the key."""
        fields.setdefault("park_id", self.park_id)
        record = factories.feed_record(self.key, seq=self.next_seq, **fields)
        self.next_seq += 1
        served = json.loads(record.model_dump_json())
        self.records.append(served)
        return served

    def fork(self, at: int) -> Feed:
        """A second history sharing the first `at` records and going on from there with seqs of its
        own, as a central restored from an old backup would."""
        shared = list(self.records[:at])
        return Feed(self.key, self.park_id, shared, shared[-1]["seq"] + 1 if shared else 1)

    def stale(self, at: int) -> Callable[[int, int], dict[str, Any]]:
        """Serve a copy of the first `at` records that claims to be up to date with any cursor."""
        copy = Feed(self.key, self.park_id, list(self.records[:at]), self.next_seq)

        def serve(after: int, limit: int) -> dict[str, Any]:
            page = copy.page(min(after, copy.records[-1]["seq"] if copy.records else 0), limit)
            return page | {"next_after": max(after, page["next_after"])}

        return serve

    def checkpoint(self, records: list[dict[str, Any]], cursor: int) -> dict[str, Any]:
        """The signed checkpoint over `records` (a prefix of some history) at `cursor`."""
        signed = sign_checkpoint(
            FeedCheckpoint(
                park_id=self.park_id,
                cursor=cursor,
                count=len(records),
                hash=feed_chain(GENESIS_HASH, records),
            ),
            self.key,
        )
        return json.loads(signed.model_dump_json())

    def page(self, after: int, limit: int, *, omit: int | None = None) -> dict[str, Any]:
        """An honest page — or, with `omit` (a seq), the same page without that record but still
        with the honest checkpoint, as someone withholding a record (a cancellation) would serve it."""
        upto = [r for r in self.records if r["seq"] <= after]
        rest = [r for r in self.records if r["seq"] > after]
        page, more = rest[:limit], len(rest) > limit
        cursor = page[-1]["seq"] if page else (upto[-1]["seq"] if upto else 0)
        covered = upto + page
        served = [r for r in page if r["seq"] != omit]
        return {
            "records": served,
            "next_after": cursor,
            "has_more": more,
            "head": self.records[-1]["seq"] if self.records else 0,
            "checkpoint": self.checkpoint(covered, cursor),
        }


@dataclass
class FakeCentral:
    url: str
    key: Ed25519PrivateKey
    serve: Callable[[int, int], dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    pages: int = 0  # feed pages served
    tokens: dict[str, str] = field(default_factory=lambda: {"edge": EDGE_TOKEN})

    def alarms(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == "alarm"]


def _handler(central: FakeCentral, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            central.requests += 1
            if url.path == "/.well-known/bondgate/feed-key.pem":
                self._send(200, public_key_pem(central.key.public_key()).encode(), "application/x-pem-file")
                return
            if url.path.endswith("/feed"):
                query = parse_qs(url.query)
                after = int(query.get("after", ["0"])[0])
                limit = int(query.get("limit", ["1000"])[0])
                wait = min(float(query.get("wait", ["0"])[0]), 0.5)
                with lock:
                    page = central.serve(after, limit)
                    central.pages += 1
                if not page.get("records") and wait:
                    time.sleep(wait)  # a long poll with nothing new, shortened
                self._send(200, page)
                return
            self._send(404, {"error": "not_found", "detail": url.path})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if urlsplit(self.path).path.endswith("/events"):
                with lock:
                    held = {e["seq"] for e in central.events}
                    central.events += [e for e in body.get("events", []) if e["seq"] not in held]
                    acked = max((e["seq"] for e in central.events), default=0)
                self._send(200, {"acked_seq": acked, "stored": 0, "duplicates": 0, "refused": []})
                return
            self._send(404, {"error": "not_found", "detail": self.path})

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # an agent killed or stopped mid long poll: nothing to report


@contextmanager
def fake_central(
    key: Ed25519PrivateKey, serve: Callable[[int, int], dict[str, Any]]
) -> Iterator[FakeCentral]:
    """A fake central on a free loopback port, in a thread; stopped on the way out."""
    lock = threading.Lock()
    central = FakeCentral(url="", key=key, serve=serve)
    server = _Server(("127.0.0.1", 0), _handler(central, lock))
    server.daemon_threads = True
    central.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield central
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
