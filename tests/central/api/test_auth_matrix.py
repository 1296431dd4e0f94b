"""Who may call what: every OpenAPI operation against every kind of caller, over a real central.

The table below names, per operation, the roles admitted (admin always is) and a minimal valid
request. The test ids come from the app's own OpenAPI, so a new route without a row fails here,
and a row whose route is gone fails too. For each operation and caller:

* no token, an unknown token or a non-Bearer Authorization → 401 with `WWW-Authenticate: Bearer`;
* a known token of a role not admitted → 403 (never 401: the caller is known, just not allowed);
* an edge token of park P2 on a park-scoped route of park P1 (/api/v1/parks/{park_id}/…) → 403;
* an admitted token → neither 401 nor 403 (nor 422: the request in the table is valid).

Public routes (/healthz, the feed key, the API docs) answer anyone, whatever the header says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from central.api.app import create_app
from central.auth import Role
from central.ceb.documents import DocKind
from central.ceb.xml_out import message_xml, receipts_xml
from central.config import CentralSettings
from firmware_sim import release_notes as notes
from testkit import factories
from testkit.central_server import RunningCentral, run_central

XML = {"content-type": "application/xml"}
BASE = {"copCode": factories.EBC_CODE, "copName": "shop", "dxpMode": "DXP", "dxpId": "DXPENT0000000001"}
PARK, OTHER_PARK = "P1", "P2"  # the seeded edge token "edge" belongs to P1, "edge_p2" to P2
SEQ = 8001  # factory parcel used by the document routes

ADMIN, ENTERPRISE, OFFICER, EDGE = Role.ADMIN, Role.ENTERPRISE, Role.OFFICER, Role.EDGE
TOKEN_ROLES: dict[str, Role] = {  # seeded token name -> role (testkit/central_server.py)
    "admin": ADMIN,
    "enterprise": ENTERPRISE,
    "officer": OFFICER,
    "edge": EDGE,
    "edge_p2": EDGE,
}
UNAUTHENTICATED: dict[str, dict[str, str]] = {  # caller -> headers; each must get 401
    "no-token": {},
    "unknown-token": {"Authorization": "Bearer bg_this-token-was-never-issued"},
    "bearer-without-token": {"Authorization": "Bearer"},
    "basic-scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
}


@dataclass(frozen=True)
class Route:
    """Roles admitted besides admin (None: public, no token needed) and a minimal valid request."""

    roles: frozenset[Role] | None
    path: str  # the template filled in: park routes name PARK
    request: Callable[[], dict[str, Any]] = field(default=dict)  # httpx keyword arguments


def roles(*admitted: Role) -> frozenset[Role]:
    return frozenset(admitted)


def json_order() -> dict[str, Any]:
    return {"json": factories.order(SEQ).model_dump(mode="json")}


def xml_order() -> dict[str, Any]:
    return {"content": message_xml(DocKind.ORDER, [factories.order(SEQ + 1)], BASE), "headers": XML}


def xml_customs_receipt() -> dict[str, Any]:
    receipt = factories.receipt(DocKind.INVENTORY, SEQ, returnStatus="800")
    return {"content": receipts_xml(DocKind.INVENTORY, [receipt]), "headers": XML}


def park_body() -> dict[str, Any]:
    ems, area = [factories.DEFAULT_EMS_NO], [factories.DEFAULT_AREA_CODE]
    return {"json": {"park_id": PARK, "name": "Park One", "ems_nos": ems, "area_codes": area}}


TABLE: dict[tuple[str, str], Route] = {
    # documents
    ("POST", "/api/v1/documents"): Route(roles(ENTERPRISE), "/api/v1/documents", json_order),
    ("POST", "/api/v1/ceb/messages"): Route(roles(ENTERPRISE), "/api/v1/ceb/messages", xml_order),
    ("GET", "/api/v1/documents/{guid}/receipts"): Route(
        roles(ENTERPRISE, OFFICER), f"/api/v1/documents/{factories.guid(DocKind.ORDER, SEQ)}/receipts"
    ),
    # clearances
    ("GET", "/api/v1/clearances"): Route(
        roles(OFFICER),
        "/api/v1/clearances",
        lambda: {"params": {"logisticsNo": factories.logistics_no(SEQ)}},
    ),
    ("POST", "/api/v1/clearances/{invtNo}/actions"): Route(
        roles(OFFICER),
        f"/api/v1/clearances/{factories.invt_no(SEQ)}/actions",
        lambda: {"json": {"action": "inspection_release"}},
    ),
    # release notes and vehicles (an unknown note: 404, still admitted)
    ("POST", "/api/v1/release-notes"): Route(
        roles(ENTERPRISE),
        "/api/v1/release-notes",
        lambda: {"json": notes.note("M-1", [], goods_kg="0", note_type="6", bind_type=None)},
    ),
    ("POST", "/api/v1/sas/messages"): Route(
        roles(ENTERPRISE),
        "/api/v1/sas/messages",
        lambda: {
            "content": notes.sas121_xml(notes.note("M-2", [], goods_kg="0", note_type="6", bind_type=None)),
            "headers": XML,
        },
    ),
    ("GET", "/api/v1/release-notes"): Route(roles(ENTERPRISE, OFFICER), "/api/v1/release-notes"),
    ("GET", "/api/v1/release-notes/{etpsPreentNo}"): Route(
        roles(ENTERPRISE, OFFICER), "/api/v1/release-notes/M-0"
    ),
    ("GET", "/api/v1/release-notes/{etpsPreentNo}/receipts"): Route(
        roles(ENTERPRISE, OFFICER), "/api/v1/release-notes/M-0/receipts"
    ),
    ("POST", "/api/v1/release-notes/{etpsPreentNo}/delete"): Route(
        roles(ENTERPRISE), "/api/v1/release-notes/M-0/delete"
    ),
    ("POST", "/api/v1/release-notes/{etpsPreentNo}/void"): Route(
        roles(OFFICER), "/api/v1/release-notes/M-0/void", lambda: {"json": {"info": "matrix"}}
    ),
    ("POST", "/api/v1/customs/release-note-receipts"): Route(
        roles(OFFICER),
        "/api/v1/customs/release-note-receipts",
        lambda: {"content": notes.receipt_xml("SAS221", "M-0", passport_no=None), "headers": XML},
    ),
    ("PUT", "/api/v1/vehicles/{vehicleNo}"): Route(
        roles(ENTERPRISE, OFFICER),
        "/api/v1/vehicles/琼A00001",
        lambda: {"json": {"vehicleWt": "8000", "ownerCode": notes.DECLARANT}},
    ),
    ("GET", "/api/v1/vehicles"): Route(roles(ENTERPRISE, OFFICER), "/api/v1/vehicles"),
    ("GET", "/api/v1/vehicles/{vehicleNo}"): Route(roles(ENTERPRISE, OFFICER), "/api/v1/vehicles/琼A00001"),
    # parks
    ("GET", "/api/v1/parks"): Route(roles(OFFICER), "/api/v1/parks"),
    ("PUT", "/api/v1/parks/{park_id}"): Route(roles(), f"/api/v1/parks/{PARK}", park_body),
    ("GET", "/api/v1/parks/{park_id}"): Route(roles(EDGE, OFFICER), f"/api/v1/parks/{PARK}"),
    ("GET", "/api/v1/parks/{park_id}/feed"): Route(roles(EDGE, OFFICER), f"/api/v1/parks/{PARK}/feed"),
    ("POST", "/api/v1/parks/{park_id}/events"): Route(
        roles(EDGE), f"/api/v1/parks/{PARK}/events", lambda: {"json": {"edge_id": "edge-p1", "events": []}}
    ),
    ("GET", "/api/v1/parks/{park_id}/report"): Route(roles(OFFICER), f"/api/v1/parks/{PARK}/report"),
    ("GET", "/api/v1/parks/{park_id}/gate-report"): Route(
        roles(OFFICER), f"/api/v1/parks/{PARK}/gate-report"
    ),
    ("GET", "/api/v1/parks/{park_id}/edges"): Route(roles(OFFICER), f"/api/v1/parks/{PARK}/edges"),
    # one edge: its chains, their events, re-provisioning (an unknown edge: 404, still admitted)
    ("GET", "/api/v1/parks/{park_id}/edges/{edge_id}"): Route(
        roles(EDGE, OFFICER), f"/api/v1/parks/{PARK}/edges/edge-p1"
    ),
    ("GET", "/api/v1/parks/{park_id}/edges/{edge_id}/events"): Route(
        roles(EDGE, OFFICER), f"/api/v1/parks/{PARK}/edges/edge-p1/events"
    ),
    ("POST", "/api/v1/parks/{park_id}/edges/{edge_id}/reprovision"): Route(
        roles(OFFICER),
        f"/api/v1/parks/{PARK}/edges/edge-p1/reprovision",
        lambda: {"json": {"reason": "database restored"}},
    ),
    # administration
    ("GET", "/api/v1/tokens"): Route(roles(), "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"): Route(
        roles(), "/api/v1/tokens", lambda: {"json": {"role": "officer", "name": "matrix"}}
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): Route(roles(), "/api/v1/tokens/no-such-token"),
    ("POST", "/api/v1/customs/receipts"): Route(
        roles(OFFICER), "/api/v1/customs/receipts", xml_customs_receipt
    ),
    # operations
    ("GET", "/metrics"): Route(roles(), "/metrics"),
    ("GET", "/healthz"): Route(None, "/healthz"),
    ("GET", "/.well-known/bondgate/feed-key.pem"): Route(None, "/.well-known/bondgate/feed-key.pem"),
}
# served by FastAPI itself, outside the OpenAPI document, and public too
UNDOCUMENTED_PUBLIC = ("/openapi.json", "/docs", "/redoc")


def app_openapi() -> dict[str, Any]:
    """The app's OpenAPI document. Building the app touches no file; only its lifespan would."""
    app = create_app(CentralSettings(database=Path("unused.db"), signing_key=Path("unused.key"), port=0))
    return app.openapi()


