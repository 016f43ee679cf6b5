"""Listing sandboxes through the SDK's paginator (``GET /v2/sandboxes``) and the v1 list."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from e2b import Sandbox, SandboxQuery, SandboxState
from e2b.api.client.api.sandboxes import get_sandboxes
from e2b.api.client_sync import get_api_client
from e2b.connection_config import ConnectionConfig
from e2b.exceptions import SandboxException

from tests.api.conftest import OTHER_TEMPLATE_ID, Caller, Stack

SPECIAL = {"a b": "c&d", "x=1": "y+z/é", "p%q": "100%"}


@dataclass
class Fleet:
    """Five sandboxes of one team, oldest first, and the time between the second and the third."""

    caller: Caller
    ids: list[str]
    midpoint: datetime


@pytest.fixture(scope="module")
def fleet(stack: Stack) -> Iterator[Fleet]:
    caller = Caller(stack=stack, api_key=stack.new_key())
    specs = [
        ("base", {"group": "one", **SPECIAL}),
        ("base", {"group": "one", "a b": "c&d"}),
        ("other", {"group": "two"}),
        ("base", {"group": "two"}),
        ("base", {"group": "three"}),
    ]
    ids = []
    midpoint = None
    for index, (template, metadata) in enumerate(specs):
        if index == 2:
            time.sleep(0.01)
            midpoint = datetime.now().astimezone()
            time.sleep(0.01)
        ids.append(Sandbox.create(template, metadata=metadata, **caller.opts).sandbox_id)
    assert midpoint is not None
    yield Fleet(caller=caller, ids=ids, midpoint=midpoint)
    for sandbox_id in ids:
        Sandbox.kill(sandbox_id, **caller.opts)


def ids_of(fleet: Fleet, **kwargs) -> list[str]:
    """Every page of the listing, concatenated."""
    paginator = Sandbox.list(**kwargs, **fleet.caller.opts)
    found: list[str] = []
    while paginator.has_next:
        found.extend(info.sandbox_id for info in paginator.next_items())
    return found


def test_lists_newest_first_by_default(fleet: Fleet) -> None:
    infos = Sandbox.list(**fleet.caller.opts).next_items()
    assert [info.sandbox_id for info in infos] == fleet.ids[::-1]
    assert infos[-1].metadata == {"group": "one", **SPECIAL}
    assert all(info.state == SandboxState.RUNNING for info in infos)


def test_order_asc(fleet: Fleet) -> None:
    assert ids_of(fleet, order="asc") == fleet.ids


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_pages_follow_the_next_token(fleet: Fleet, order: str) -> None:
    paginator = Sandbox.list(limit=2, order=order, **fleet.caller.opts)
    pages = []
    while paginator.has_next:
        pages.append([info.sandbox_id for info in paginator.next_items()])
    assert [len(page) for page in pages] == [2, 2, 1]
    expected = fleet.ids if order == "asc" else fleet.ids[::-1]
    assert [sandbox_id for page in pages for sandbox_id in page] == expected
    assert paginator.next_token is None


def test_a_token_continues_in_a_new_paginator(fleet: Fleet) -> None:
    first = Sandbox.list(limit=3, order="asc", **fleet.caller.opts)
    first.next_items()
    assert first.next_token
    rest = Sandbox.list(limit=3, order="asc", next_token=first.next_token, **fleet.caller.opts)
    assert [info.sandbox_id for info in rest.next_items()] == fleet.ids[3:]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"group": "one"}, [0, 1]),
        ({"a b": "c&d"}, [0, 1]),
        (SPECIAL, [0]),
        ({"x=1": "y+z/é"}, [0]),
        ({"p%q": "100%"}, [0]),
        ({"group": "two", "a b": "c&d"}, []),
        ({"group": "nope"}, []),
    ],
)
def test_metadata_filter_survives_the_encodings(fleet: Fleet, metadata: dict, expected: list[int]) -> None:
    found = ids_of(fleet, query=SandboxQuery(metadata=metadata), order="asc")
    assert found == [fleet.ids[index] for index in expected]


def test_metadata_filter_pages(fleet: Fleet) -> None:
    query = SandboxQuery(metadata={"group": "two"})
    paginator = Sandbox.list(query=query, limit=1, order="asc", **fleet.caller.opts)
    pages = []
    while paginator.has_next:
        pages.append([info.sandbox_id for info in paginator.next_items()])
    assert [sandbox_id for page in pages for sandbox_id in page] == [fleet.ids[2], fleet.ids[3]]


def test_state_filter(fleet: Fleet) -> None:
    assert ids_of(fleet, query=SandboxQuery(state=[SandboxState.RUNNING]), order="asc") == fleet.ids
    assert ids_of(fleet, query=SandboxQuery(state=[SandboxState.PAUSED])) == []


@pytest.mark.parametrize("template", ["other", OTHER_TEMPLATE_ID])
def test_template_filter_by_alias_or_id(fleet: Fleet, template: str) -> None:
    assert ids_of(fleet, query=SandboxQuery(template=template)) == [fleet.ids[2]]


def test_template_filter_of_an_unknown_template_is_empty(fleet: Fleet) -> None:
    assert ids_of(fleet, query=SandboxQuery(template="no-such-template")) == []


def test_started_after(fleet: Fleet) -> None:
    found = ids_of(fleet, query=SandboxQuery(started_after=fleet.midpoint), order="asc")
    assert found == fleet.ids[2:]


def test_other_teams_see_none_of_them(fleet: Fleet) -> None:
    stranger = Caller(stack=fleet.caller.stack, api_key=fleet.caller.stack.new_key())
    assert Sandbox.list(**stranger.opts).next_items() == []


def test_bad_token_and_limit_are_400(fleet: Fleet) -> None:
    with pytest.raises(SandboxException, match="400: invalid nextToken"):
        Sandbox.list(next_token="garbage!", **fleet.caller.opts).next_items()
    with pytest.raises(SandboxException, match="400"):
        Sandbox.list(limit=101, **fleet.caller.opts).next_items()


def test_v1_list_returns_running_sandboxes(fleet: Fleet) -> None:
    client = get_api_client(ConnectionConfig(**fleet.caller.opts))
    response = get_sandboxes.sync_detailed(client=client)
    assert response.status_code == 200
    assert sorted(item.sandbox_id for item in response.parsed) == sorted(fleet.ids)

    response = get_sandboxes.sync_detailed(client=client, metadata="group=two")
    assert sorted(item.sandbox_id for item in response.parsed) == sorted(fleet.ids[2:4])
