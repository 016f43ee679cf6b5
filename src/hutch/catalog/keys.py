"""API key text: making new keys, and the SHA-256 digest that is all the catalog stores of one."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "e2b_"


def new_key() -> str:
    """A fresh key: ``e2b_`` and 40 hex characters, the shape E2B's keys have."""
    return KEY_PREFIX + secrets.token_hex(20)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def mask_key(key: str) -> str:
    """What may be shown of a key: its first and last four characters after the prefix."""
    body = key.removeprefix(KEY_PREFIX)
    return f"{KEY_PREFIX}{body[:4]}…{body[-4:]}" if len(body) > 8 else f"{KEY_PREFIX}…"