OPENAPI = app_openapi()
OPERATIONS = [(method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item]
IDS = [f"{method} {path}" for method, path in OPERATIONS]


def is_park_scoped(template: str) -> bool:
    return template.startswith("/api/v1/parks/{park_id}")


def route_of(operation: tuple[str, str]) -> Route:
    if operation not in TABLE:
        pytest.fail(f"{operation[0]} {operation[1]} has no row in the auth matrix TABLE: add one")
    return TABLE[operation]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCentral]:
    with run_central(Path(tmp_path_factory.mktemp("auth-matrix"))) as running:
        yield running


def call(central: RunningCentral, method: str, route: Route, headers: dict[str, str]) -> httpx.Response:
    kwargs = route.request()
    kwargs["headers"] = {**kwargs.get("headers", {}), **headers}
    with httpx.Client(base_url=central.url, timeout=30) as client:
        return client.request(method, route.path, **kwargs)


def bearer(central: RunningCentral, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {central.tokens[name]}"}


def assert_401(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers.get("www-authenticate") == "Bearer", answer.headers
    assert answer.json()["error"] == "unauthenticated", answer.json()


def assert_403(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert "www-authenticate" not in answer.headers  # a known caller: no challenge to authenticate again
    assert answer.json()["error"] == "forbidden", answer.json()


def assert_admitted(answer: httpx.Response) -> None:
    assert answer.status_code not in (401, 403), answer.text
    assert answer.status_code != 422, f"the table's request is not valid: {answer.text}"
    assert answer.status_code < 500, answer.text


def test_the_table_covers_exactly_the_documented_operations(live: RunningCentral) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        served = client.get("/openapi.json").json()["paths"]
    live_operations = {(method.upper(), path) for path, item in served.items() for method in item}
    assert live_operations == set(OPERATIONS), "the served OpenAPI differs from the app's"
    missing, stale = live_operations - TABLE.keys(), TABLE.keys() - live_operations
    assert not missing, f"operations without a row in TABLE: {sorted(missing)}"
    assert not stale, f"rows in TABLE for operations that are gone: {sorted(stale)}"


@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
def test_openapi_declares_the_bearer_requirement(operation: tuple[str, str]) -> None:
    method, path = operation
    documented = OPENAPI["paths"][path][method.lower()]
    if route_of(operation).roles is None:
        assert "security" not in documented
    else:
        assert documented.get("security") == [{"HTTPBearer": []}]
        assert {"401", "403"} <= documented["responses"].keys()


@pytest.mark.parametrize("caller", list(UNAUTHENTICATED))
@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
def test_unauthenticated_callers(live: RunningCentral, operation: tuple[str, str], caller: str) -> None:
    route = route_of(operation)
    answer = call(live, operation[0], route, UNAUTHENTICATED[caller])
    if route.roles is None:
        assert answer.status_code == 200, answer.text
    else:
        assert_401(answer)


@pytest.mark.parametrize("token", list(TOKEN_ROLES))
@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
def test_each_role(live: RunningCentral, operation: tuple[str, str], token: str) -> None:
    method, template = operation
    route = route_of(operation)
    role = TOKEN_ROLES[token]
    answer = call(live, method, route, bearer(live, token))
    if route.roles is None:
        assert answer.status_code == 200, answer.text
    elif token == "edge_p2" and is_park_scoped(template):
        assert_403(answer)  # another park's edge: its role may be admitted, its park is not
    elif role == ADMIN or role in route.roles:
        assert_admitted(answer)
    else:
        assert_403(answer)


@pytest.mark.parametrize("path", UNDOCUMENTED_PUBLIC)
@pytest.mark.parametrize("caller", ["no-token", "unknown-token"])
def test_api_docs_are_public(live: RunningCentral, path: str, caller: str) -> None:
    with httpx.Client(base_url=live.url, timeout=30, headers=UNAUTHENTICATED[caller]) as client:
        assert client.get(path).status_code == 200


def test_a_revoked_token_is_unauthenticated(live: RunningCentral) -> None:
    with live.client("admin") as admin:
        made = admin.post("/api/v1/tokens", json={"role": "officer", "name": "to-revoke"})
        assert made.status_code == 201, made.text
        secret, token_id = made.json()["token"], made.json()["token_id"]
        with live.client(secret) as officer:
            assert officer.get("/api/v1/parks").status_code == 200
            assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 204
            assert_401(officer.get("/api/v1/parks"))
            assert_401(officer.get(f"/api/v1/parks/{PARK}/report"))
        assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 404  # already revoked
        [row] = [t for t in admin.get("/api/v1/tokens").json() if t["token_id"] == token_id]
        assert row["revoked_at"] is not None


def test_a_revoked_edge_token_loses_its_own_park(live: RunningCentral) -> None:
    with live.client("admin") as admin:
        made = admin.post(
            "/api/v1/tokens",
            json={"role": "edge", "name": "edge-tmp", "park_id": OTHER_PARK, "edge_id": "edge-tmp"},
        )
        assert made.status_code == 201, made.text
        with live.client(made.json()["token"]) as edge:
            assert edge.get(f"/api/v1/parks/{OTHER_PARK}/feed").status_code == 200
            assert_403(edge.get(f"/api/v1/parks/{PARK}/feed"))
            assert admin.delete(f"/api/v1/tokens/{made.json()['token_id']}").status_code == 204
            assert_401(edge.get(f"/api/v1/parks/{OTHER_PARK}/feed"))
