"""No 5xx for bad input, and every response counted (issue 11 G). Python's JSON parser takes NaN
and Infinity, which JSON has not: echoing one back in a 422 made the response itself fail (500, the
keep-alive connection reset). A cursor past SQLite's 64-bit integers was an OverflowError (500).
Neither 500 showed in /metrics or in the request log. Real central (uvicorn, SQLite file)."""

from __future__ import annotations

import pytest

from testkit import factories

NAN_BODIES = [
    ("enterprise", "/api/v1/documents", b'{"documents": [{"docType": "CEB311", "goodsValue": NaN}]}'),
    ("admin", "/api/v1/tokens", b'{"role": "officer", "name": Infinity}'),
    ("edge", "/api/v1/parks/P1/events", b'{"edge_id": "E1", "events": [{"seq": -Infinity}]}'),
    # a lone surrogate parses too and cannot be written back as UTF-8 (issue 12, outside attack)
    ("admin", "/api/v1/tokens", b'{"role": "nobody \\ud800", "name": "x"}'),
    ("edge", "/api/v1/parks/P1/events", b'{"edge_id": "E1", "events": [{"seq": 1, "kind": "\\udfff"}]}'),
]


@pytest.mark.one_backend  # refused before anything reaches the store
@pytest.mark.parametrize(("who", "path", "body"), NAN_BODIES, ids=[p for _, p, _ in NAN_BODIES])
def test_nan_and_infinity_in_a_json_body_are_a_422_in_valid_json(
    central, who: str, path: str, body: bytes
) -> None:
    with central.client(who) as client:
        answer = client.post(path, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]  # valid JSON: no bare NaN/Infinity in it
        assert detail and all("loc" in d for d in detail)
        # the connection is still good for the next request
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/parks/P1/feed?after=9223372036854775808",
        "/api/v1/parks/P1/edges/E1/events?after=99999999999999999999",
        "/api/v1/parks/P1/edges/E1/events?epoch=9223372036854775808",
    ],
)
@pytest.mark.one_backend  # refused before anything reaches the store
def test_a_cursor_past_64_bits_is_a_422(central, path: str) -> None:
    answer = central.client("officer" if "edges" in path else "edge").get(path)
    assert answer.status_code == 422, answer.text


def test_an_event_number_past_64_bits_is_a_422(central) -> None:
    event = {
        "edge_id": "E1",
        "seq": 2**63,
        "kind": "HEARTBEAT",
        "occurred_at": "2026-01-01T00:00:00Z",
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
    }
    answer = central.client("edge").post("/api/v1/parks/P1/events", json={"edge_id": "E1", "events": [event]})
    assert answer.status_code == 422, answer.text


def _count(metrics: str, route: str, status: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        counted = line.startswith("bondgate_central_http_requests_total{")
        if counted and f'route="{route}"' in line and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_every_response_is_counted_and_logged(central) -> None:
    shop, admin = central.client("enterprise"), central.client("admin")
    before = admin.get("/metrics").text
    shop.post("/api/v1/documents", content=b"{bad", headers={"content-type": "application/json"})
    shop.post("/api/v1/documents", json={"documents": [factories.order(990).model_dump(mode="json")]})
    after = admin.get("/metrics").text
    assert _count(after, "/api/v1/documents", "422") == _count(before, "/api/v1/documents", "422") + 1
    assert _count(after, "/api/v1/documents", "200") == _count(before, "/api/v1/documents", "200") + 1


def test_a_500_is_counted_and_logged_as_an_error(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """A route that fails (a bug, here one planted for the test) is answered 500 outside the request
    middleware; it is still counted under its route and logged at ERROR with its status."""
    import logging

    from fastapi.testclient import TestClient

    from central.api.app import create_app
    from central.config import CentralSettings
    from central.metrics import REGISTRY

    app = create_app(CentralSettings(database=tmp_path / "c.db", signing_key=tmp_path / "k", port=0))  # type: ignore[arg-type]

    @app.get("/planted-bug")
    def planted() -> None:
        raise RuntimeError("planted")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.INFO):
        labels = {"method": "GET", "route": "/planted-bug", "status": "500"}
        before = REGISTRY.get_sample_value("bondgate_central_http_requests_total", labels) or 0
        assert client.get("/planted-bug").status_code == 500
        assert REGISTRY.get_sample_value("bondgate_central_http_requests_total", labels) == before + 1
    logged = [r for r in caplog.records if r.getMessage() == "request" and getattr(r, "status", None) == 500]
    assert logged and logged[0].levelno == logging.ERROR


def test_a_404_says_what_was_not_found_whole(central) -> None:
    """A LookupError's message whole: stripping KeyError's quotes also ate the closing one of ours."""
    body = {"role": "edge", "name": "x", "park_id": "NOPE", "edge_id": "x"}
    answer = central.client("admin").post("/api/v1/tokens", json=body)
    assert answer.status_code == 404 and answer.json()["detail"] == "no park 'NOPE'"
