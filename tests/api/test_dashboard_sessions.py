"""The dashboard's sessions against the real API: logging in with a key sets a signed, HttpOnly,
SameSite=Strict cookie; the cookie alone opens nothing without its CSRF token; forged, altered, expired and
oversized cookies, a revoked key and hostile login bodies are refused; the page forbids framing and loads
code only from its own origin; usage per day counts a team's own sandboxes; the operator key given to a
session opens the operator's routes to it alone."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest
from e2b import Sandbox

from hutch.api.services import sessions
from hutch.catalog import create_api_key
from hutch.secret_files import operator_key
from tests.api.conftest import Caller, Stack

COOKIE = sessions.PLAIN_COOKIE  # plain HTTP here: no TLS edge in front of this API


@contextmanager
def _login(stack: Stack, key: str) -> Iterator[tuple[httpx.Client, dict]]:
    """A client holding the session cookie of ``key``, and the session."""
    with httpx.Client(base_url=stack.api_url) as client:
        response = client.post("/dashboard/login", json={"apiKey": key})
        assert response.status_code == 200, response.text
        yield client, response.json()


def _csrf(session: dict) -> dict[str, str]:
    return {session["csrfHeader"]: session["csrf"]}


def test_logging_in_sets_a_strict_http_only_cookie_and_returns_the_csrf_token(caller: Caller):
    with _login(caller.stack, caller.api_key) as (client, session):
        response = client.post("/dashboard/login", json={"apiKey": caller.api_key})
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE}=")
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/", f"Max-Age={sessions.LIFETIME_S}"):
            assert attribute.lower() in set_cookie.lower()
        assert "domain=" not in set_cookie.lower()  # never sent to the sandboxes' hosts
        assert caller.api_key not in set_cookie and caller.api_key not in response.text
        assert session["csrfHeader"] == "X-Hutch-CSRF" and len(session["csrf"]) >= 32
        assert session["teamName"] and session["domain"]
        assert client.get("/dashboard/session").json()["teamID"] == session["teamID"]


def test_through_the_edge_the_cookie_is_host_only_and_secure(caller: Caller):
    with httpx.Client(base_url=caller.stack.api_url, headers={"X-Hutch-Edge": "1"}) as client:
        response = client.post("/dashboard/login", json={"apiKey": caller.api_key})
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{sessions.COOKIE}=") and "secure" in set_cookie.lower()


def test_the_session_opens_the_api_with_its_csrf_token(caller: Caller):
    created = Sandbox.create(**caller.opts)
    with _login(caller.stack, caller.api_key) as (client, session):
        listed = client.get("/v2/sandboxes", headers=_csrf(session))
        assert listed.status_code == 200 and [item["sandboxID"] for item in listed.json()] == [
            created.sandbox_id
        ]
        overview = client.get("/dashboard/api/sandboxes", headers=_csrf(session)).json()
        [item] = overview["sandboxes"]
        assert item["sandboxID"] == created.sandbox_id and item["nodeID"] and item["engine"]
        killed = client.delete(f"/sandboxes/{created.sandbox_id}", headers=_csrf(session))
        assert killed.status_code == 204


def test_the_cookie_without_its_csrf_token_opens_nothing(caller: Caller):
    created = Sandbox.create(**caller.opts)
    with _login(caller.stack, caller.api_key) as (client, session):
        for headers in ({}, {session["csrfHeader"]: "wrong"}, {session["csrfHeader"]: ""}):
            assert client.get("/v2/sandboxes", headers=headers).status_code == 401
            response = client.delete(f"/sandboxes/{created.sandbox_id}", headers=headers)
            assert response.status_code == 401 and response.json()["code"] == 401
            # A form post, as another site's page would send it, is refused before its body is read.
            posted = client.post("/api-keys", data={"name": "x"}, headers=headers)
            assert posted.status_code == 401
    assert Sandbox.get_info(created.sandbox_id, **caller.opts).sandbox_id == created.sandbox_id
    Sandbox.kill(created.sandbox_id, **caller.opts)


def test_a_forged_altered_or_expired_cookie_is_refused(caller: Caller):
    with _login(caller.stack, caller.api_key) as (client, session):
        genuine = client.cookies[COOKIE]
    payload, mac = genuine.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other = caller.stack.new_key()
    with _login(caller.stack, other) as (_, theirs):
        pass
    forged = {**fields, "team_id": theirs["teamID"]}
    expired = {**fields, "expires": 1}
    encode = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")  # noqa: E731
    hostile = [
        f"{encode(forged)}.{mac}",
        f"{encode(expired)}.{mac}",
        f"{payload}.{mac[:-2]}AA",
        f"{payload}",
        f"{payload}.{mac}.{mac}",
        "x" * 8_000,  # over the bound, under the server's header limit
        "%%%.%%%",
        f"{encode([1, 2])}.{mac}",
    ]
    with httpx.Client(base_url=caller.stack.api_url) as fresh:
        for cookie in hostile:
            fresh.cookies.set(COOKIE, cookie)
            response = fresh.get("/v2/sandboxes", headers=_csrf(session))
            assert response.status_code == 401, (cookie[:40], response.text)
            assert fresh.get("/dashboard/session").status_code == 401


def test_revoking_the_key_ends_its_sessions_at_once(caller: Caller):
    spare = httpx.post(
        f"{caller.stack.api_url}/api-keys", json={"name": "spare"}, headers={"X-API-Key": caller.api_key}
    )
    with _login(caller.stack, spare.json()["key"]) as (client, session):
        assert client.get("/v2/sandboxes", headers=_csrf(session)).status_code == 200
        with caller.http() as owner:
            assert owner.delete(f"/api-keys/{spare.json()['id']}").status_code == 204
        assert client.get("/v2/sandboxes", headers=_csrf(session)).status_code == 401
        assert client.get("/dashboard/session").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"apiKey": "e2b_" + "0" * 40},
        {"apiKey": ""},
        {"apiKey": "x" * 10_000},
        {"apiKey": 42},
        {"apiKey": None},
        {},
        {"apiKey": "e2b_" + "0" * 40, "teamID": "someone"},
        ["not", "an", "object"],
    ],
)
def test_a_bad_login_sets_no_cookie(stack: Stack, body: object):
    response = httpx.post(f"{stack.api_url}/dashboard/login", json=body)
    assert response.status_code in (400, 401, 422) and "set-cookie" not in response.headers
    assert isinstance(response.json()["code"], int) and response.json()["message"]


def test_logging_out_clears_the_cookie(caller: Caller):
    with _login(caller.stack, caller.api_key) as (client, _):
        assert client.post("/dashboard/logout").status_code == 204
        assert COOKIE not in client.cookies
        assert client.get("/dashboard/session").status_code == 401


def test_the_page_forbids_framing_and_foreign_code(stack: Stack):
    response = httpx.get(f"{stack.api_url}/dashboard")
    assert response.status_code == 200 and '<div id="app">' in response.text
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self' https://*." in policy
    assert response.headers["x-frame-options"] == "DENY"
    script = httpx.get(f"{stack.api_url}/dashboard/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    for escape in (
        "%2e%2e/routes.py",
        "..%2froutes.py",
        "%2e%2e%2f%2e%2e%2fapp.py",
        "vendor/%2e%2e/%2e%2e/routes.py",
    ):
        outside = httpx.get(f"{stack.api_url}/dashboard/static/{escape}")
        assert outside.status_code == 404 and "import" not in outside.text, escape


def test_the_api_answers_no_cross_origin_preflight(caller: Caller):
    response = httpx.options(
        f"{caller.stack.api_url}/v2/sandboxes",
        headers={
            "Origin": "https://8000-abc.hutch.localhost",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-hutch-csrf",
        },
    )
    assert "access-control-allow-origin" not in response.headers


def test_usage_counts_the_teams_own_sandboxes_per_day(caller: Caller):
    first, second = Sandbox.create(**caller.opts), Sandbox.create(**caller.opts)
    first.kill()
    second.kill()
    with _login(caller.stack, caller.api_key) as (client, session):
        [today] = client.get("/dashboard/api/usage", params={"days": 1}, headers=_csrf(session)).json()[
            "days"
        ]
        assert today["peakRunning"] == 2 and 0 < today["sandboxHours"] < 0.1
        assert today["date"] == datetime.now(UTC).date().isoformat()
        month = client.get("/dashboard/api/usage", headers=_csrf(session)).json()["days"]
        assert len(month) == 30 and month[-1] == today and all(day["peakRunning"] == 0 for day in month[:-1])
        for days in (0, -1, 91, "many"):
            refused = client.get("/dashboard/api/usage", params={"days": days}, headers=_csrf(session))
            assert refused.status_code == 400 and refused.json()["code"] == 400
    with _login(caller.stack, caller.stack.new_key()) as (client, session):
        [other] = client.get("/dashboard/api/usage", params={"days": 1}, headers=_csrf(session)).json()[
            "days"
        ]
        assert other["peakRunning"] == 0 and other["sandboxHours"] == 0


def test_the_operator_key_given_to_a_session_opens_the_operators_routes(caller: Caller):
    settings = caller.stack.app.state.settings
    key = operator_key(settings.data_dir, settings.api.operator_key_file)
    with _login(caller.stack, caller.api_key) as (client, session):
        assert session["operator"] is False and session["cluster"] is False
        assert client.get("/nodes", headers=_csrf(session)).status_code == 401
        for wrong in ("x" * 40, caller.api_key, ""):
            refused = client.post("/dashboard/operator", json={"operatorKey": wrong}, headers=_csrf(session))
            assert refused.status_code in (400, 401) and "set-cookie" not in refused.headers
        without_csrf = client.post("/dashboard/operator", json={"operatorKey": key})
        assert without_csrf.status_code == 401
        given = client.post("/dashboard/operator", json={"operatorKey": key}, headers=_csrf(session))
        assert given.status_code == 200 and given.json()["operator"] is True
        elevated = given.json()
        assert elevated["csrf"] != session["csrf"] and key not in given.headers["set-cookie"]
        assert client.get("/nodes", headers=_csrf(elevated)).json() == []
        assert client.get("/nodes").status_code == 401  # the cookie without its token
        assert client.get("/nodes", headers=_csrf(session)).status_code == 401  # the old token
        assert client.get("/v2/sandboxes", headers=_csrf(elevated)).status_code == 200
        spare = client.post("/api-keys", json={"name": "spare"}, headers=_csrf(elevated)).json()
    with _login(caller.stack, spare["key"]) as (client, session):
        given = client.post("/dashboard/operator", json={"operatorKey": key}, headers=_csrf(session)).json()
        assert client.get("/nodes", headers=_csrf(given)).status_code == 200
        with caller.http() as owner:
            assert owner.delete(f"/api-keys/{spare['id']}").status_code == 204
        assert client.get("/nodes", headers=_csrf(given)).status_code == 401  # its key is revoked
    with _login(caller.stack, caller.stack.new_key()) as (other, theirs):
        assert other.get("/nodes", headers=_csrf(theirs)).status_code == 401


def test_the_page_carries_the_session_escaped_and_only_with_one(stack: Stack):
    hostile = 'team "><script>alert(1)</script>'
    key = stack.run(create_api_key(stack.app.state.catalog, team_name=hostile))
    logged_out = httpx.get(f"{stack.api_url}/dashboard")
    assert '<meta name="hutch-session" content="">' in logged_out.text
    assert logged_out.headers["cache-control"] == "no-store"
    with _login(stack, key) as (client, session):
        shown = client.get("/dashboard")
    assert "<script>alert" not in shown.text and "&lt;script&gt;alert(1)" in shown.text
    meta = re.search(r'<meta name="hutch-session" content="([^"]*)">', shown.text)
    assert meta is not None and json.loads(html.unescape(meta.group(1))) == session


@pytest.mark.parametrize(
    "query",
    [{"state": "bogus"}, {"state": "running,exploded"}, {"metadata": "no-equals-sign"}, {"state": "x" * 100}],
)
def test_a_bad_list_filter_is_a_clear_error(caller: Caller, query: dict[str, str]):
    with _login(caller.stack, caller.api_key) as (client, session):
        response = client.get("/dashboard/api/sandboxes", params=query, headers=_csrf(session))
    assert response.status_code == 400 and response.json()["code"] == 400 and response.json()["message"]
