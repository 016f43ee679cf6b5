"""The control plane: E2B's REST API (spec §1) over the catalog and a runtime, built by ``create_app``."""

from .app import KEEP_ALIVE_S, create_app

__all__ = ["KEEP_ALIVE_S", "create_app"]
