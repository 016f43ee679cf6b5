"""Secrets through the official SDK: made, read, updated (a new version), listed in pages and deleted; by id
or by name; names lower-cased and checked; metadata within E2B's bounds; another team's unknown; and the
value never in an answer, an error or a log line, nor stored in clear."""

from __future__ import annotations

import logging
import uuid

import pytest
from e2b import Secret
from e2b.exceptions import SecretException, SecretNotFoundException
from sqlalchemy import select

from hutch.catalog.models import Secret as SecretRow
from tests.api.conftest import Caller, Stack


def _value() -> str:
    return f"VALUE-{uuid.uuid4().hex}"


def test_a_secret_is_made_read_updated_and_deleted_by_id_or_name(caller: Caller) -> None:
    made = Secret.create("OpenAI-Key", _value(), metadata={"owner": "ops"}, **caller.opts)
    assert made.secret_id.startswith("sec_") and made.name == "openai-key" and made.version == 1
    assert made.metadata == {"owner": "ops"}
    assert Secret.get_info("OPENAI-KEY", **caller.opts).secret_id == made.secret_id
    assert Secret.get_info(made.secret_id, **caller.opts).name == "openai-key"
    updated = Secret.update("openai-key", _value(), **caller.opts)
    assert updated.version == 2 and updated.metadata == {"owner": "ops"}  # kept when not given
    assert Secret.update(made.secret_id, _value(), metadata={}, **caller.opts).metadata == {}
    assert Secret.exists("openai-key", **caller.opts)
    assert Secret.destroy("openai-key", **caller.opts) is True
    assert Secret.destroy("openai-key", **caller.opts) is False
    with pytest.raises(SecretNotFoundException):
        Secret.get_info(made.secret_id, **caller.opts)


def test_a_name_is_unique_in_a_team_and_another_teams_secret_is_unknown(caller: Caller, stack: Stack) -> None:
    Secret.create("shared-name", _value(), **caller.opts)
    with pytest.raises(SecretException, match="409"):
        Secret.create("SHARED-NAME", _value(), **caller.opts)
    other = Caller(stack=stack, api_key=stack.new_key())
    assert not Secret.exists("shared-name", **other.opts)
    assert Secret.create("shared-name", _value(), **other.opts).version == 1  # names are per team
    assert Secret.destroy("shared-name", **other.opts) is True
    assert Secret.exists("shared-name", **caller.opts)


def test_secrets_are_listed_in_pages(caller: Caller) -> None:
    names = [f"page-{i:02d}" for i in range(7)]
    for name in names:
        Secret.create(name, _value(), **caller.opts)
    paginator = Secret.list(limit=3, **caller.opts)
    pages = []
    while paginator.has_next:
        pages.append([secret.name for secret in paginator.next_items()])
    assert [len(page) for page in pages] == [3, 3, 1]
    assert sorted(name for page in pages for name in page) == names
    with caller.http() as client:
        assert client.get("/secrets", params={"nextToken": "not-a-token"}).status_code == 400
        assert client.get("/secrets", params={"limit": 0}).status_code == 400


@pytest.mark.parametrize(
    "name", ["", "a{b", "a}b", "tab\there", "nul\x00", "del\x7f", "sec_reserved", "x" * 129]
)
def test_bad_names_are_a_400(caller: Caller, name: str) -> None:
    with caller.http() as client:
        response = client.post("/secrets", json={"name": name, "value": "v"})
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": "v" for i in range(33)},
        {"k" * 129: "v"},
        {"k": "v" * 1025},
        {f"k{i}": "v" * 1000 for i in range(9)},  # over 8192 bytes in all
        {"": "v"},
    ],
)
def test_metadata_beyond_the_bounds_is_a_400(caller: Caller, metadata: dict[str, str]) -> None:
    with caller.http() as client:
        response = client.post("/secrets", json={"name": "meta", "value": "v", "metadata": metadata})
    assert response.status_code == 400, response.text


def test_metadata_at_the_bounds_passes(caller: Caller) -> None:
    metadata = {f"{i:0128d}": "v" * 62 for i in range(32)}  # 32 entries, 128-byte keys, 8160 bytes in all
    assert Secret.create("at-bounds", _value(), metadata=metadata, **caller.opts).metadata == metadata


def test_the_value_is_never_shown_logged_or_stored_in_clear(
    caller: Caller, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    value = _value()
    bodies: list[str] = []
    with caplog.at_level(logging.DEBUG), caller.http() as client:
        made = client.post("/secrets", json={"name": "hidden", "value": value, "metadata": {"a": "b"}})
        bodies.append(made.text)
        secret_id = made.json()["secretID"]
        for path in ("/secrets", f"/secrets/{secret_id}", "/secrets/hidden"):
            bodies.append(client.get(path).text)
        bodies.append(client.post("/secrets/hidden", json={"value": value}).text)
        bodies.append(client.post("/secrets", json={"name": "hidden", "value": value}).text)  # 409
        bodies.append(client.post("/secrets", json={"name": "x{", "value": value}).text)  # 400
        bodies.append(client.post("/secrets", json={"name": "big", "value": value * 10_000}).text)
        bodies.append(client.post("/secrets/hidden", json={"value": 5}).text)
        bodies.append(client.post("/secrets/hidden", json={"value": value, "metadata": {"": value}}).text)
        create = {"templateID": "base", "network": {"rules": {"a.example.com": [
            {"transform": {"headers": {"X-Key": f"{value}\r\n"}}}]}}}  # fmt: skip
        bodies.append(client.post("/v2/sandboxes", json=create).text)
    for body in bodies:
        assert value not in body, body
    assert value not in caplog.text
    stored = stack.run(_stored(stack, secret_id))
    assert value.encode() not in stored


async def _stored(stack: Stack, secret_id: str) -> bytes:
    async with stack.app.state.catalog.transaction() as session:
        row = await session.scalar(select(SecretRow).where(SecretRow.secret_id == secret_id))
        return row.sealed_value + repr(row.metadata_).encode()
