"""The ids Hutch makes up for sandboxes and templates: 20 characters of ``[a-z0-9]``, as E2B's, so that they
sit safely inside host names (``{port}-{id}.{domain}``)."""

from __future__ import annotations

import secrets

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
LENGTH = 20


def is_id(text: str) -> bool:
    """Whether ``text`` has the shape of an id Hutch makes."""
    return len(text) == LENGTH and all(c in _ALPHABET for c in text)


def new_id() -> str:
    """A fresh random id."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(LENGTH))
