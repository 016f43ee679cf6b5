"""Access to envd: the ``X-Access-Token`` set by ``/init``, and signed ``/files`` URLs.

Signature (E2B's v1): ``"v1_" + base64_nopad(sha256(path:operation:username:token[:expiration]))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from .errors import HttpError

UNAUTHORIZED = "unauthorized access, please provide a valid access token or method signing if supported"


def token_ok(state, header: str | None) -> bool:
    """True when no token is configured, or the header carries it."""
    if state.access_token is None:
        return True
    return header is not None and hmac.compare_digest(header.encode(), state.access_token.encode())


def signature(path: str, operation: str, username: str, token: str, expiration: int | None) -> str:
    raw = f"{path}:{operation}:{username}:{token}"
    if expiration is not None:
        raw += f":{expiration}"
    digest = hashlib.sha256(raw.encode("utf-8")).digest()
    return "v1_" + base64.b64encode(digest).decode("ascii").rstrip("=")


def check_files_access(state, headers: dict, query: dict, operation: str) -> None:
    """``/files``: a valid access token, or a valid unexpired signature for this path and operation."""
    if state.access_token is None:
        return
    header = headers.get("x-access-token")
    if header is not None:
        if token_ok(state, header):
            return
        raise HttpError(401, UNAUTHORIZED)
    given = query.get("signature")
    if not given:
        raise HttpError(401, "missing signature: provide an access token or a signed URL")
    expiration: int | None = None
    raw_expiration = query.get("signature_expiration")
    if raw_expiration:
        try:
            expiration = int(raw_expiration)
        except ValueError:
            raise HttpError(400, "signature_expiration must be an integer") from None
    expected = signature(
        query.get("path", ""), operation, query.get("username", ""), state.access_token, expiration
    )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HttpError(401, "invalid signature")
    if expiration is not None and expiration < int(time.time()):
        raise HttpError(401, "signature is already expired")
