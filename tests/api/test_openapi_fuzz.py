"""schemathesis against the served OpenAPI document: requests generated from it, with a valid API key,
never make the control plane answer with a 5xx (but 501 for what the fake runtime cannot do), and every
error has E2B's body."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings


def test_no_server_errors(stack, caller):
    schema = schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.headers = {**(case.headers or {}), "X-API-Key": caller.api_key}
            response = case.call(base_url=stack.api_url, timeout=30)
            assert response.status_code < 500 or response.status_code == 501, (
                case.method,
                case.formatted_path,
                response.text,
            )
            if response.status_code >= 400:
                body = response.json()
                assert body["code"] == response.status_code and isinstance(body["message"], str)

        check()
        checked.append(operation.label)
    assert len(checked) >= 8, checked
