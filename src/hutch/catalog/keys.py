"""API key text: making new keys, and the SHA-256 digest that is all the catalog stores of one."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "e2b_"
# How much of a key a listing shows, as E2B's API does: the first two and the last four characters after
# the prefix, and only of keys long enough that this leaves most of the key hidden.
_SHOWN_PREFIX, _SHOWN_SUFFIX, _SHOWN_MIN_LENGTH = 2, 4, 12


@dataclass(frozen=True)
class Masked:
    """What may be shown of a key (E2B's ``IdentifierMaskingDetails``)."""

    prefix: str
    value_length: int
    shown_prefix: str
    shown_suffix: str


def new_key() -> str:
    """A fresh key: ``e2b_`` and 40 hex characters, the shape E2B's keys have."""
    return KEY_PREFIX + secrets.token_hex(20)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mask_key(key: str) -> str:
    """What may be shown of a key: its first and last four characters after the prefix."""
    body = key.removeprefix(KEY_PREFIX)
    return f"{KEY_PREFIX}{body[:4]}…{body[-4:]}" if len(body) > 8 else f"{KEY_PREFIX}…"


def masked(key: str) -> Masked:
    """The parts of ``key`` a listing may show; a short key shows none of its characters."""
    prefix = KEY_PREFIX if key.startswith(KEY_PREFIX) else ""
    body = key.removeprefix(prefix)
    if len(body) < _SHOWN_MIN_LENGTH:
        return Masked(prefix, len(body), "", "")
    return Masked(prefix, len(body), body[:_SHOWN_PREFIX], body[-_SHOWN_SUFFIX:])
