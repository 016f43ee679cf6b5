"""The control plane: E2B's REST API (spec §1) over the catalog and a runtime, built by ``create_app``."""

from .app import create_app

__all__ = ["create_app"]
