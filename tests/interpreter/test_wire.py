"""The bytes on the wire, checked with plain httpx: NDJSON lines, field names and order, status codes."""

from __future__ import annotations

import json

import httpx

from .conftest import TOKEN, Interpreter

AUTH = {"X-Access-Token": TOKEN}


def execute(interpreter: Interpreter, code: str, **fields) -> list[dict]:
    body = {"code": code, "context_id": None, "language": None, "env_vars": None, **fields}
    with httpx.stream("POST", f"{interpreter.url}/execute", json=body, headers=AUTH, timeout=30) as response:
        assert response.status_code == 200
        raw = response.read().decode()
    assert raw.endswith("\n")
    lines = raw[:-1].split("\n")
    assert all(line.strip() for line in lines), "a blank line breaks the SDK"
    return [json.loads(line) for line in lines]


def test_an_execution_is_a_stream_of_json_lines(interpreter: Interpreter):
    lines = execute(interpreter, "print('hi')\n1 + 1")
    assert [line["type"] for line in lines] == [
        "number_of_executions",
        "stdout",
        "result",
        "end_of_execution",
    ]
    count, stdout, result, end = lines
    assert isinstance(count["execution_count"], int)
    assert list(stdout) == ["type", "text", "timestamp"] and stdout["text"] == "hi\n"
    assert isinstance(stdout["timestamp"], str)
    assert result == {"type": "result", "text": "2", "extra": {}, "is_main_result": True}
    assert end == {"type": "end_of_execution"}


def test_an_error_line(interpreter: Interpreter):
    lines = execute(interpreter, "raise ValueError('bad')")
    [error] = [line for line in lines if line["type"] == "error"]
    assert list(error) == ["type", "name", "value", "traceback"]
    assert (error["name"], error["value"]) == ("ValueError", "bad")
    assert lines[-1] == {"type": "end_of_execution"}


def test_health(interpreter: Interpreter):
    response = httpx.get(f"{interpreter.url}/health")
    assert response.status_code == 200 and response.json() == "OK"


def test_contexts_over_the_wire(interpreter: Interpreter):
    created = httpx.post(f"{interpreter.url}/contexts", json={}, timeout=60)
    assert created.status_code == 200
    context = created.json()
    assert set(context) == {"id", "language", "cwd"}
    assert context["language"] == "python" and context["cwd"] == interpreter.cwd
    assert context in httpx.get(f"{interpreter.url}/contexts").json()
    lines = execute(interpreter, "'in context'", context_id=context["id"])
    assert lines[-2]["text"] == "in context"
    assert httpx.post(f"{interpreter.url}/contexts/{context['id']}/restart", timeout=60).is_success
    assert httpx.delete(f"{interpreter.url}/contexts/{context['id']}").is_success
    missing = httpx.delete(f"{interpreter.url}/contexts/{context['id']}")
    assert missing.status_code == 404 and context["id"] in missing.text


def test_bad_requests(interpreter: Interpreter):
    url = f"{interpreter.url}/execute"
    assert httpx.post(url, content=b"not json", headers=AUTH).status_code == 400
    assert httpx.post(url, json={"code": 1}, headers=AUTH).status_code == 400
    assert httpx.post(url, json={"code": "1", "env_vars": {"A": 1}}, headers=AUTH).status_code == 400
    assert httpx.post(url, json={"code": "1", "context_id": "nope"}, headers=AUTH).status_code == 404
