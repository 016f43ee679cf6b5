"""The ids Hutch makes up for sandboxes and templates: 20 characters of ``[a-z0-9]``, as E2B's, so that they
sit safely inside host names (``{port}-{id}.{domain}``)."""

from __future__ import annotations

import secrets

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
LENGTH = 20


def new_id() -> str:
    """A fresh random id."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(LENGTH))
