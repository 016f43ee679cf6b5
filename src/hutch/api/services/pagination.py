"""Pages of a listing and their opaque ``nextToken``: the last row's start time and id, base64url."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from ...catalog.repos.sandboxes import Cursor
from ...errors import InvalidRequest

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None


def encode(cursor: Cursor) -> str:
    text = f"{cursor.started_at.isoformat()}|{cursor.sandbox_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(token: str) -> Cursor:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        started_at, sandbox_id = text.split("|", 1)
        cursor = Cursor(datetime.fromisoformat(started_at), sandbox_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest(f"invalid nextToken {token!r}") from error
    if cursor.started_at.tzinfo is None:
        raise InvalidRequest(f"invalid nextToken {token!r}")
    return cursor
