"""The catalog: Hutch's database of teams, API keys, templates and sandboxes.

SQLite by default, PostgreSQL by URL, with the same code. Open it with ``Catalog.open(url)``; run each unit
of work in ``catalog.transaction()`` with the query functions in ``repos``; entry points provision keys and
templates with the functions in ``provisioning``.
"""

from .db import Catalog
from .provisioning import create_api_key, ensure_api_key, register_template

__all__ = ["Catalog", "create_api_key", "ensure_api_key", "register_template"]
