"""The OpenAPI document: FastAPI's, without the 422 answers it adds to every route (invalid requests are
400 here, with E2B's error body, as ``errors`` declares), and with each body named by its model's title
where that differs from the class's name (E2B's ``Sandbox`` is ``CreatedSandbox`` in the code)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_REF_PREFIX = "#/components/schemas/"


def install(app: FastAPI) -> None:
    """Serve the corrected document at ``/openapi.json``."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = schema.get("components", {}).get("schemas", {})
            for name in _FASTAPI_VALIDATION_SCHEMAS:
                schemas.pop(name, None)
            app.openapi_schema = _named_by_title(schema)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _named_by_title(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every component whose title is not its key (and names no other component) renamed
    to its title, and the references to it with it."""
    components = schema.get("components", {}).get("schemas", {})
    renamed = {
        key: body["title"]
        for key, body in components.items()
        if body.get("title", key) != key and body["title"] not in components
    }
    if not renamed:
        return schema
    named = {renamed.get(key, key): body for key, body in components.items()}
    schema["components"]["schemas"] = {key: named[key] for key in sorted(named)}  # as FastAPI orders them
    return _with_refs(schema, {_REF_PREFIX + old: _REF_PREFIX + new for old, new in renamed.items()})


def _with_refs(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            key: refs.get(item, item) if key == "$ref" else _with_refs(item, refs)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_refs(item, refs) for item in value]
    return value
