"""The runtime interface every backend implements (``container`` on crun, ``fake`` for unit tests, …).

A backend creates a sandbox *ready to use*: its envd answers and has been initialised through ``/init``
with the spec's env vars, access token, default user and workdir. Kill removes everything the sandbox
held (processes, mounts, network namespace, cgroups), also after a create that failed halfway.
Optional abilities (egress rules, commit, logs, metrics, pause, snapshot, fork) are separate protocols in
``capabilities``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .types import SandboxHandle, SandboxSpec


@runtime_checkable
class Runtime(Protocol):
    """Starts and stops sandboxes on this node."""

    name: str

    async def start(self) -> None:
        """Prepare the node (and re-adopt sandboxes still running from before)."""

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        """Start a sandbox from ``spec``; returns once its envd is initialised and answering."""

    async def kill(self, sandbox_id: str) -> None:
        """Stop a sandbox and release all it holds; unknown ids are ignored."""

    async def list(self) -> list[SandboxHandle]:
        """The sandboxes this node runs."""

    async def close(self) -> None:
        """Stop background work (warm pools); running sandboxes keep running unless the backend owns them."""
