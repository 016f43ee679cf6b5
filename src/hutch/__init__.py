"""Hutch: self-hosted sandboxes for AI agents, wire-compatible with E2B.

``hutch.Sandbox`` and ``hutch.AsyncSandbox`` (from ``hutch.sdk``) are imported on first use, so that
``import hutch`` stays light for the CLI and the servers, which never need the E2B SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sdk import AsyncSandbox, Sandbox

__all__ = ["AsyncSandbox", "Sandbox"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("hutch.sdk"), name)
    raise AttributeError(f"module 'hutch' has no attribute {name!r}")
