"""Unauthenticated endpoints: ``/health`` and the OpenAPI document."""

from __future__ import annotations

import httpx

from tests.api.conftest import Stack


def test_health(stack: Stack) -> None:
    response = httpx.get(f"{stack.api_url}/health")
    assert response.status_code == 204
    assert response.content == b""


def test_openapi_lists_the_sandbox_routes(stack: Stack) -> None:
    document = httpx.get(f"{stack.api_url}/openapi.json").json()
    paths = document["paths"]
    assert {"/v2/sandboxes", "/sandboxes/{sandbox_id}", "/v2/sandboxes/{sandbox_id}/connect"} <= set(paths)
    assert set(paths["/v2/sandboxes"]["post"]["responses"]) >= {"201", "400", "401", "404", "500"}
    schema = document["components"]["schemas"]["ErrorBody"]
    assert set(schema["required"]) == {"code", "message"}
    # Invalid requests are answered 400, so the document promises no 422.
    assert all("422" not in op["responses"] for ops in paths.values() for op in ops.values())
    assert document["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_openapi_names_the_create_answer_as_e2b_does(stack: Stack) -> None:
    document = httpx.get(f"{stack.api_url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "Sandbox" in schemas and "CreatedSandbox" not in schemas
    assert {"envdAccessToken", "trafficAccessToken", "sandboxID"} <= set(schemas["Sandbox"]["properties"])
    created = document["paths"]["/v2/sandboxes"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/Sandbox"}
    fork = schemas["SandboxForkResult"]["properties"]["sandbox"]
    assert {"$ref": "#/components/schemas/Sandbox"} in fork["anyOf"]
