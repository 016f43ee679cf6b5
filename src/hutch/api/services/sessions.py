"""Dashboard sessions: what a person's browser holds after logging in with an API key.

A session is a cookie the server signs (an HMAC under the server key), so nothing is stored: it names the
key it was opened with (by the key's hash, never the key), its team, its CSRF token and when it expires,
and, once the operator key was given too, that key's hash (the operator's routes then take the session).
Every request that uses it is checked against the catalog like an API key, so revoking the key ends its
sessions at once. A request authenticated by the cookie must also carry the CSRF token in a header, which
a page of another origin cannot send to the API (the API answers no CORS preflight).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from .server_keys import ServerKeys

# Over HTTPS the cookie's name has the ``__Host-`` prefix: the browser then takes it only from the API's own
# host (Secure, Path=/, no Domain), so a sandbox's page on a sibling host cannot plant a session of its own.
COOKIE = "__Host-hutch_session"
PLAIN_COOKIE = "hutch_session"
CSRF_HEADER = "X-Hutch-CSRF"
LIFETIME_S = 12 * 3600
# A cookie longer than this is not one of ours; it is refused before it is decoded.
MAX_COOKIE = 1024


@dataclass(frozen=True)
class Session:
    key_hash: str
    team_id: str
    csrf: str
    expires: int
    # Set once the operator key was given too: its hash, so that a new operator key ends the privilege.
    operator: str | None = None


def issue(
    keys: ServerKeys,
    *,
    key_hash: str,
    team_id: str,
    operator: str | None = None,
    lifetime_s: int = LIFETIME_S,
) -> tuple[str, Session]:
    """A new session for the key stored as ``key_hash`` (and the operator key hashed as ``operator``), and
    its cookie's value."""
    session = Session(
        key_hash=key_hash,
        team_id=team_id,
        csrf=secrets.token_urlsafe(24),
        expires=int(time.time()) + lifetime_s,
        operator=operator,
    )
    payload = _b64(json.dumps(asdict(session), separators=(",", ":")).encode())
    return f"{payload}.{_b64(keys.session_mac(payload.encode()))}", session


def read(keys: ServerKeys, cookie: str) -> Session | None:
    """The session ``cookie`` holds, if this server signed it and it has not expired."""
    if len(cookie) > MAX_COOKIE or cookie.count(".") != 1:
        return None
    payload, mac = cookie.split(".")
    try:
        if not hmac.compare_digest(_unb64(mac), keys.session_mac(payload.encode())):
            return None
        fields = json.loads(_unb64(payload))
        session = Session(**fields)
    except (binascii.Error, ValueError, TypeError):
        return None
    if session.expires <= time.time():
        return None
    return session


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
