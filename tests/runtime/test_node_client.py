"""``LocalNode``: what the API asks of the node goes to the runtime, and an optional ability the runtime
lacks is ``NotSupported``, naming the runtime, before the runtime is touched."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hutch.errors import HutchError, NotSupported
from hutch.runtime.node_client import (
    LocalNode,
    LogLine,
    MetricSample,
    NodeUsage,
    SandboxHandle,
    SandboxSpec,
    TemplateImage,
)
from hutch.runtime.types import EgressSettings

HANDLE = SandboxHandle(
    sandbox_id="s1", template_id="t", host="10.0.0.2", node_id="n", started_at=datetime.now(UTC)
)
SPEC = SandboxSpec(template=TemplateImage(template_id="t", rootfs=Path("/layers/t")))
SAMPLE = MetricSample(datetime.now(UTC), 2, 12.5, 100, 1000, 10, 200, 2000)


class CoreRuntime:
    """The core interface only; records what it is asked."""

    name = "core"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def start(self) -> None:
        self.calls.append(("start",))

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        self.calls.append(("create", spec))
        return HANDLE

    async def kill(self, sandbox_id: str) -> None:
        self.calls.append(("kill", sandbox_id))

    async def list(self) -> list[SandboxHandle]:
        return [HANDLE]

    async def close(self) -> None:
        self.calls.append(("close",))


class CapableRuntime(CoreRuntime):
    """Every optional ability as well."""

    name = "capable"

    async def logs(self, sandbox_id: str) -> list[LogLine]:
        return [LogLine(datetime.now(UTC), "info", f"log of {sandbox_id}")]

    async def metrics(
        self, sandbox_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        self.calls.append(("metrics", sandbox_id, start, end))
        return [SAMPLE]

    async def usage(self) -> NodeUsage:
        return NodeUsage((), (), 0.001)

    async def pause(self, sandbox_id: str, *, memory: bool) -> str:
        self.calls.append(("pause", sandbox_id, memory))
        return "full" if memory else "filesystem"

    async def resume(self, sandbox_id: str, *, memory: bool = True) -> None:
        self.calls.append(("resume", sandbox_id, memory))

    async def snapshot(
        self, sandbox_id: str, destination: Path, *, memory: Path | None = None
    ) -> tuple[SandboxSpec, bool]:
        self.calls.append(("snapshot", sandbox_id, destination, memory))
        return SPEC, memory is not None

    async def fork(
        self, sandbox_id: str, access_tokens: list[str | None]
    ) -> list[SandboxHandle | HutchError]:
        self.calls.append(("fork", sandbox_id, access_tokens))
        return [HANDLE for _ in access_tokens]

    async def update_egress(
        self,
        sandbox_id: str,
        *,
        internet: bool | None,
        allow_out: tuple[str, ...],
        deny_out: tuple[str, ...],
        settings: EgressSettings | None = None,
    ) -> None:
        self.calls.append(("egress", sandbox_id, internet, allow_out, deny_out))

    async def update_secrets(self, sandbox_id: str, secrets: dict[str, str]) -> None:
        self.calls.append(("secrets", sandbox_id, secrets))


LACKING = [
    ("logs", lambda node: node.logs("s1"), "the core runtime keeps no sandbox logs"),
    ("metrics", lambda node: node.metrics("s1"), "the core runtime keeps no sandbox metrics"),
    ("usage", lambda node: node.usage(), "the core runtime keeps no sandbox metrics"),
    ("pause", lambda node: node.pause("s1", memory=True), "the core runtime cannot pause sandboxes"),
    ("resume", lambda node: node.resume("s1"), "the core runtime cannot pause sandboxes"),
    ("snapshot", lambda node: node.snapshot("s1", Path("/x")), "the core runtime cannot snapshot sandboxes"),
    ("fork", lambda node: node.fork("s1", ["t"]), "the core runtime cannot copy a sandbox's memory"),
    (
        "egress",
        lambda node: node.update_egress("s1", internet=False, allow_out=(), deny_out=()),
        "the core runtime cannot change a sandbox's network",
    ),
]


@pytest.mark.parametrize(("ability", "call", "message"), LACKING, ids=[case[0] for case in LACKING])
async def test_a_missing_ability_is_not_supported(ability: str, call, message: str) -> None:
    runtime = CoreRuntime()
    with pytest.raises(NotSupported) as raised:
        await call(LocalNode(runtime))
    assert raised.value.message == message
    assert runtime.calls == []


async def test_the_core_calls_go_to_the_runtime() -> None:
    runtime = CoreRuntime()
    node = LocalNode(runtime)
    await node.start()
    assert await node.create(SPEC) is HANDLE
    assert await node.list() == [HANDLE]
    await node.kill("s1")
    await node.close()
    assert runtime.calls == [("start",), ("create", SPEC), ("kill", "s1"), ("close",)]


async def test_the_abilities_go_to_a_runtime_that_has_them() -> None:
    runtime = CapableRuntime()
    node = LocalNode(runtime)
    assert [line.message for line in await node.logs("s1")] == ["log of s1"]
    assert await node.metrics("s1", end=SAMPLE.timestamp) == [SAMPLE]
    assert (await node.usage()).sampling_s == 0.001
    assert await node.pause("s1", memory=False) == "filesystem"
    await node.resume("s1", memory=False)
    assert await node.snapshot("s1", Path("/layer"), memory=Path("/memory")) == (SPEC, True)
    assert await node.fork("s1", ["a", None]) == [HANDLE, HANDLE]
    await node.update_egress("s1", internet=None, allow_out=("10.0.0.0/8",), deny_out=())
    await node.update_secrets("s1", {"tok": "v"})
    assert runtime.calls == [
        ("metrics", "s1", None, SAMPLE.timestamp),
        ("pause", "s1", False),
        ("resume", "s1", False),
        ("snapshot", "s1", Path("/layer"), Path("/memory")),
        ("fork", "s1", ["a", None]),
        ("egress", "s1", None, ("10.0.0.0/8",), ()),
        ("secrets", "s1", {"tok": "v"}),
    ]
