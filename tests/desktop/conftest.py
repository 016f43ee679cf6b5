"""The desktop tests' own stack (with the TLS edge, so streams are reached at ``https://6080-<id>.<domain>``,
as E2B's clients reach them) and desktop sandboxes made by ``e2b-desktop`` given only the domain and a key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2b_desktop import Sandbox

from tests.stack import WORKER, Stack, running_stack

SUBNET = f"10.{210 + WORKER}.0.0/16"


@pytest.fixture(scope="session")
def desktop_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "hutch-desktop", subnet=SUBNET, edge=True) as running:
        yield running


@pytest.fixture(scope="session")
def opts(desktop_stack: Stack) -> dict[str, str]:
    """What a client of E2B's self-hosting path is given: the domain and a key (the SDKs' other
    ``E2B_*`` settings are not in the tests' environment)."""
    assert desktop_stack.domain is not None
    return {"domain": desktop_stack.domain, "api_key": desktop_stack.api_key}


@pytest.fixture(scope="module")
def desktop(desktop_stack: Stack, opts: dict[str, str]) -> Iterator[Sandbox]:
    """A desktop sandbox shared by a module's tests: the default resolution, display and DPI."""
    created = Sandbox.create(**opts)
    desktop_stack.seen.add(created.sandbox_id)
    yield created
    created.kill()
